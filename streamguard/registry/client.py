"""`RegistryClient`: validates arguments and delegates to the store chosen by the URI scheme.

    client = RegistryClient("s3://models/registry")      # or file:///path, or a plain path
    mv = client.register("taint-gnn", model_type="gnn", ..., gate=decision)
    client.promote("taint-gnn", mv.version)               # moves `champion` with compare-and-swap
    client.mark_deployed("taint-gnn", mv.version)         # moves `deployed` + a deployment event
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from streamguard.registry.records import (
    ALIAS_RE,
    JOB_NAME_RE,
    MODEL_NAME_RE,
    STATUSES,
    AliasRecord,
    Event,
    ModelVersion,
    RegistryError,
    VersionNotFound,
    check_name,
    utc_now,
)
from streamguard.registry.store import RegistryStore, version_key

CHAMPION = "champion"
DEPLOYED = "deployed"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Metrics where smaller is better; `best` minimises these unless told otherwise.
_LOWER_IS_BETTER = {"fpr", "fnr", "loss", "ece", "brier"}


def store_for_uri(uri: str) -> RegistryStore:
    """The store for a registry URI: ``s3://`` -> S3, ``file://`` or a plain path -> local."""
    if not isinstance(uri, str) or not uri.strip():
        raise RegistryError("registry URI is empty: pass file:///path, a path or s3://bucket/prefix")
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "s3":
        from streamguard.registry.s3 import S3Store

        return S3Store(uri)
    if scheme in ("", "file"):
        from streamguard.registry.local import LocalStore

        return LocalStore(uri)
    raise RegistryError(f"registry URI {uri!r}: unsupported scheme {scheme!r} (use file:// or s3://)")


def _json_dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise RegistryError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        # Round-trip so the stored record is exactly what a reader will get back.
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} is not JSON-serializable without NaN/inf: {exc}") from exc


def _gate_dict(gate: Any) -> dict:
    if hasattr(gate, "to_dict"):
        gate = gate.to_dict()
    gate = _json_dict(gate, "gate")
    if not isinstance(gate.get("passed"), bool):
        raise RegistryError("gate must carry a boolean 'passed' (the gate decision)")
    if not isinstance(gate.get("reasons", []), list):
        raise RegistryError("gate 'reasons' must be a list of strings")
    gate.setdefault("reasons", [])
    gate.setdefault("thresholds", {})
    return gate


def _flatten_numbers(node: Any, prefix: str = "") -> dict[str, int | float]:
    """``{"test": {"accuracy": 0.9}}`` -> ``{"test.accuracy": 0.9}`` (numbers only; lists skipped)."""
    out: dict[str, int | float] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            out.update(_flatten_numbers(value, f"{prefix}{key}."))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out[prefix[:-1]] = node
    return out


class RegistryClient:
    """Model registry: immutable versions, CAS-moved aliases, an append-only event log."""

    def __init__(self, uri: str | None = None, *, store: RegistryStore | None = None):
        """Open the registry at ``uri`` (default: ``streamguard.settings.registry_uri()``)."""
        if store is None:
            if uri is None:
                from streamguard.settings import registry_uri

                uri = registry_uri()
            store = store_for_uri(uri)
        self.store = store

    @property
    def uri(self) -> str:
        return self.store.uri

    def __repr__(self) -> str:
        return f"RegistryClient({self.uri!r})"

    # ---- registration --------------------------------------------------------------------
    def register(
        self,
        model_name: str,
        *,
        model_type: str,
        artifact_uri: str,
        artifact_sha256: str,
        metrics: dict,
        training_job_name: str,
        backend: str,
        data_hash: str,
        code_version: str,
        hyperparameters: dict,
        gate: Any,
        status: str = "registered",
        extra: dict | None = None,
    ) -> ModelVersion:
        """Record a trained model (passed or rejected by the gate) as a new immutable version.

        Idempotent by ``training_job_name``: registering a job again returns its existing version
        and writes nothing. A rejected model is recorded with ``status="rejected"`` so the gate
        history keeps it; it can never be aliased.

        Args:
            gate: a ``GateDecision`` or a dict with ``passed``, ``reasons``, ``thresholds``.
        """
        check_name(model_name, "model name", MODEL_NAME_RE)
        check_name(training_job_name, "training job name", JOB_NAME_RE)
        for what, value in (("model_type", model_type), ("artifact_uri", artifact_uri), ("backend", backend),
                            ("data_hash", data_hash), ("code_version", code_version)):
            if not isinstance(value, str) or not value.strip():
                raise RegistryError(f"register {model_name!r}: {what} must be a non-empty string, got {value!r}")
        if not isinstance(artifact_sha256, str) or not _SHA256_RE.match(artifact_sha256):
            raise RegistryError(f"register {model_name!r}: artifact_sha256 must be 64 lowercase hex digits")
        if status not in STATUSES:
            raise RegistryError(f"register {model_name!r}: status {status!r} is not one of {STATUSES}")
        metrics = _json_dict(metrics, "metrics")
        hyperparameters = _json_dict(hyperparameters, "hyperparameters")
        extra = _json_dict(extra or {}, "extra")
        gate_dict = _gate_dict(gate)
        if status == "registered" and not gate_dict["passed"]:
            raise RegistryError(
                f"register {model_name!r} (job {training_job_name}): the gate failed "
                f"({'; '.join(gate_dict['reasons']) or 'no reason given'}); record it with status='rejected'"
            )

        def build(version: int, registration_id: str) -> dict:
            return ModelVersion(
                model_name=model_name, version=version, model_type=model_type, status=status,
                artifact_uri=artifact_uri, artifact_sha256=artifact_sha256, metrics=metrics,
                training_job_name=training_job_name, backend=backend, data_hash=data_hash,
                code_version=code_version, hyperparameters=hyperparameters, gate=gate_dict,
                created_at=utc_now(), registration_id=registration_id, extra=extra,
            ).to_dict()

        record, created = self.store.register_once(model_name, training_job_name, build)
        if created:
            self.store.append_event("version_created", {
                "model_name": model_name, "version": record.version, "status": record.status,
                "training_job_name": training_job_name, "gate_passed": gate_dict["passed"],
            })
        return record

    # ---- reading -------------------------------------------------------------------------
    def get_version(self, model_name: str, version: int) -> ModelVersion:
        check_name(model_name, "model name", MODEL_NAME_RE)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RegistryError(f"model {model_name!r}: version must be a positive integer, got {version!r}")
        return self.store.get_version(model_name, version)

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        check_name(model_name, "model name", MODEL_NAME_RE)
        return self.store.list_versions(model_name)

    def scan_versions(self, model_name: str) -> tuple[list[ModelVersion], list[dict]]:
        """Every readable version, and ``{"version", "uri", "error"}`` for each unreadable one.

        For views that must show what is healthy when one record is torn or corrupt;
        ``list_versions`` raises on the first bad record instead.
        """
        check_name(model_name, "model name", MODEL_NAME_RE)
        good, broken = [], []
        for number in self.store.version_numbers(model_name):
            try:
                good.append(self.store.get_version(model_name, number))
            except RegistryError as exc:
                broken.append({"version": number, "uri": self.store.key_uri(version_key(model_name, number)),
                               "error": str(exc)})
        return good, broken

    def list_models(self) -> list[str]:
        return self.store.list_models()

    def latest(self, model_name: str, status: str | None = "registered") -> ModelVersion | None:
        """The highest version with ``status`` (None: any status), or None when there is none."""
        if status is not None and status not in STATUSES:
            raise RegistryError(f"status {status!r} is not one of {STATUSES}")
        candidates = [v for v in self.list_versions(model_name) if status is None or v.status == status]
        return candidates[-1] if candidates else None

    def best(
        self, model_name: str, metric: str = "test.accuracy", *,
        status: str | None = "registered", maximize: bool | None = None,
    ) -> ModelVersion | None:
        """The version with the best value at a dotted ``metric`` path; ties go to the newer version.

        Args:
            maximize: None infers it from the metric's last part (``fpr``, ``loss``... are minimised).
        """
        if maximize is None:
            maximize = metric.rsplit(".", 1)[-1] not in _LOWER_IS_BETTER
        best_version, best_value = None, None
        for record in self.list_versions(model_name):
            if status is not None and record.status != status:
                continue
            value = record.metric(metric)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
                continue
            better = best_value is None or (value >= best_value if maximize else value <= best_value)
            if better:
                best_version, best_value = record, value
        return best_version

    def compare(self, model_name: str, v1: int, v2: int) -> dict:
        """Metric deltas (``v2 - v1``) and what else changed between two versions."""
        a, b = self.get_version(model_name, v1), self.get_version(model_name, v2)
        ma, mb = _flatten_numbers(a.metrics), _flatten_numbers(b.metrics)
        metrics = {}
        for name in sorted(set(ma) | set(mb)):
            va, vb = ma.get(name), mb.get(name)
            metrics[name] = {"v1": va, "v2": vb, "delta": None if va is None or vb is None else vb - va}
        hp_keys = sorted(set(a.hyperparameters) | set(b.hyperparameters))
        return {
            "model_name": model_name,
            "v1": v1,
            "v2": v2,
            "metrics": metrics,
            "hyperparameters_changed": {
                k: {"v1": a.hyperparameters.get(k), "v2": b.hyperparameters.get(k)}
                for k in hp_keys if a.hyperparameters.get(k) != b.hyperparameters.get(k)
            },
            "data_hash_changed": a.data_hash != b.data_hash,
            "code_version_changed": a.code_version != b.code_version,
            "status": {"v1": a.status, "v2": b.status},
        }

    def gate_history(self, model_name: str, versions: list[ModelVersion] | None = None) -> list[dict]:
        """Every gate decision for the model, oldest first, rejected versions included.

        Args:
            versions: the records to summarise (default: ``list_versions``).
        """
        return [
            {
                "version": v.version,
                "status": v.status,
                "passed": v.passed_gate,
                "reasons": list(v.gate.get("reasons", [])),
                "thresholds": v.gate.get("thresholds", {}),
                "training_job_name": v.training_job_name,
                "created_at": v.created_at,
            }
            for v in (self.list_versions(model_name) if versions is None else versions)
        ]

    # ---- aliases -------------------------------------------------------------------------
    def set_alias(
        self, model_name: str, alias: str, version: int, *,
        expected_version: int | None = None, reason: str = "",
    ) -> AliasRecord:
        """Point ``alias`` at ``version`` with compare-and-swap, and log an ``alias_moved`` event.

        Args:
            expected_version: the version the alias must point at now (0: the alias must not
                exist yet); None moves it unconditionally (still never losing a concurrent move).

        Raises:
            AliasConflict: the alias moved meanwhile; re-read it and decide again.
            RegistryError: the version is rejected, or the alias name is invalid.
        """
        check_name(alias, "alias", ALIAS_RE)
        record = self.get_version(model_name, version)
        if record.status != "registered":
            raise RegistryError(
                f"cannot point alias {alias!r} at model {model_name!r} version {version}: it was rejected "
                f"by the gate ({'; '.join(record.gate.get('reasons', [])) or 'no reason recorded'})"
            )
        if expected_version is not None and (not isinstance(expected_version, int) or expected_version < 0):
            raise RegistryError(f"expected_version must be a version number or 0 (absent), got {expected_version!r}")
        moved = self.store.move_alias(model_name, alias, version, expected_version, reason)
        self.store.append_event("alias_moved", moved.to_dict())
        return moved

    def get_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None when the alias is not set."""
        record = self.alias_record(model_name, alias)
        return None if record is None else self.get_version(model_name, record.version)

    def alias_record(self, model_name: str, alias: str) -> AliasRecord | None:
        check_name(model_name, "model name", MODEL_NAME_RE)
        check_name(alias, "alias", ALIAS_RE)
        return self.store.read_alias(model_name, alias)

    def list_aliases(self, model_name: str) -> dict[str, AliasRecord]:
        check_name(model_name, "model name", MODEL_NAME_RE)
        return self.store.list_aliases(model_name)

    def promote(
        self, model_name: str, version: int, *, expected_version: int | None = None, reason: str = "promoted"
    ) -> AliasRecord:
        """Make ``version`` the champion (CAS on the ``champion`` alias); rejected versions refused."""
        return self.set_alias(model_name, CHAMPION, version, expected_version=expected_version, reason=reason)

    def mark_deployed(
        self, model_name: str, version: int, *, expected_version: int | None = None, target: str = ""
    ) -> AliasRecord:
        """Record a deployment: the ``deployed`` alias moves (clearing the previous one) + an event."""
        moved = self.set_alias(model_name, DEPLOYED, version, expected_version=expected_version,
                               reason=f"deployed to {target}" if target else "deployed")
        self.store.append_event("deployment", {
            "model_name": model_name, "version": version, "previous_version": moved.previous_version,
            "revision": moved.revision, "target": target,
        })
        return moved

    # ---- events --------------------------------------------------------------------------
    def append_event(self, kind: str, payload: dict) -> str:
        """Append one event (its own object, never a rewritten log file); returns its id."""
        if not isinstance(kind, str) or not re.match(r"^[a-z][a-z0-9_.-]{0,63}$", kind):
            raise RegistryError(f"invalid event kind {kind!r}: lowercase letters, digits, '_', '.', '-'")
        return self.store.append_event(kind, _json_dict(payload, f"event {kind!r} payload"))

    def list_events(self, kind: str | None = None) -> list[Event]:
        """Events oldest first, optionally only those of one ``kind``."""
        return self.store.list_events(kind)


__all__ = ["RegistryClient", "store_for_uri", "CHAMPION", "DEPLOYED", "VersionNotFound"]
