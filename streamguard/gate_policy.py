"""Which gate thresholds apply to a run, and where each one came from.

The deployment owns its gate: `gate.DEFAULT_THRESHOLDS`, changed only by the deployment's own
setting (env `STREAMGUARD_GATE_THRESHOLDS`, else the Airflow Variable `streamguard_gate_thresholds`;
JSON such as ``{"gnn": {"min_val_accuracy": 0.9}, "transformer": {"max_fpr": 0.05}}``). Anyone who
can trigger a run may only *tighten* it from the trigger form: a value that would let a worse model
through is refused with a message naming the parameter, so a trigger cannot make a useless model
champion. Every registry record carries the thresholds applied and the source of each.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from streamguard.gate import DEFAULT_THRESHOLDS, GateConfigError, GateThresholds, thresholds_for

GATE_ENV = "STREAMGUARD_GATE_THRESHOLDS"
GATE_VARIABLE = "streamguard_gate_thresholds"
# Thresholds where a higher value is stricter; for the others (max_*) a lower value is stricter.
_AT_LEAST = ("min_val_accuracy", "min_test_accuracy", "min_f1")


class GateLoosened(ValueError):
    """A trigger param asked for a looser gate than the deployment allows."""


@dataclass(frozen=True)
class AppliedGate:
    """The thresholds a run applies and, per threshold, where its value came from."""

    thresholds: GateThresholds
    sources: dict[str, str]

    def to_dict(self) -> dict:
        return {"thresholds": self.thresholds.to_dict(), "sources": dict(self.sources)}


def read_deployment_setting() -> tuple[str | None, str]:
    """The raw deployment setting and its name; env first, then the Airflow Variable (inside tasks)."""
    raw = os.environ.get(GATE_ENV)
    if raw:
        return raw, f"env {GATE_ENV}"
    try:
        from airflow.sdk import Variable
    except ImportError:  # the library without Airflow (CLI, notebooks)
        return None, "default"
    raw = Variable.get(GATE_VARIABLE, default=None)
    return (raw, f"Airflow Variable {GATE_VARIABLE}") if raw else (None, "default")


def deployment_gate(model_type: str, setting: str | None = None, origin: str = "default") -> AppliedGate:
    """The deployment's gate for `model_type`: the defaults with the deployment setting applied.

    Args:
        setting: the JSON text of the setting (None: the defaults only).
        origin: how to name the setting in sources and errors.

    Raises:
        GateConfigError: the setting is not JSON of ``{model_type: {threshold: value}}`` or a value is invalid.
    """
    base = thresholds_for(model_type)
    sources = {name: "default" for name in base.to_dict()}
    if not setting:
        return AppliedGate(base, sources)
    try:
        parsed = json.loads(setting)
    except ValueError as exc:
        raise GateConfigError(f"{origin}: not valid JSON ({exc})") from None
    if not isinstance(parsed, dict) or any(k not in DEFAULT_THRESHOLDS for k in parsed):
        raise GateConfigError(f"{origin}: expected an object keyed by model type "
                              f"({', '.join(DEFAULT_THRESHOLDS)}), got {setting[:200]!r}")
    mine = parsed.get(model_type) or {}
    try:
        thresholds = thresholds_for(model_type, mine)
    except GateConfigError as exc:
        raise GateConfigError(f"{origin}: {exc}") from None
    sources.update({name: origin for name in mine})
    return AppliedGate(thresholds, sources)


def tighter_or_equal(name: str, requested: float, allowed: float | None) -> bool:
    """Is `requested` at least as strict as the deployment's `allowed` value of threshold `name`?"""
    if allowed is None:  # an optional check the deployment does not apply: any value adds one
        return True
    return requested >= allowed if name in _AT_LEAST else requested <= allowed


def apply_trigger_thresholds(model_type: str, requested: Mapping[str, tuple[str, float | None]],
                             deployment: AppliedGate | None = None) -> AppliedGate:
    """Tighten the deployment's gate with the trigger form's values.

    Args:
        requested: threshold name -> (trigger param name, value or None for "the deployment's").
        deployment: the deployment's gate (read from its setting when None).

    Raises:
        GateLoosened: a value would loosen the gate; the message names the param, both values and
            how the deployment loosens its own gate.
        GateConfigError: a value is not a finite number in range.
    """
    if deployment is None:
        setting, origin = read_deployment_setting()
        deployment = deployment_gate(model_type, setting, origin)
    current = deployment.thresholds.to_dict()
    changes: dict[str, float] = {}
    sources = dict(deployment.sources)
    for name, (param, value) in requested.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise GateConfigError(f"param {param!r}: expected a finite number, got {value!r}")
        if not tighter_or_equal(name, float(value), current.get(name)):
            word = "below" if name in _AT_LEAST else "above"
            raise GateLoosened(
                f"param {param!r}: {value} is {word} the deployment's {model_type} gate {name}={current[name]} "
                f"(from {deployment.sources.get(name, 'default')}); the trigger form may only tighten the "
                f"gate. To loosen it, change the deployment's setting (env {GATE_ENV} or the Airflow "
                f"Variable {GATE_VARIABLE}, e.g. {{\"{model_type}\": {{\"{name}\": {value}}}}})")
        if value != current.get(name):
            changes[name] = float(value)
            sources[name] = f"trigger param {param!r}"
    return AppliedGate(replace(deployment.thresholds, **changes) if changes else deployment.thresholds, sources)
