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


# ------------------------------------------------------------------------------------ task retries
# Attempt names, failure classes and the create / reconnect / restart / fail decision live in
# `streamguard.lifecycle` (pure). Only the training operators call `start_job`, the one path that
# starts jobs; sensors only watch the attempt they are given (`watch_failure`).
from streamguard.lifecycle import AUTOMATIC, MANUAL, attempt_job_name, job_attempts  # noqa: E402,F401


def try_of(task, context) -> tuple[bool, str]:
    """``(retry, who)`` of this execution, as `streamguard.lifecycle.try_origin` reads the task instance.

    ``retry`` is False for a later execution of the same try (a rescheduled poke), which must not
    start another attempt.
    """
    from streamguard.lifecycle import try_origin

    ti = context.get("ti") if hasattr(context, "get") else None
    retries = getattr(getattr(ti, "task", None), "retries", None)
    if not isinstance(retries, int):
        retries = getattr(task, "retries", None)
    retry, who = try_origin(try_number_of(context), getattr(ti, "max_tries", None), retries)
    return retry and first_execution_of_try(context), who


def start_job(task, context, request, describe, create):
    """Create, reconnect to or restart ``request``'s job as `streamguard.lifecycle.next_action` decides.

    Called only by the task that owns the job (a training operator): Airflow's retries of that task
    are the job's attempts (`AUTOMATIC`), and its first try after a person cleared it is `MANUAL`.

    Args:
        task: the operator (for its task id, retries and log).
        request: the ``CreateTrainingJob`` dict; describe: ``name -> describe dict`` or None;
            create: ``request -> None``.

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
    retry, who = try_of(task, context)
    action = ensure_job(request, describe, create, retry=retry, who=who)
    if action.kind == FAIL:
        raise AirflowFailException(f"training job {action.name} {action.describe.get('TrainingJobStatus')}: "
                                   f"{action.describe.get('FailureReason') or 'no reason given'} ({action.reason})")
    if action.kind == RESTART:
        task.log.info("%s ended %s (%s): started %s with the same request (%s retry); it resumes from the "
                      "checkpoints at %s", action.replaces, action.describe.get("TrainingJobStatus"),
                      action.describe.get("FailureReason") or "no reason given", action.name, who,
                      (request.get("CheckpointConfig") or {}).get("S3Uri", "(no CheckpointConfig)"))
    return action


def will_retry(task, context) -> bool:
    """Whether a failure of this try is followed by another (``ti.try_number <= ti.max_tries``)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if not isinstance(number, int):
        return bool(task.retries)
    if not isinstance(max_tries, int):
        max_tries = task.retries or 0
    return number <= max_tries


def first_execution_of_try(context) -> bool:
    """True unless this is a later poke of a ``reschedule`` sensor within the same try."""
    count = context.get("task_reschedule_count", 0) if hasattr(context, "get") else 0
    return not count


def attempt_failure(task, context, describe: dict, system: str) -> Exception | None:
    """What the train task raises for its attempt's ``describe``: None while it runs or once it completed.

    Retryable (`AirflowException`) when `streamguard.lifecycle.failure_class` says a new attempt may
    succeed and Airflow retries this task (its retry starts the next attempt); final
    (`AirflowFailException`) otherwise. The message names the job, its state, its
    ``FailureReason`` and what happens next.
    """
    return _outcome_error(describe, system, will_retry=will_retry(task, context), watcher=False)


def watch_failure(describe: dict, system: str) -> Exception | None:
    """What a sensor raises for the job it watches: None while it runs or once it completed.

    Always final (`AirflowFailException`): a sensor's retry would only see the same ended job
    again, and it never starts one. The message says who can start the next attempt.
    """
    return _outcome_error(describe, system, will_retry=False, watcher=True)


def _outcome_error(describe: dict, system: str, *, will_retry: bool, watcher: bool) -> Exception | None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from streamguard.lifecycle import watch_outcome

    outcome, message = watch_outcome(describe, will_retry=will_retry, watcher=watcher)
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
