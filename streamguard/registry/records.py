"""Registry record types and errors: what one version, alias or event file holds.

Every record is plain JSON so that any tool (the AWS console, ``jq``, a notebook) can read
the registry without this package. ``from_dict`` names the field and the file on a bad record.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

RECORD_SCHEMA = 1
STATUSES = ("registered", "rejected")

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class RegistryError(Exception):
    """Any registry failure: a bad argument, an unreadable record or a storage error."""


class VersionNotFound(RegistryError):
    """The requested model version (or the model itself) does not exist."""


class AliasConflict(RegistryError):
    """A compare-and-swap on an alias lost: the alias moved since the caller read it."""


class RecordExists(RegistryError):
    """An exclusive create found the object already there (records are immutable)."""


class PreconditionFailed(RegistryError):
    """A conditional replace found a different object than expected (etag mismatch or gone)."""


def utc_now() -> str:
    """The current time as a UTC ISO-8601 string with microseconds and a ``Z`` suffix."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _require(data: dict, name: str, types: type | tuple[type, ...], where: str) -> Any:
    if name not in data:
        raise RegistryError(f"{where}: field {name!r} is missing")
    value = data[name]
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _as_tuple(types):
        raise RegistryError(f"{where}: field {name!r} has type {type(value).__name__}, expected {_type_names(types)}")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(types))


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version record of a model (registered or rejected by the gate).

    ``gate`` is the gate decision as a dict: ``{"passed", "reasons", "thresholds", ...}``.
    ``registration_id`` ties the record to the by-job claim that produced it (crash recovery).
    """

    model_name: str
    version: int
    model_type: str
    status: str
    artifact_uri: str
    artifact_sha256: str
    metrics: dict
    training_job_name: str
    backend: str
    data_hash: str
    code_version: str
    hyperparameters: dict
    gate: dict
    created_at: str
    registration_id: str = ""
    extra: dict = field(default_factory=dict)
    schema: int = RECORD_SCHEMA

    @property
    def passed_gate(self) -> bool:
        return bool(self.gate.get("passed"))

    def metric(self, path: str) -> Any:
        """Value at a dotted path into ``metrics`` (``"test.accuracy"``), or None when absent."""
        node: Any = self.metrics
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "version record") -> "ModelVersion":
        """Build from parsed JSON, checking every field; ``where`` names the file in errors."""
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: expected a JSON object, got {type(data).__name__}")
        values = {
            "model_name": _require(data, "model_name", str, where),
            "version": _require(data, "version", int, where),
            "model_type": _require(data, "model_type", str, where),
            "status": _require(data, "status", str, where),
            "artifact_uri": _require(data, "artifact_uri", str, where),
            "artifact_sha256": _require(data, "artifact_sha256", str, where),
            "metrics": _require(data, "metrics", dict, where),
            "training_job_name": _require(data, "training_job_name", str, where),
            "backend": _require(data, "backend", str, where),
            "data_hash": _require(data, "data_hash", str, where),
            "code_version": _require(data, "code_version", str, where),
            "hyperparameters": _require(data, "hyperparameters", dict, where),
            "gate": _require(data, "gate", dict, where),
            "created_at": _require(data, "created_at", str, where),
            "registration_id": data.get("registration_id", ""),
            "extra": data.get("extra") or {},
            "schema": data.get("schema", RECORD_SCHEMA),
        }
        if values["status"] not in STATUSES:
            raise RegistryError(f"{where}: field 'status' is {values['status']!r}, expected one of {STATUSES}")
        return cls(**values)


@dataclass(frozen=True)
class AliasRecord:
    """Where an alias (``champion``, ``deployed``, ...) points, with its move counter.

    ``revision`` grows by one on every move, so a reader can tell two moves to the same version
    apart; ``previous_version`` is the version it pointed at before this move (None for the first).
    """

    model_name: str
    alias: str
    version: int
    revision: int
    previous_version: int | None
    updated_at: str
    reason: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "alias record") -> "AliasRecord":
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: expected a JSON object, got {type(data).__name__}")
        previous = data.get("previous_version")
        if previous is not None and not isinstance(previous, int):
            raise RegistryError(f"{where}: field 'previous_version' must be an integer or null")
        return cls(
            model_name=_require(data, "model_name", str, where),
            alias=_require(data, "alias", str, where),
            version=_require(data, "version", int, where),
            revision=_require(data, "revision", int, where),
            previous_version=previous,
            updated_at=_require(data, "updated_at", str, where),
            reason=data.get("reason", "") or "",
        )


@dataclass(frozen=True)
class Event:
    """One entry of the append-only event log (one object per event)."""

    event_id: str
    kind: str
    created_at: str
    payload: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "event") -> "Event":
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: expected a JSON object, got {type(data).__name__}")
        return cls(
            event_id=_require(data, "event_id", str, where),
            kind=_require(data, "kind", str, where),
            created_at=_require(data, "created_at", str, where),
            payload=_require(data, "payload", dict, where),
        )


def check_name(value: Any, what: str, pattern: re.Pattern) -> str:
    """Validate a model, job or alias name (they become object keys, so no slashes or spaces)."""
    if not isinstance(value, str) or not pattern.match(value):
        raise RegistryError(f"invalid {what} {value!r}: must match {pattern.pattern}")
    return value
