"""Two runs of the training DAG at once, sharing the artifact store and the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamguard.registry import RegistryClient
from tests.conftest import airflow_env
from tests.support.e2e import TINY_TRAINING_CONF

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_two_concurrent_training_runs_get_distinct_versions(tmp_path):
    shared = tmp_path / "streamguard"  # one artifact store, jobs dir and registry for both runs
    airflow = str(Path(sys.executable).parent / "airflow")
    procs = []
    for i, seed in enumerate((21, 22)):
        # Separate metadata DBs (SQLite takes one writer); everything StreamGuard writes is shared.
        env = airflow_env(AIRFLOW_HOME=str(tmp_path / f"airflow-{i}"), STREAMGUARD_HOME=str(shared),
                          STREAMGUARD_LOCAL_POKE_SECONDS="1")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
        conf = dict(TINY_TRAINING_CONF, models=["gnn"], gnn_epochs=1, seed=seed)
        procs.append(subprocess.Popen([airflow, "dags", "test", "streamguard_training", "-c", json.dumps(conf)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0 and "state=success" in out, out[-4000:]
    versions = RegistryClient((shared / "registry").as_uri()).list_versions("taint_flow_gnn")
    assert sorted(v.version for v in versions) == [1, 2]
    assert len({v.training_job_name for v in versions}) == 2
    assert len({v.artifact_uri for v in versions}) == 2
