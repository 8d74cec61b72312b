"""DAG integrity: the bundle parses, every DAG follows the house rules, parsing stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, airflow_env

EXPECTED_DAGS = {"streamguard_training", "streamguard_retraining"}
HEAVY = ("torch", "transformers", "torch_geometric", "boto3")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors


def test_expected_dag_ids(dagbag):
    assert EXPECTED_DAGS <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_house_rules(dagbag, dag_id):
    dag = dagbag.dags.get(dag_id)
    assert dag is not None
    assert "streamguard" in dag.tags
    assert dag.catchup is False
    assert dag.doc_md and len(dag.doc_md) > 100
    assert dag.start_date is not None and dag.start_date.tzinfo is not None
    for t in dag.tasks:
        assert t.retries >= 2, f"{dag_id}.{t.task_id} has retries={t.retries}"
        assert t.owner == "streamguard"


def test_training_dag_shape(dagbag):
    dag = dagbag.dags["streamguard_training"]
    ids = set(dag.task_ids)
    for model in ("gnn", "transformer"):
        for step in ("build_job", "train", "wait", "collect", "evaluate", "gate", "register"):
            assert f"{model}.{step}" in ids
    # train -> sensor -> collect ordering per model
    assert "gnn.wait" in dag.get_task("gnn.train").downstream_task_ids
    assert "gnn.collect" in dag.get_task("gnn.wait").downstream_task_ids
    assert dag.get_task("summary").trigger_rule == "none_failed_min_one_success"
    assert {"data_uri", "models", "gnn_epochs", "transformer_learning_rate", "instance_type",
            "gnn_min_val_accuracy", "max_fpr"} <= set(dag.params)


@pytest.mark.parametrize("backend", ["local"])
def test_parsing_imports_no_heavy_modules(backend):
    code = (
        "import sys, json, importlib.util, pathlib\n"
        f"sys.path.insert(0, {str(REPO / 'plugins')!r})\n"
        f"for f in sorted(pathlib.Path({str(REPO / 'dags')!r}).glob('*.py')):\n"
        "    spec = importlib.util.spec_from_file_location(f.stem, f)\n"
        "    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=airflow_env(STREAMGUARD_BACKEND=backend),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"DAG parsing imported heavy modules: {loaded}"
