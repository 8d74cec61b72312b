"""The metric gate: may a trained model be registered? Pure functions, no I/O.

A model passes when every check passes; each failed check adds one reason sentence. A required
metric that is missing or not a number fails its check -- the gate never passes silently.

Checks (``metrics`` is ``{"validation": {...}, "test": {...}?}`` as in ``metrics.json``):

- ``validation.accuracy >= min_val_accuracy``
- ``validation.fpr <= max_fpr``, and ``test.fpr <= max_fpr`` when a test split was evaluated:
  false alarms are what a production scanner is judged on, so the held-out FPR must hold too
  (a validation FPR tuned by early stopping can be optimistic). With no test split only the
  validation FPR is checked.
- ``model_bytes <= max_model_bytes`` (the serving limit for the model type)
- optional ``test.accuracy >= min_test_accuracy`` (the test split is then required)
- optional ``validation.f1 >= min_f1``
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024
GIB = 1024 * MIB


class GateConfigError(ValueError):
    """Bad gate thresholds: an unknown model type or key, or a value out of range."""


@dataclass(frozen=True)
class GateThresholds:
    """Limits a model must meet. Fractions are in [0, 1]; sizes are bytes."""

    min_val_accuracy: float
    max_fpr: float
    max_model_bytes: int
    min_test_accuracy: float | None = None
    min_f1: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULT_THRESHOLDS: dict[str, GateThresholds] = {
    "gnn": GateThresholds(min_val_accuracy=0.92, max_fpr=0.03, max_model_bytes=500 * MIB),
    "transformer": GateThresholds(min_val_accuracy=0.88, max_fpr=0.03, max_model_bytes=2 * GIB),
}

_FRACTION_KEYS = ("min_val_accuracy", "max_fpr", "min_test_accuracy", "min_f1")
_OPTIONAL_KEYS = ("min_test_accuracy", "min_f1")


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict: ``passed``, one reason per failed check, and every check's numbers."""

    passed: bool
    reasons: list[str]
    thresholds: dict
    checks: list[dict] = field(default_factory=list)
    model_type: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any) -> float | int | None:
    if value is None:
        if key in _OPTIONAL_KEYS:
            return None
        raise GateConfigError(f"gate threshold {key!r} cannot be null")
    if isinstance(value, bool):
        raise GateConfigError(f"gate threshold {key!r} must be a number, got {value!r}")
    try:
        number = float(value)  # strings come from Airflow params / CLI flags
    except (TypeError, ValueError):
        raise GateConfigError(f"gate threshold {key!r} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise GateConfigError(f"gate threshold {key!r} must be a number, got NaN")
    if key in _FRACTION_KEYS:
        if not 0.0 <= number <= 1.0:
            raise GateConfigError(f"gate threshold {key!r}={number} is out of range [0, 1]")
        return number
    if not number.is_integer() or number <= 0:
        raise GateConfigError(f"gate threshold {key!r}={value!r} must be a positive whole number of bytes")
    return int(number)


def thresholds_for(model_type: str, overrides: dict | None = None) -> GateThresholds:
    """The default thresholds for ``model_type`` with ``overrides`` applied after validation.

    Raises:
        GateConfigError: unknown model type, unknown override key, or a value out of range.
    """
    if model_type not in DEFAULT_THRESHOLDS:
        raise GateConfigError(
            f"no gate thresholds for model type {model_type!r}; known: {', '.join(sorted(DEFAULT_THRESHOLDS))}"
        )
    base = DEFAULT_THRESHOLDS[model_type]
    if not overrides:
        return base
    if not isinstance(overrides, dict):
        raise GateConfigError(f"gate overrides must be a dict, got {type(overrides).__name__}")
    known = [f.name for f in dataclasses.fields(GateThresholds)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise GateConfigError(f"unknown gate threshold(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return dataclasses.replace(base, **{k: _coerce(k, v) for k, v in overrides.items()})


def _number(metrics: dict, split: str, name: str) -> float | None:
    section = metrics.get(split)
    value = section.get(name) if isinstance(section, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _check(
    checks: list, reasons: list, name: str, value: float | None, limit: float, at_least: bool, label: str
) -> None:
    """Append one check (and its reason when it fails); a missing value always fails."""
    if value is None:
        passed = False
        reasons.append(f"{label} is missing or not a number (required, limit {limit})")
    else:
        passed = value >= limit if at_least else value <= limit
        if not passed:
            word = "below the minimum" if at_least else "above the maximum"
            reasons.append(f"{label} {value:.4f} is {word} {limit:.4f}")
    checks.append({"name": name, "value": value, "limit": limit, "passed": passed})


def _human_bytes(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"


def evaluate_gate(
    model_type: str,
    metrics: dict,
    model_bytes: int | None,
    thresholds: GateThresholds | dict | None = None,
) -> GateDecision:
    """Decide whether a model may be registered.

    Args:
        metrics: ``{"validation": {"accuracy", "fpr", "f1", ...}, "test": {...}}``.
        model_bytes: size of the model artifact (None: unknown, which fails the size check).
        thresholds: a ``GateThresholds``, a dict of overrides, or None for the type's defaults.
    """
    if not isinstance(thresholds, GateThresholds):
        thresholds = thresholds_for(model_type, thresholds)
    if not isinstance(metrics, dict):
        metrics = {}
    checks: list[dict] = []
    reasons: list[str] = []
    _check(checks, reasons, "validation.accuracy", _number(metrics, "validation", "accuracy"),
           thresholds.min_val_accuracy, True, "validation accuracy")
    _check(checks, reasons, "validation.fpr", _number(metrics, "validation", "fpr"),
           thresholds.max_fpr, False, "validation false-positive rate")
    if isinstance(metrics.get("test"), dict) and metrics["test"]:
        _check(checks, reasons, "test.fpr", _number(metrics, "test", "fpr"),
               thresholds.max_fpr, False, "test false-positive rate")
    if thresholds.min_test_accuracy is not None:
        _check(checks, reasons, "test.accuracy", _number(metrics, "test", "accuracy"),
               thresholds.min_test_accuracy, True, "test accuracy")
    if thresholds.min_f1 is not None:
        _check(checks, reasons, "validation.f1", _number(metrics, "validation", "f1"),
               thresholds.min_f1, True, "validation F1")

    valid_size = isinstance(model_bytes, int) and not isinstance(model_bytes, bool) and model_bytes >= 0
    size_ok = valid_size
    if not valid_size:
        limit = _human_bytes(thresholds.max_model_bytes)
        reasons.append(f"model size is unknown or invalid ({model_bytes!r}); limit {limit}")
    elif model_bytes > thresholds.max_model_bytes:
        size_ok = False
        reasons.append(
            f"model size {_human_bytes(model_bytes)} ({model_bytes} bytes) is above the "
            f"{model_type} limit {_human_bytes(thresholds.max_model_bytes)}"
        )
    checks.append({"name": "model_bytes", "value": model_bytes if valid_size else None,
                   "limit": thresholds.max_model_bytes, "passed": size_ok})
    return GateDecision(
        passed=not reasons, reasons=reasons, thresholds=thresholds.to_dict(), checks=checks, model_type=model_type
    )
