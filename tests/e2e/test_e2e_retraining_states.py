"""`airflow dags test streamguard_retraining` with its default params from every registry state.

- An empty registry (no training run at all, no feedback): both models are skipped with the
  reason, and the run succeeds.
- After a training run in which the transformer was rejected by the gate: the GNN (champion) is
  left alone, the transformer is trained from scratch on the registered data (the champion-less
  path), gated and recorded; the run succeeds. Once the deployment's gate lets it through, the next
  bootstrap makes it champion.
"""

from __future__ import annotations

import json

import pytest

from streamguard.registry import RegistryClient
from tests.conftest import OPEN_GATE
from tests.support.e2e import TINY_TRAINING_CONF, run_dags_test, succeeded, tail

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

GNN, TRANSFORMER = "taint_flow_gnn", "sql_intent_transformer"
# The deployment's gate: open for the GNN, impossible for the transformer (no model is 1 byte).
REJECT_TRANSFORMER = json.dumps({"gnn": {"min_val_accuracy": 0.0, "max_fpr": 1.0},
                                 "transformer": {"max_model_bytes": 1}})
NO_GATE_PARAMS = {k: v for k, v in TINY_TRAINING_CONF.items() if "accuracy" not in k and "fpr" not in k}


def decisions(client: RegistryClient) -> dict[str, dict]:
    return {e.payload["model_type"]: e.payload for e in client.list_events(kind="retrain_decision")}


def test_empty_registry_default_params_skips_both_models_with_the_reason(airflow_db, tmp_path):
    proc = run_dags_test("streamguard_retraining", {}, tmp_path)
    assert succeeded(proc), tail(proc)
    client = RegistryClient((tmp_path / "registry").as_uri())
    made = decisions(client)
    assert set(made) == {"gnn", "transformer"}
    for decision in made.values():
        assert decision["retrain"] is False
        assert "no champion" in decision["skipped_reason"] and "no data" in decision["skipped_reason"]
    assert client.list_models() == [] or all(not client.list_versions(m) for m in client.list_models())
    assert "retraining skipped: no champion" in proc.stdout + proc.stderr
    assert "gnn: skipped: no champion" in proc.stdout + proc.stderr


def test_after_a_training_run_with_a_rejected_model_default_retraining_bootstraps_it(airflow_db, tmp_path):
    env = {"STREAMGUARD_GATE_THRESHOLDS": REJECT_TRANSFORMER}
    # A training option other than its default: the bootstrap below trains with it too.
    proc = run_dags_test("streamguard_training", {**NO_GATE_PARAMS, "transformer_token_dropout": 0.2}, tmp_path, **env)
    assert succeeded(proc), tail(proc)
    client = RegistryClient((tmp_path / "registry").as_uri())
    assert client.get_alias(GNN, "champion").version == 1
    assert [v.status for v in client.list_versions(TRANSFORMER)] == ["rejected"]
    assert client.get_alias(TRANSFORMER, "champion") is None
    first = client.list_versions(TRANSFORMER)[0]
    # The registry says which thresholds applied and where each came from.
    assert first.gate["threshold_sources"]["max_model_bytes"] == "env STREAMGUARD_GATE_THRESHOLDS"
    assert first.gate["threshold_sources"]["min_val_accuracy"] == "default"

    # The monthly run, default params.
    proc = run_dags_test("streamguard_retraining", {}, tmp_path, **env)
    assert succeeded(proc), tail(proc)
    made = decisions(client)
    assert made["gnn"]["retrain"] is False and made["gnn"]["skipped_reason"]
    assert made["transformer"]["retrain"] is True and made["transformer"]["mode"] == "bootstrap"
    assert made["transformer"]["triggers"] == ["bootstrap"]
    assert made["transformer"]["bootstrap_source"]["from"] == f"{TRANSFORMER} v1 (rejected)"
    versions = client.list_versions(TRANSFORMER)
    assert [v.status for v in versions] == ["rejected", "rejected"]
    boot = versions[1]
    assert boot.extra["trained_by"] == "retraining bootstrap"
    assert "-boot" in boot.training_job_name
    assert first.hyperparameters["token-dropout"] == boot.hyperparameters["token-dropout"] == 0.2
    assert any("model size" in r for r in boot.gate["reasons"])
    assert boot.extra["channels"]["test"] == first.extra["channels"]["test"]
    assert client.get_alias(TRANSFORMER, "champion") is None
    assert [v.version for v in client.list_versions(GNN)] == [1]
    out = proc.stdout + proc.stderr
    assert "no A/B plan" in out
    assert "transformer: first model (bootstrap) v2 not promoted" in out and "gnn: skipped: " in out

    # The deployment opens its gate; a forced run (the cooldown would hold a scheduled one) bootstraps
    # again and the first version to pass the gate becomes champion.
    proc = run_dags_test("streamguard_retraining", {"force": True, "models": ["transformer"]}, tmp_path,
                         STREAMGUARD_GATE_THRESHOLDS=OPEN_GATE)
    assert succeeded(proc), tail(proc)
    versions = client.list_versions(TRANSFORMER)
    assert [v.status for v in versions] == ["rejected", "rejected", "registered"]
    assert client.get_alias(TRANSFORMER, "champion").version == 3
    promotions = [e.payload for e in client.list_events(kind="promotion")]
    assert promotions and promotions[-1]["mode"] == "bootstrap" and promotions[-1]["challenger_version"] == 3
