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


def training_operators(backend: str) -> tuple[type, type, dict[str, Any]]:
    """(operator class, sensor class, sensor kwargs) for `backend`."""
    if backend == "sagemaker":
        from streamguard_ops.reconnect import ReconnectingSageMakerTrainingOperator, ResumingSageMakerTrainingSensor

        # Reschedule mode frees the worker slot between pokes of a job that runs for hours.
        return ReconnectingSageMakerTrainingOperator, ResumingSageMakerTrainingSensor, {
            "poke_interval": float(os.environ.get("STREAMGUARD_SAGEMAKER_POKE_SECONDS", "60")),
            "mode": "reschedule", "print_log": True}
    from streamguard_ops.operators import LocalTrainingOperator
    from streamguard_ops.sensors import LocalTrainingSensor

    return LocalTrainingOperator, LocalTrainingSensor, {
        "poke_interval": float(os.environ.get("STREAMGUARD_LOCAL_POKE_SECONDS", "3")), "mode": "poke"}


# ------------------------------------------------------------------------------------ task retries
# Attempt names, failure classes and the create / reconnect / restart / fail decision live in
# `streamguard.lifecycle` (pure). Both training operators and both sensors call `start_job`, the one
# path that starts jobs; a sensor's poke only watches (`lifecycle.watch_outcome`).
from streamguard.lifecycle import AUTOMATIC, MANUAL, attempt_job_name, job_attempts  # noqa: E402,F401


def is_retry(context) -> bool:
    """The first execution of a try >= 2 (not a later poke of a rescheduled try)."""
    return (try_number_of(context) or 1) >= 2 and first_execution_of_try(context)


def start_job(task, context, request, describe, create, *, who: str):
    """Create, reconnect to or restart ``request``'s job as `streamguard.lifecycle.next_action` decides.

    Args:
        task: the operator or sensor (for its task id and log).
        request: the ``CreateTrainingJob`` dict; describe: ``name -> describe dict`` or None;
            create: ``request -> None``.
        who: `MANUAL` for the train operator (run again only when a person cleared it), `AUTOMATIC`
            for a sensor's or evaluation task's own retry.

    Returns:
        the `streamguard.lifecycle.Action` taken.

    Raises:
        AirflowFailException: ``request`` is not a ``CreateTrainingJob`` dict, or no attempt may follow.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from streamguard.lifecycle import FAIL, RESTART, ensure_job

    if not isinstance(request, dict) or "TrainingJobName" not in request:
        raise AirflowFailException(f"{task.task_id}: config must be a CreateTrainingJob dict with "
                                   f"TrainingJobName, got {type(request).__name__}")
    action = ensure_job(request, describe, create, retry=is_retry(context), who=who)
    if action.kind == FAIL:
        raise AirflowFailException(f"training job {action.name} {action.describe.get('TrainingJobStatus')}: "
                                   f"{action.describe.get('FailureReason') or 'no reason given'} ({action.reason})")
    if action.kind == RESTART:
        task.log.info("%s ended %s (%s): started %s with the same request; it resumes from the checkpoints at %s",
                      action.replaces, action.describe.get("TrainingJobStatus"),
                      action.describe.get("FailureReason") or "no reason given", action.name,
                      (request.get("CheckpointConfig") or {}).get("S3Uri", "(no CheckpointConfig)"))
    return action


def will_retry(sensor, context) -> bool:
    """Whether a failure of this try is followed by another (``ti.try_number <= ti.max_tries``)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if not isinstance(number, int):
        return bool(sensor.retries)
    if not isinstance(max_tries, int):
        max_tries = sensor.retries or 0
    return number <= max_tries


def first_execution_of_try(context) -> bool:
    """True unless this is a later poke of a ``reschedule`` sensor within the same try."""
    count = context.get("task_reschedule_count", 0) if hasattr(context, "get") else 0
    return not count


def job_failure(sensor, context, describe: dict, system: str) -> Exception | None:
    """What a watching sensor raises for ``describe``: None while it runs or once it completed.

    Retryable (`AirflowException`) when the sensor has the request (so its retry can start the next
    attempt), `streamguard.lifecycle.failure_class` says a new attempt may succeed and a retry
    follows; final (`AirflowFailException`) otherwise. The message names the job, its state, its
    ``FailureReason`` and what happens next.
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from streamguard.lifecycle import watch_outcome

    retries = getattr(sensor, "config", None) is not None and will_retry(sensor, context)
    outcome, message = watch_outcome(describe, will_retry=retries)
    if outcome == "retry":
        return AirflowException(f"{system} {message}")
    if outcome == "fail":
        return AirflowFailException(f"{system} {message}")
    return None


def try_number_of(context) -> int | None:
    """``context["ti"].try_number``, or None where the context has no task instance (direct calls)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) else None


def job_name_template(train_task) -> str:
    """A Jinja template for a sensor's ``job_name``: the job ``train_task`` actually used.

    Both training operators return a dict with ``job_name`` (``<name>-a<try>`` after a retry
    replaced a failed job), and both sensors template ``job_name``. (``XComArg["key"]`` would
    name an XCom key, not a key of the returned dict.)
    """
    return "{{ ti.xcom_pull(task_ids='%s')['job_name'] }}" % train_task.task_id
