"""`airflow dags test streamguard_retraining` scenarios on the local backend (real training).

One champion is trained first; the scenarios then run in order against its registry:
no drift → skip; accuracy drift → retrain → better challenger promoted; a repeated moderate alarm
inside the cooldown → skip; a challenger that is not better → rejected, champion unchanged.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from streamguard.data.synthetic import generate_samples
from streamguard.registry import RegistryClient
from tests.support.e2e import TINY_TRAINING_CONF, run_dags_test, succeeded, tail

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MODEL = "taint_flow_gnn"
BASE_CONF = {
    "models": ["gnn"],
    "gnn_min_val_accuracy": 0.0,
    "transformer_min_val_accuracy": 0.0,
    "max_fpr": 1.0,
    # Paired tests need enough discordant pairs to reach significance when a gain is real.
    "alpha": 0.05,
}


def write_feedback(path: Path, *, n: int, accuracy: float, model_version: str, seed: int,
                   misses_only: bool = False) -> Path:
    """Reviewer verdicts on synthetic findings: a fraction `accuracy` of the model's calls were right.

    With `misses_only` every wrong call is a missed vulnerability, so the production FPR does not move
    and only the accuracy trigger can fire (a rise in FPR would depend on the champion's own FPR).
    """
    rng = random.Random(seed)
    records = generate_samples(n_pairs=n, seed=seed)[:n]  # the generator may yield fewer than 2 per pair
    assert len(records) == n
    n_wrong = n - round(accuracy * n)
    if misses_only:
        vulnerable = [i for i, rec in enumerate(records) if rec["label"] == 1]
        assert len(vulnerable) >= n_wrong, "not enough vulnerable records for the misses asked for"
        wrong = set(vulnerable[len(vulnerable) - n_wrong:])
    else:
        wrong = set(range(n - n_wrong, n))
    lines = []
    for i, rec in enumerate(records):
        right = i not in wrong
        label = rec["label"]
        pred = label if right else 1 - label
        verdict = {(1, 1): "confirmed", (0, 1): "false_positive", (1, 0): "missed", (0, 0): "correct"}[(label, pred)]
        lines.append(json.dumps({
            "id": f"fb-{seed}-{i}", "code": rec["code"], "language": rec["language"], "cwe": rec["cwe"],
            "prediction": pred, "verdict": verdict, "model_version": model_version,
            "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        }))
    rng.shuffle(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def decisions(client: RegistryClient) -> list[dict]:
    return [e.payload for e in client.list_events(kind="retrain_decision")]


@pytest.fixture(scope="module")
def world(airflow_db, tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e-retrain")
    # A deliberately poor champion: one epoch at a tiny learning rate (scores stay near their initial
    # value) and a low decision threshold, so it flags nearly everything: low accuracy, high FPR.
    # A large frozen test split gives the paired test enough pairs.
    conf = dict(TINY_TRAINING_CONF, models=["gnn"], sample_pairs=60, test_ratio=0.4, gnn_epochs=1,
                gnn_learning_rate=1e-6, decision_threshold=0.01)
    proc = run_dags_test("streamguard_training", conf, home)
    assert succeeded(proc), tail(proc)
    client = RegistryClient((home / "registry").as_uri())
    assert client.get_alias(MODEL, "champion").version == 1
    return {"home": home, "client": client}


def test_1_no_drift_skips_with_a_reason(world):
    home, client = world["home"], world["client"]
    fb = write_feedback(home / "fb1" / "feedback.jsonl", n=100, accuracy=1.0, model_version=f"{MODEL}:1", seed=101)
    proc = run_dags_test("streamguard_retraining", dict(BASE_CONF, feedback_uri=fb.as_uri()), home)
    assert succeeded(proc), tail(proc)
    last = decisions(client)[-1]
    assert last["model_type"] == "gnn" and last["retrain"] is False
    assert last["skipped_reason"]
    assert "retraining skipped" in proc.stdout + proc.stderr
    assert [v.version for v in client.list_versions(MODEL)] == [1]
    assert client.get_alias(MODEL, "champion").version == 1


def test_2_accuracy_drift_retrains_and_promotes_a_better_challenger(world):
    home, client = world["home"], world["client"]
    fb = write_feedback(home / "fb2" / "feedback.jsonl", n=120, accuracy=0.2, model_version=f"{MODEL}:1", seed=202)
    conf = dict(BASE_CONF, feedback_uri=fb.as_uri(), finetune_epochs=10, finetune_learning_rate=5e-3)
    proc = run_dags_test("streamguard_retraining", conf, home)
    assert succeeded(proc), tail(proc)
    last = decisions(client)[-1]
    assert last["retrain"] is True and any("accuracy" in t for t in last["triggers"]), last
    versions = client.list_versions(MODEL)
    assert [v.version for v in versions] == [1, 2]
    challenger = versions[1]
    comparison = challenger.extra["champion_comparison"]
    assert challenger.status == "registered", challenger.extra["promotion_reasons"]
    assert comparison["promote"] is True
    assert comparison["mcnemar"]["p_value"] < 0.05
    assert challenger.metrics["test"]["accuracy"] >= versions[0].metrics["test"]["accuracy"] + 0.01
    assert client.get_alias(MODEL, "champion").version == 2
    assert client.get_alias(MODEL, "deployed").version == 2
    promotions = client.list_events(kind="promotion")
    assert promotions and promotions[-1].payload["challenger_version"] == 2
    # The A/B plan for the endpoint is written as an artifact in local mode.
    plans = list((home / "artifacts" / "runs").rglob("gnn-endpoint-config.json"))
    assert plans and json.loads(plans[-1].read_text())["ProductionVariants"]


def test_3_repeated_alarm_inside_cooldown_skips(world):
    home, client = world["home"], world["client"]
    champion = client.get_alias(MODEL, "champion")
    baseline = champion.metrics["test"]["accuracy"]
    # A moderate drop (beyond the 0.05 allowance, short of the "severe" 0.10) right after a retraining.
    fb = write_feedback(home / "fb3" / "feedback.jsonl", n=160, accuracy=max(baseline - 0.07, 0.0),
                        model_version=f"{MODEL}:{champion.version}", seed=303, misses_only=True)
    proc = run_dags_test("streamguard_retraining", dict(BASE_CONF, feedback_uri=fb.as_uri()), home)
    assert succeeded(proc), tail(proc)
    last = decisions(client)[-1]
    assert last["retrain"] is False
    assert "cooldown" in (last["skipped_reason"] or "").lower(), last
    assert len(client.list_versions(MODEL)) == 2


def test_4_challenger_that_is_not_better_is_rejected(world):
    home, client = world["home"], world["client"]
    before = client.get_alias(MODEL, "champion").version
    fb = write_feedback(home / "fb4" / "feedback.jsonl", n=60, accuracy=0.9, model_version=f"{MODEL}:{before}", seed=404)
    # Forced retraining that barely moves the weights: the challenger equals the champion.
    conf = dict(BASE_CONF, feedback_uri=fb.as_uri(), force=True, finetune_epochs=1, finetune_learning_rate=1e-9)
    proc = run_dags_test("streamguard_retraining", conf, home)
    assert succeeded(proc), tail(proc)
    versions = client.list_versions(MODEL)
    assert len(versions) == 3
    rejected = versions[-1]
    assert rejected.status == "rejected"
    assert rejected.extra["champion_comparison"]["promote"] is False
    assert rejected.extra["promotion_reasons"]
    assert client.get_alias(MODEL, "champion").version == before
    assert client.list_events(kind="challenger_rejected")
