"""When to retrain: the design's triggers, a cooldown, and a recorded reason for every outcome.

Triggers (any one fires a retraining):
- `bootstrap`: there is no champion yet.
- `accuracy_drop`: production accuracy < champion baseline accuracy − `accuracy_drop`.
- `fpr_rise`: production FPR > champion baseline FPR + `fpr_rise`.
- `feedback_volume`: ≥ `min_feedback` new feedback records since the last retraining.
- `model_age`: ≥ `max_age_days` since the champion was trained.
- `drift`: the drift report says drifted.
- `force`: an operator asked for it.

The champion's baseline is its registry record's `test` metrics, else `validation` (from the
entry's `metrics.json`). Metric triggers need `min_metric_samples` reviewed predictions.
Cooldown: no retraining within `cooldown_days` of the last one, unless the decision is severe
(drift severity "severe", or a metric off by twice its allowance) and `severe_overrides_cooldown`,
or `force`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streamguard.drift import DriftReport
from streamguard.feedback import ProductionMetrics

BASELINE_SPLITS = ("test", "validation")
CHAMPION_TIME_KEYS = ("trained_at", "created_at", "registered_at")


@dataclass(frozen=True)
class RetrainPolicy:
    """Thresholds of the retraining decision (defaults from the design)."""

    accuracy_drop: float = 0.05
    fpr_rise: float = 0.02
    min_feedback: int = 1000
    max_age_days: float = 30
    cooldown_days: float = 7
    severe_overrides_cooldown: bool = True
    min_metric_samples: int = 100
    # A metric this many allowances beyond its baseline makes the decision severe.
    severe_factor: float = 2.0

    def __post_init__(self) -> None:
        for name in ("accuracy_drop", "fpr_rise", "max_age_days", "cooldown_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetrainPolicy.{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("min_feedback", "min_metric_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"RetrainPolicy.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.severe_factor < 1:
            raise ValueError(f"RetrainPolicy.severe_factor must be ≥ 1, got {self.severe_factor}")


@dataclass
class RetrainDecision:
    """Whether to retrain, and why.

    Attributes:
        retrain: the decision.
        reasons: one line per rule evaluated, fired or not.
        triggers: names of the rules that fired (see the module docstring).
        skipped_reason: why no retraining happens (None when `retrain`).
        severity: "none" (nothing fired), "moderate" or "severe".
    """

    retrain: bool
    reasons: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    skipped_reason: str | None = None
    severity: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_datetime(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{what}: not an ISO-8601 time ({value!r})") from exc
    else:
        raise ValueError(f"{what}: expected a datetime or ISO-8601 string, got {type(value).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what}: must be timezone-aware ({value!r})")
    return ts


def champion_baseline(champion: Mapping[str, Any], metric: str) -> tuple[float | None, str]:
    """The champion's offline value of `metric` and where it came from.

    Looks in `metrics.test`, `metrics.validation`, then a flat `metrics` dict.
    """
    metrics = champion.get("metrics") or {}
    for split in BASELINE_SPLITS:
        block = metrics.get(split)
        if isinstance(block, Mapping) and isinstance(block.get(metric), (int, float)):
            return float(block[metric]), split
    if isinstance(metrics.get(metric), (int, float)):
        return float(metrics[metric]), "metrics"
    return None, "missing"


def champion_trained_at(champion: Mapping[str, Any]) -> datetime | None:
    """When the champion was trained (first of trained_at, created_at, registered_at)."""
    for key in CHAMPION_TIME_KEYS:
        if champion.get(key):
            return _as_datetime(champion[key], f"champion.{key}")
    return None


def _days(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0) / 86400.0


def _metric_rules(champion: Mapping[str, Any], production: ProductionMetrics, policy: RetrainPolicy,
                  fired: list[str], reasons: list[str]) -> bool:
    """Evaluate accuracy_drop and fpr_rise; return True when one is off by the severe factor."""
    severe = False
    if production.n < policy.min_metric_samples:
        reasons.append(f"accuracy/fpr: not evaluated, {production.n} reviewed predictions "
                       f"< {policy.min_metric_samples}")
        return False
    base_acc, acc_src = champion_baseline(champion, "accuracy")
    if base_acc is None or production.accuracy is None:
        reasons.append("accuracy: not evaluated, no champion baseline accuracy"
                       if base_acc is None else "accuracy: not evaluated, no production accuracy")
    else:
        floor = base_acc - policy.accuracy_drop
        if production.accuracy < floor:
            fired.append("accuracy_drop")
            reasons.append(f"accuracy {production.accuracy:.3f} < {acc_src} baseline {base_acc:.3f}"
                           f"−{policy.accuracy_drop:g}")
            severe |= production.accuracy < base_acc - policy.severe_factor * policy.accuracy_drop
        else:
            reasons.append(f"accuracy {production.accuracy:.3f} ≥ {acc_src} baseline {base_acc:.3f}"
                           f"−{policy.accuracy_drop:g}")
    base_fpr, fpr_src = champion_baseline(champion, "fpr")
    if base_fpr is None or production.fpr is None:
        reasons.append("fpr: not evaluated, no champion baseline fpr"
                       if base_fpr is None else "fpr: not evaluated, no reviewed safe predictions")
    else:
        ceiling = base_fpr + policy.fpr_rise
        if production.fpr > ceiling:
            fired.append("fpr_rise")
            reasons.append(f"fpr {production.fpr:.3f} > {fpr_src} baseline {base_fpr:.3f}+{policy.fpr_rise:g}")
            severe |= production.fpr > base_fpr + policy.severe_factor * policy.fpr_rise
        else:
            reasons.append(f"fpr {production.fpr:.3f} ≤ {fpr_src} baseline {base_fpr:.3f}+{policy.fpr_rise:g}")
    return severe


def decide_retraining(*, now: datetime, champion: Mapping[str, Any] | Any | None, production: ProductionMetrics,
                      drift: DriftReport | None, new_feedback_count: int,
                      last_retrain_at: datetime | str | None, policy: RetrainPolicy = RetrainPolicy(),
                      force: bool = False) -> RetrainDecision:
    """Apply the retraining triggers and the cooldown.

    Args:
        now: tz-aware current time (the DAG run's logical date; never read from the clock here).
        champion: the champion's registry record (`metrics`, `trained_at`/`created_at`; a dict or
            an object with `to_dict()`), or None.
        production: metrics from feedback (`feedback.production_metrics`).
        drift: the drift report, or None when drift was not computed.
        new_feedback_count: feedback records received since the last retraining.
        last_retrain_at: when the last retraining started, or None.
    """
    now = _as_datetime(now, "now")
    if champion is not None and not isinstance(champion, Mapping):
        champion = champion.to_dict()
    last = _as_datetime(last_retrain_at, "last_retrain_at") if last_retrain_at is not None else None
    fired: list[str] = []
    reasons: list[str] = []
    severe = False

    if force:
        fired.append("force")
        reasons.append("forced by the operator")
    if champion is None:
        fired.append("bootstrap")
        reasons.append("no champion registered: train the first model")
    else:
        severe |= _metric_rules(champion, production, policy, fired, reasons)
        trained_at = champion_trained_at(champion)
        if trained_at is None:
            reasons.append("model age: not evaluated, champion has no trained_at/created_at")
        else:
            age = _days(now - trained_at)
            if age >= policy.max_age_days:
                fired.append("model_age")
                reasons.append(f"champion is {age:.1f} days old ≥ {policy.max_age_days:g}")
            else:
                reasons.append(f"champion is {age:.1f} days old < {policy.max_age_days:g}")

    if new_feedback_count >= policy.min_feedback:
        fired.append("feedback_volume")
        reasons.append(f"{new_feedback_count} new feedback records ≥ {policy.min_feedback}")
    else:
        reasons.append(f"{new_feedback_count} new feedback records < {policy.min_feedback}")

    if drift is None:
        reasons.append("drift: not computed")
    elif drift.drifted:
        fired.append("drift")
        reasons.append(f"drift ({drift.severity}): " + "; ".join(drift.reasons))
        severe |= drift.severity == "severe"
    else:
        reasons.append(f"no statistical drift (severity {drift.severity})")

    if not fired:
        return RetrainDecision(False, reasons, [], "no trigger fired: " + "; ".join(reasons), "none")

    severity = "severe" if severe else "moderate"
    if last is not None and not force:
        since_last = _days(now - last)
        if since_last < policy.cooldown_days:
            if severity == "severe" and policy.severe_overrides_cooldown:
                reasons.append(f"cooldown overridden: severe, last retraining {since_last:.1f} days ago")
            else:
                skipped = (f"cooldown: last retraining {since_last:.1f} days ago < {policy.cooldown_days:g} days; "
                           f"triggers waiting: {', '.join(fired)}")
                reasons.append(skipped)
                return RetrainDecision(False, reasons, fired, skipped, severity)
    return RetrainDecision(True, reasons, fired, None, severity)
