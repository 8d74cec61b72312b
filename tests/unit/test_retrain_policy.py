"""The retraining decision: each trigger alone, no trigger, cooldown, severe override, force."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from streamguard.drift import DriftReport
from streamguard.feedback import ProductionMetrics
from streamguard.retrain_policy import RetrainPolicy, champion_baseline, decide_retraining

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
CHAMPION = {"version": "7", "trained_at": (NOW - timedelta(days=10)).isoformat(),
            "metrics": {"validation": {"accuracy": 0.95, "fpr": 0.04},
                        "test": {"accuracy": 0.93, "fpr": 0.05}}}


def prod(accuracy: float = 0.92, fpr: float = 0.05, n: int = 500) -> ProductionMetrics:
    return ProductionMetrics(n=n, tp=0, fp=0, fn=0, tn=0, accuracy=accuracy, fpr=fpr,
                             precision=None, recall=None)


def calm_drift() -> DriftReport:
    return DriftReport(drifted=False, severity="none", reasons=["no drift"])


def decide(**overrides):
    args = dict(now=NOW, champion=CHAMPION, production=prod(), drift=calm_drift(),
                new_feedback_count=10, last_retrain_at=None)
    args.update(overrides)
    return decide_retraining(**args)


def test_no_trigger_skips_with_reason():
    d = decide()
    assert not d.retrain and d.triggers == [] and d.severity == "none"
    assert d.skipped_reason.startswith("no trigger fired: accuracy 0.920 ≥ test baseline 0.930−0.05")
    assert "fpr 0.050 ≤ test baseline 0.050+0.02" in d.skipped_reason
    assert "10 new feedback records < 1000" in d.skipped_reason
    assert "champion is 10.0 days old < 30" in d.skipped_reason


@pytest.mark.parametrize("overrides, trigger", [
    ({"production": prod(accuracy=0.87)}, "accuracy_drop"),
    ({"production": prod(fpr=0.08)}, "fpr_rise"),
    ({"new_feedback_count": 1000}, "feedback_volume"),
    ({"champion": {**CHAMPION, "trained_at": (NOW - timedelta(days=30)).isoformat()}}, "model_age"),
    ({"drift": DriftReport(drifted=True, severity="moderate", reasons=["scores: drift"])}, "drift"),
    ({"champion": None}, "bootstrap"),
    ({"force": True}, "force"),
])
def test_each_trigger_alone(overrides, trigger):
    d = decide(**overrides)
    assert d.retrain and d.triggers == [trigger] and d.skipped_reason is None


def test_thresholds_are_strict_at_the_boundary():
    assert not decide(production=prod(accuracy=0.88)).retrain   # 0.93 − 0.05 = 0.88: not below
    assert not decide(new_feedback_count=999).retrain


def test_baseline_falls_back_to_validation_then_flat():
    assert champion_baseline(CHAMPION, "accuracy") == (0.93, "test")
    assert champion_baseline({"metrics": {"validation": {"accuracy": 0.9}}}, "accuracy") == (0.9, "validation")
    assert champion_baseline({"metrics": {"accuracy": 0.8}}, "accuracy") == (0.8, "metrics")
    assert champion_baseline({}, "accuracy") == (None, "missing")


def test_too_few_reviews_do_not_evaluate_metrics():
    d = decide(production=prod(accuracy=0.5, n=20))
    assert not d.retrain
    assert "not evaluated, 20 reviewed predictions < 100" in d.skipped_reason


def test_cooldown_skips_moderate_triggers_with_reason():
    d = decide(new_feedback_count=5000, last_retrain_at=NOW - timedelta(days=3))
    assert not d.retrain and d.triggers == ["feedback_volume"] and d.severity == "moderate"
    assert d.skipped_reason.startswith("cooldown: last retraining 3.0 days ago < 7 days")
    assert decide(new_feedback_count=5000, last_retrain_at=NOW - timedelta(days=7)).retrain


def test_severe_drift_overrides_cooldown():
    severe = DriftReport(drifted=True, severity="severe", reasons=["scores: drift (severe)"])
    d = decide(drift=severe, last_retrain_at=NOW - timedelta(days=1))
    assert d.retrain and d.severity == "severe"
    assert any("cooldown overridden" in r for r in d.reasons)
    strict = RetrainPolicy(severe_overrides_cooldown=False)
    assert not decide(drift=severe, last_retrain_at=NOW - timedelta(days=1), policy=strict).retrain


def test_large_accuracy_drop_is_severe():
    d = decide(production=prod(accuracy=0.80), last_retrain_at=NOW - timedelta(days=1))
    assert d.retrain and d.severity == "severe" and d.triggers == ["accuracy_drop"]


def test_force_ignores_cooldown():
    d = decide(force=True, last_retrain_at=NOW - timedelta(hours=1))
    assert d.retrain and "force" in d.triggers


def test_bootstrap_reason_and_times_must_be_aware():
    d = decide(champion=None)
    assert "no champion registered" in d.reasons[0]
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(now=datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="last_retrain_at"):
        decide(last_retrain_at="soon")


def test_policy_validation():
    with pytest.raises(ValueError, match="min_feedback"):
        RetrainPolicy(min_feedback=0)
    with pytest.raises(ValueError, match="accuracy_drop"):
        RetrainPolicy(accuracy_drop=-0.1)


def test_decision_serialises():
    d = decide(new_feedback_count=2000)
    assert d.to_dict()["triggers"] == ["feedback_volume"]


def test_accepts_registry_record_objects():
    class Version:
        def to_dict(self):
            return {"created_at": "2025-04-01T00:00:00Z", "metrics": CHAMPION["metrics"]}

    d = decide(champion=Version())
    assert d.triggers == ["model_age"]  # created_at is used when trained_at is absent: 61 days
    assert any("61.0 days old" in r for r in d.reasons)
