"""The records that cross task boundaries in both DAGs, each with `to_dict` / `from_dict`.

XCom values stay JSON dicts (Airflow serialises them); the DAG files convert at the boundary
(`streamguard.pipeline.steps.call`), and the library functions take and return these records.

| record | made by | read by |
|---|---|---|
| `RunContext` | the first task of a run | every task that writes under the run's folder or names a job |
| `RetrainingConfig` | the retraining DAG's `resolve_config` | every retraining task that reads a param |
| `SourcePackage` | `package_source` | job requests, the processing job |
| `PreparedChannels` | data preparation (training), the retraining plan | job requests, evaluation, registration |
| `Evaluation` | `evaluate_model` | the gate, registration, the champion/challenger comparison |
| `RetrainPlan` | the retraining DAG's `retrain_data` | its job, evaluations and promotion |
| `streamguard.jobs.JobRecord` | `collect` | evaluation, registration |

Light: stdlib and `streamguard.pipeline.params` only, so that DAG files may import it at parse time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from streamguard.pipeline.params import TrainingConfig


def plain(obj: Any) -> Any:
    """A JSON-ready copy of a record, a library dataclass (`streamguard.gate`'s decision, a registry
    version, a preparation report) or anything else JSON already takes."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    elif is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    else:
        return obj
    return json.loads(json.dumps(obj, default=str))


def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` checked for fields ``cls`` does not have (they would otherwise vanish)."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}.from_dict: expected a dict, got {type(data).__name__}")
    extra = sorted(set(data) - {f.name for f in fields(cls)})
    if extra:
        raise ValueError(f"{cls.__name__}.from_dict: unknown field(s) {extra}")
    return dict(data)


class _Record:
    """`to_dict` / `from_dict` of a flat record."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return cls(**_known(cls, data))


# ------------------------------------------------------------------------------------------- runs
def run_key(dag_id: str, run_id: str) -> str:
    """A filesystem/S3-safe, deterministic key for one DAG run."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-")[:60]
    digest = hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:10]
    return f"{dag_id}/{slug}-{digest}"


def run_uri(key: str, *parts: str) -> str:
    """``<artifact root>/runs/<key>/<parts...>``."""
    from streamguard import settings, storage

    return storage.join_uri(settings.artifact_root(), "runs", key, *parts)


@dataclass(frozen=True)
class RunContext(_Record):
    """One DAG run: its ids, the backend its jobs run on and its key in the artifact store."""

    dag_id: str
    run_id: str
    backend: str
    key: str

    @classmethod
    def create(cls, dag_id: str, run_id: str, backend: str) -> RunContext:
        if backend not in ("local", "sagemaker"):
            raise ValueError(f"RunContext: backend {backend!r} is not one of local, sagemaker")
        return cls(dag_id=dag_id, run_id=run_id, backend=backend, key=run_key(dag_id, run_id))

    @property
    def dag_run_id(self) -> str:
        """``<dag id>/<run id>``: what job names are derived from."""
        return f"{self.dag_id}/{self.run_id}"

    def uri(self, *parts: str) -> str:
        """A location in this run's folder of the artifact store."""
        return run_uri(self.key, *parts)


# ------------------------------------------------------------------------------------ retraining
@dataclass(frozen=True)
class RetrainingConfig(_Record):
    """The retraining DAG's validated trigger params (`params.resolve_retraining_config`).

    One field per entry of `params.RETRAINING_PARAMS` (its defaults and descriptions live there),
    plus ``gate``: the resolved metric gate per model type, checked once so that a loosened gate is
    refused before any work.
    """

    feedback_uri: str
    models: tuple[str, ...]
    force: bool
    accuracy_drop: float
    fpr_rise: float
    min_feedback: int
    max_age_days: int
    cooldown_days: float
    finetune_epochs: int
    finetune_learning_rate: float
    finetune_lr_factor: float
    min_gain: float
    max_fpr_rise: float
    alpha: float
    slice_tolerance: float
    gnn_min_val_accuracy: float | None
    transformer_min_val_accuracy: float | None
    max_fpr: float | None
    ab_challenger_weight: float
    gate: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrainingConfig:
        values = _known(cls, data)
        values["models"] = tuple(values.get("models", ()))
        return cls(**values)


# ------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SourcePackage(_Record):
    """The uploaded source-dir tarball every job of the run unpacks."""

    uri: str
    sha256: str


@dataclass(frozen=True)
class PreparedChannels(_Record):
    """train/validation/test channel URIs and what they were made from.

    The training DAG writes it (as `to_dict`) as the ``_SUCCESS.json`` marker of the run's data.
    """

    channels: dict[str, str]
    data_hash: str | None = None
    source: str | None = None  # where the data came from, in words (recorded as `data_source`)
    report: dict[str, Any] = field(default_factory=dict)
    quarantine_uri: str | None = None


@dataclass(frozen=True)
class Evaluation(_Record):
    """Real inference of one model on a test channel (`streamguard.pipeline.evaluation.evaluate_model`)."""

    model_type: str
    evaluation_job: str | None
    metrics: dict[str, Any]
    predictions_uri: str
    artifact_uri: str
    artifact_sha256: str
    artifact_bytes: int = 0
    weights_bytes: int = 0


@dataclass(frozen=True)
class Skipped(_Record):
    """A step that had nothing to do, and why (its XCom is ``{"skipped": reason}``)."""

    skipped: str


@dataclass(frozen=True)
class RetrainPlan:
    """What one retraining of one model trains on, with which config, from which weights.

    ``mode`` is ``finetune`` (from the champion, ``champion`` its registry record) or ``bootstrap``
    (no champion: trained from scratch). ``training_config`` is computed once, when the plan is made.
    """

    mode: str
    data: PreparedChannels
    training_config: TrainingConfig
    champion: dict[str, Any] | None = None
    model_channel_uri: str | None = None
    model_sha256: str | None = None

    def __post_init__(self):
        if self.mode not in ("finetune", "bootstrap"):
            raise ValueError(f"RetrainPlan.mode {self.mode!r} is not one of finetune, bootstrap")
        if (self.mode == "finetune") != bool(self.champion):
            raise ValueError(f"RetrainPlan: a {self.mode} plan {'needs' if self.mode == 'finetune' else 'has no'} "
                             "champion")

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "data": self.data.to_dict(), "training_config": self.training_config.to_dict(),
                "champion": self.champion, "model_channel_uri": self.model_channel_uri,
                "model_sha256": self.model_sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrainPlan:
        values = _known(cls, data)
        values["data"] = PreparedChannels.from_dict(values["data"])
        values["training_config"] = TrainingConfig.from_dict(values["training_config"])
        return cls(**values)
