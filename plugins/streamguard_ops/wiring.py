"""What the DAG files read at parse time: the backend, its training operator and sensor, and settings.

The operator and sensor classes for the configured backend are chosen once at DAG parse time:
`local` imports nothing heavy; `sagemaker` imports the amazon provider (and so boto3), which is
what a SageMaker deployment parses with anyway. `job_name_template` points a sensor at the
attempt its train task reported.
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


def prepare_on_from_env(backend: str) -> str:
    """Where graph shards are built: `workers` (mapped tasks, default) or `processing` (one SageMaker
    Processing job; `STREAMGUARD_PREPARE_ON=processing`, SageMaker backend only)."""
    value = os.environ.get("STREAMGUARD_PREPARE_ON", "").strip().lower() or "workers"
    if value not in ("workers", "processing"):
        raise ValueError(f"STREAMGUARD_PREPARE_ON={value!r} is not one of workers, processing")
    if value == "processing" and backend != "sagemaker":
        raise ValueError("STREAMGUARD_PREPARE_ON=processing needs STREAMGUARD_BACKEND=sagemaker")
    return value


def retry_delay_from_env() -> float:
    """Seconds between a failed task and its retry: `STREAMGUARD_RETRY_DELAY_SECONDS` (default 20), validated."""
    raw = os.environ.get("STREAMGUARD_RETRY_DELAY_SECONDS", "").strip() or "20"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise ValueError(f"STREAMGUARD_RETRY_DELAY_SECONDS={raw!r} is not a number of seconds in [0, 3600]")
    return value


def deferrable_from_env() -> bool:
    """Whether the train task follows its job from the triggerer: `STREAMGUARD_DEFERRABLE` (default true).

    True: the train task owns its job to the end, and Airflow's retries of it are the job's
    attempts (a job that fails retryably is resumed as ``<job>-a<n>`` by itself). False (no
    triggerer): the train task only starts the job and the `wait` sensor watches it in a worker
    slot; a failed job then fails the run, and only clearing the train task starts the next attempt.
    """
    raw = os.environ.get("STREAMGUARD_DEFERRABLE", "").strip().lower() or "true"
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"STREAMGUARD_DEFERRABLE={raw!r} is not one of true, false")
    return raw in ("true", "1", "yes")


def training_operators(backend: str, deferrable: bool | None = None) -> tuple[type, type, dict[str, Any], dict[str, Any]]:
    """(operator class, sensor class, operator kwargs, sensor kwargs) for `backend`.

    ``deferrable`` (default `deferrable_from_env`): the operator waits for its job in the
    triggerer, and the sensor then only reports the attempt that completed (its log and record).
    """
    if deferrable is None:
        deferrable = deferrable_from_env()
    if backend == "sagemaker":
        from streamguard_ops.reconnect import ReconnectingSageMakerTrainingOperator, ResumingSageMakerTrainingSensor

        poke = float(os.environ.get("STREAMGUARD_SAGEMAKER_POKE_SECONDS", "60"))
        # Reschedule mode frees the worker slot between pokes of a job that runs for hours.
        return ReconnectingSageMakerTrainingOperator, ResumingSageMakerTrainingSensor, {
            "wait_for_completion": deferrable, "deferrable": deferrable, "check_interval": max(1, int(poke))}, {
            "poke_interval": poke, "mode": "reschedule", "print_log": True}
    from streamguard_ops.operators import LocalTrainingOperator
    from streamguard_ops.sensors import LocalTrainingSensor

    poke = float(os.environ.get("STREAMGUARD_LOCAL_POKE_SECONDS", "3"))
    return LocalTrainingOperator, LocalTrainingSensor, {
        "wait_for_completion": deferrable, "deferrable": deferrable, "check_interval": poke}, {
        "poke_interval": poke, "mode": "poke"}


def job_name_template(train_task) -> str:
    """A Jinja template for a sensor's ``job_name``: the job ``train_task`` actually used.

    Both training operators return a dict with ``job_name`` (``<name>-a<try>`` after a retry
    replaced a failed job), and both sensors template ``job_name``. (``XComArg["key"]`` would
    name an XCom key, not a key of the returned dict.)
    """
    return "{{ ti.xcom_pull(task_ids='%s')['job_name'] }}" % train_task.task_id
