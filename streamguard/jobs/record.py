"""`JobRecord`: the small typed record of a finished (or running) training job.

Downstream tasks read this instead of a backend's full describe output. Both backends produce it
from a ``DescribeTrainingJob``-shaped dict (`job_record_from_describe`).

Metrics come from ``FinalMetricDataList`` (the last value of each ``MetricDefinitions`` metric).
On real SageMaker and on the local backend these are the entry's own log lines; under moto the list
holds moto's fixed placeholder values, so tests that need real numbers read the model artifact's
``metrics.json`` instead (evaluation does that in every mode).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from streamguard.jobs.request import decode_hyperparameter

BACKENDS = ("local", "sagemaker")
ACTIVE_STATES = ("InProgress", "Stopping")
TERMINAL_STATES = ("Completed", "Failed", "Stopped")
FAILED_STATES = ("Failed", "Stopped")
ALL_STATES = ACTIVE_STATES + TERMINAL_STATES


@dataclass(frozen=True)
class JobRecord:
    """What downstream tasks need to know about one training job (JSON-friendly)."""

    job_name: str
    backend: str
    model_type: str | None
    status: str
    artifact_uri: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    failure_reason: str | None = None
    training_seconds: float | None = None
    secondary_status: str | None = None
    describe_uri: str | None = None  # where a full describe snapshot was stored, if anywhere

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"JobRecord.backend {self.backend!r} is not one of {BACKENDS}")
        if self.status not in ALL_STATES:
            raise ValueError(f"JobRecord.status {self.status!r} is not one of {ALL_STATES}")

    @property
    def succeeded(self) -> bool:
        return self.status == "Completed"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        """Inverse of `to_dict`; unknown keys are an error (they would otherwise vanish)."""
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"JobRecord.from_dict: unknown field(s) {extra}")
        values = dict(data)
        values["metrics"] = {str(k): float(v) for k, v in (values.get("metrics") or {}).items()}
        return cls(**values)


def _model_type_from(describe: dict) -> str | None:
    hps = describe.get("HyperParameters") or {}
    for key in ("model-type", "model_type"):
        if key in hps:
            value = decode_hyperparameter(hps[key])
            return str(value)
    return None


def job_record_from_describe(describe: dict, backend: str, model_type: str | None = None,
                             describe_uri: str | None = None) -> JobRecord:
    """Build a `JobRecord` from ``DescribeTrainingJob`` output (SageMaker or local).

    Args:
        model_type: when None, read from the ``model-type`` hyperparameter.

    Raises:
        ValueError: the dict lacks ``TrainingJobName`` / ``TrainingJobStatus``.
    """
    for key in ("TrainingJobName", "TrainingJobStatus"):
        if key not in describe:
            raise ValueError(f"describe output has no {key!r} (keys: {sorted(describe)[:12]})")
    metrics = {}
    for item in describe.get("FinalMetricDataList") or []:
        try:
            metrics[str(item["MetricName"])] = float(item["Value"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"FinalMetricDataList entry {json.dumps(item, default=str)} is malformed: {exc}") from None
    seconds = describe.get("TrainingTimeInSeconds")
    return JobRecord(
        job_name=describe["TrainingJobName"],
        backend=backend,
        model_type=model_type or _model_type_from(describe),
        status=describe["TrainingJobStatus"],
        artifact_uri=(describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        metrics=metrics,
        failure_reason=describe.get("FailureReason") or None,
        training_seconds=float(seconds) if seconds is not None else None,
        secondary_status=describe.get("SecondaryStatus"),
        describe_uri=describe_uri,
    )
