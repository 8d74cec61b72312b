"""The training operator and sensor for the configured backend, chosen once at DAG parse time.

`local` imports nothing heavy; `sagemaker` imports the amazon provider (and so boto3), which is
what a SageMaker deployment parses with anyway.
"""

from __future__ import annotations

import os
from typing import Any


def backend_from_env() -> str:
    """`STREAMGUARD_BACKEND` (`local` default, or `sagemaker`), validated."""
    value = os.environ.get("STREAMGUARD_BACKEND", "local").strip().lower() or "local"
    if value not in ("local", "sagemaker"):
        raise ValueError(f"STREAMGUARD_BACKEND={value!r} is not one of local, sagemaker")
    return value


def training_operators(backend: str) -> tuple[type, type, dict[str, Any]]:
    """(operator class, sensor class, sensor kwargs) for `backend`."""
    if backend == "sagemaker":
        from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTrainingSensor

        from streamguard_ops.reconnect import ReconnectingSageMakerTrainingOperator

        # Reschedule mode frees the worker slot between pokes of a job that runs for hours.
        return ReconnectingSageMakerTrainingOperator, SageMakerTrainingSensor, {
            "poke_interval": 60, "mode": "reschedule", "print_log": True}
    from streamguard_ops.operators import LocalTrainingOperator
    from streamguard_ops.sensors import LocalTrainingSensor

    return LocalTrainingOperator, LocalTrainingSensor, {
        "poke_interval": float(os.environ.get("STREAMGUARD_LOCAL_POKE_SECONDS", "3")), "mode": "poke"}
