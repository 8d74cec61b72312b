"""`airflow dags test streamguard_training` end to end on the local backend (real training)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from streamguard import storage
from streamguard.registry import RegistryClient
from tests.support.e2e import TINY_TRAINING_CONF, run_dags_test, succeeded, tail

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def training_run(training_run_shared):
    """The session's tiny training run of both models (tests/repo/test_security.py reads it too)."""
    home, _logs, proc = training_run_shared
    return home, proc


def test_run_succeeds(training_run):
    _home, proc = training_run
    assert succeeded(proc), tail(proc)


def test_registry_holds_one_evaluated_version_per_model(training_run):
    home, proc = training_run
    assert succeeded(proc), tail(proc)
    client = RegistryClient((home / "registry").as_uri())
    assert sorted(client.list_models()) == ["sql_intent_transformer", "taint_flow_gnn"]
    for model in ("sql_intent_transformer", "taint_flow_gnn"):
        versions = client.list_versions(model)
        assert len(versions) == 1
        v = versions[0]
        assert v.status == "registered" and v.gate["passed"] is True
        assert v.gate["thresholds"]  # the thresholds used are recorded with the decision
        # Metrics come from real inference: counts match the prepared test channel.
        test = v.metrics["test"]
        n_test = sum(1 for _ in Path(storage.local_path(v.extra["channels"]["test"])).glob("*.jsonl")
                     for _line in _.read_text().splitlines() if _line.strip())
        assert test["n"] == n_test > 0
        assert 0.0 <= test["accuracy"] <= 1.0 and "fpr" in test and "confusion_matrix" in test
        assert v.metrics["validation"]["n"] > 0
        # The recorded sha256 is the artifact's.
        local = Path(storage.local_path(v.artifact_uri))
        assert hashlib.sha256(local.read_bytes()).hexdigest() == v.artifact_sha256
        assert v.backend == "local" and v.training_job_name.startswith("sg-")
        assert v.data_hash and v.code_version and v.hyperparameters["epochs"] >= 1
        # Predictions of the evaluation run are kept next to the run.
        preds = storage.read_text(v.extra["predictions_uri"]).splitlines()
        assert len(preds) == n_test
        # The first version that passes the gate becomes champion.
        assert client.get_alias(model, "champion").version == v.version


def test_summary_and_quarantine_artifacts(training_run):
    home, proc = training_run
    assert succeeded(proc), tail(proc)
    summaries = list((home / "artifacts" / "runs").rglob("summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert {r["model_name"] for r in summary["results"]} == {"taint_flow_gnn", "sql_intent_transformer"}
    assert "| taint_flow_gnn | 1 | registered |" in summary["markdown"]
    assert list((home / "artifacts" / "runs").rglob("quarantine.jsonl"))
    assert "| model | version | status |" in proc.stdout + proc.stderr  # markdown in the task log


def test_rejected_by_gate_is_recorded_not_promoted(airflow_db, tmp_path):
    conf = dict(TINY_TRAINING_CONF, models=["gnn"], gnn_epochs=1, gnn_min_val_accuracy=1.0, max_fpr=0.0)
    proc = run_dags_test("streamguard_training", conf, tmp_path)
    assert succeeded(proc), tail(proc)
    client = RegistryClient((tmp_path / "registry").as_uri())
    assert client.list_models() == ["taint_flow_gnn"]  # the transformer was not selected
    (v,) = client.list_versions("taint_flow_gnn")
    assert v.status == "rejected" and not v.gate["passed"] and v.gate["reasons"]
    assert client.get_alias("taint_flow_gnn", "champion") is None
    assert "transformer not selected" in proc.stdout + proc.stderr


def test_invalid_params_fail_with_a_clear_message(airflow_db, tmp_path):
    proc = run_dags_test("streamguard_training", {"gnn_epochs": 0}, tmp_path, timeout=300)
    assert proc.returncode != 0 or "state=failed" in proc.stdout + proc.stderr
    assert "gnn_epochs" in proc.stdout + proc.stderr
