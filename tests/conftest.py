"""Test-session set-up: an isolated AIRFLOW_HOME / STREAMGUARD_HOME before anything imports airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="sg-test-home-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_HOME / "airflow"),
        "STREAMGUARD_HOME": str(_SESSION_HOME / "streamguard"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "STREAMGUARD_BACKEND": "local",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)
# Under xdist the workers share the cores. torch's default of one thread per core in every worker,
# and in every training process a worker starts, oversubscribes them, and its spinning OpenMP threads
# then make tiny trainings several times slower (measured: two processes training side by side on 2
# cores, 32-36 s each with the default, 17 s each with one thread). Each worker gets its share.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)
for var in ("STREAMGUARD_ARTIFACT_ROOT", "STREAMGUARD_REGISTRY_URI", "STREAMGUARD_LOCAL_JOBS_DIR"):
    os.environ.pop(var, None)
# DAG files import operators from plugins/ (Airflow puts the plugins folder on sys.path).
for extra in (REPO / "plugins", REPO / "dags"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


# The deployment setting that opens the gate: end-to-end runs train tiny models that could not pass
# the real thresholds, and the trigger form may only tighten the deployment's gate.
OPEN_GATE = json.dumps({m: {"min_val_accuracy": 0.0, "max_fpr": 1.0} for m in ("gnn", "transformer")})


def airflow_env(**overrides: str) -> dict[str, str]:
    """Environment for a subprocess that runs the `airflow` CLI against the session's home.

    The gate is opened by the deployment setting (`OPEN_GATE`); pass
    ``STREAMGUARD_GATE_THRESHOLDS=""`` to run with the real defaults.
    """
    env = dict(os.environ)
    env["STREAMGUARD_GATE_THRESHOLDS"] = OPEN_GATE
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's Airflow metadata DB once (SQLite in the temp AIRFLOW_HOME)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home



@pytest.fixture(scope="session")
def training_run_shared(airflow_db, tmp_path_factory):
    """The tiny training run of both models, once per session (`tests.support.e2e.shared_training_run`):
    ``(home, logs, proc)``. The files that use it are listed in ``SHARED_RUN_FILES``, so that xdist runs
    them on one worker (`pytest_xdist_make_scheduler` below)."""
    from tests.support.e2e import shared_training_run

    return shared_training_run(tmp_path_factory.mktemp("shared-training-run"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, except that the files reading the shared training run are one unit.

    A file stays on one worker, so its module fixtures are built once; the files in
    ``SHARED_RUN_FILES`` (tests/support/e2e.py) go to the same worker, so the session's
    `training_run_shared` runs once. (``--dist loadgroup`` would express this with markers, but
    xdist 3.8 cannot rename pytest 9's node ids, and then schedules every test on its own.)
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    from tests.support.e2e import SHARED_RUN_FILES, SHARED_RUN_GROUP

    class SharedRunFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SHARED_RUN_GROUP if scope in SHARED_RUN_FILES else scope

    return SharedRunFileScheduling(config, log)
