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
            "poke_interval": 60, "mode": "reschedule", "print_log": True}
    from streamguard_ops.operators import LocalTrainingOperator
    from streamguard_ops.sensors import LocalTrainingSensor

    return LocalTrainingOperator, LocalTrainingSensor, {
        "poke_interval": float(os.environ.get("STREAMGUARD_LOCAL_POKE_SECONDS", "3")), "mode": "poke"}


# ------------------------------------------------------------------------------------ task retries
# Every job of one request is an *attempt*: ``<base>``, then ``<base>-a2``, ``<base>-a3``... numbered
# without gaps, each started only after the one before it ended Failed or Stopped. The newest attempt
# is the request's job: tasks reconnect to it, and a retry that finds it Failed or Stopped starts the
# next one with the same request, which resumes from the checkpoints at ``CheckpointConfig``.
RESTART_STATES = frozenset({"Failed", "Stopped"})
MAX_ATTEMPTS = 50
_HASH_TAIL = 11  # "-<sha256[:10]>" that `make_job_name` ends every name with


def attempt_job_name(base: str, attempt: int) -> str:
    """The job name of attempt ``attempt`` (>= 2) of a request: ``<base>-a<attempt>``, at most 63 characters.

    When the base name is too long, its middle (the run slug) is shortened: the head and the
    hash tail that makes it unique survive.

    Raises:
        ValueError: ``attempt`` < 2, or no valid name results.
    """
    from streamguard.sagemaker_jobs import JOB_NAME_MAX, check_job_name

    if attempt < 2:
        raise ValueError(f"attempt_job_name: attempt {attempt} is not a retry (the first attempt uses {base!r})")
    suffix = f"-a{attempt}"
    name = base + suffix
    if len(name) > JOB_NAME_MAX:
        tail = base[-_HASH_TAIL:]
        head = base[: len(base) - _HASH_TAIL][: JOB_NAME_MAX - len(suffix) - len(tail)].rstrip("-")
        name = head + tail + suffix
    return check_job_name(name)


def job_attempts(base: str, describe) -> list[tuple[str, dict]]:
    """The existing attempts of ``base``, oldest first, as ``(name, DescribeTrainingJob dict)``.

    Args:
        describe: ``name -> describe dict``, or None when no such job exists.
    """
    attempts: list[tuple[str, dict]] = []
    for number in range(1, MAX_ATTEMPTS + 1):
        name = base if number == 1 else attempt_job_name(base, number)
        found = describe(name)
        if found is None:
            break
        attempts.append((name, found))
    return attempts


def choose_job(base: str, try_number: int | None, describe) -> tuple[str, dict | None, str | None]:
    """Which job a (re)tried training task should create or reconnect to.

    Args:
        base: the configured (deterministic) job name.
        try_number: the task's try (``ti.try_number``); None or 1 means a first try.
        describe: ``name -> DescribeTrainingJob dict``, or None when no such job exists.

    Returns:
        ``(name, existing, replaces)``: the job to use, its describe (None: create it) and the
        Failed/Stopped job it replaces (None unless a new attempt starts). The newest attempt is
        reconnected to whatever its state, except by a retry (try >= 2) that finds it Failed or
        Stopped: that starts the next attempt.

    Raises:
        ValueError: every one of `MAX_ATTEMPTS` attempts exists.
    """
    attempts = job_attempts(base, describe)
    if not attempts:
        return base, None, None
    name, newest = attempts[-1]
    if (try_number or 1) < 2 or newest.get("TrainingJobStatus") not in RESTART_STATES:
        return name, newest, None
    if len(attempts) >= MAX_ATTEMPTS:
        raise ValueError(f"{base}: all {MAX_ATTEMPTS} attempts have been used; not starting another")
    return attempt_job_name(base, len(attempts) + 1), None, name


# --------------------------------------------------------------------------- sensor-driven resume
def resumable(describe: dict) -> bool:
    """Whether a retry should start a new attempt after this job: it Failed, not by a ClientError
    nor by one of the entry's deterministic failures (`streamguard.core.job_errors`).

    SageMaker's ``ClientError`` reasons (a missing channel, a bad request; the local backend uses
    the same prefix) recur on every attempt. ``Stopped`` means someone or something stopped the
    job on purpose (a user, ``MaxRuntimeInSeconds``, a sensor that gave up): not restarted behind
    their back.
    """
    from streamguard.core.job_errors import is_deterministic_failure

    if describe.get("TrainingJobStatus") != "Failed":
        return False
    reason = str(describe.get("FailureReason") or "")
    # The entry's deterministic failures (bad input, bad arguments, integrity), in the form the local
    # backend shows them and in the form SageMaker does (toolkit report with `ExitCode 3`).
    return not (reason.startswith("ClientError") or is_deterministic_failure(reason))


def failure_message(name: str, describe: dict, *, resumes: bool) -> str:
    """One line for a Failed or Stopped job: its state, its reason and what happens next."""
    state = describe.get("TrainingJobStatus")
    reason = describe.get("FailureReason") or "no reason given"
    if resumes:
        nxt = "a retry of this task starts the next attempt, which resumes from the last checkpoint"
    elif state == "Stopped":
        nxt = "not restarted automatically: clear the train task to start an attempt that resumes from the checkpoint"
    else:
        nxt = "not retried: this failure would recur"
    return f"training job {name} {state}: {reason} ({nxt})"


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


def job_failure(sensor, context, name: str, describe: dict, system: str) -> Exception:
    """The exception a resuming sensor raises for a Failed or Stopped job.

    Retryable (`AirflowException`) when the sensor has the request, the failure is `resumable` and
    a retry follows; final (`AirflowFailException`) otherwise. The message names the job, its
    state, its ``FailureReason`` and what happens next.
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    resumes = getattr(sensor, "config", None) is not None and resumable(describe) and will_retry(sensor, context)
    message = f"{system} " + failure_message(name, describe, resumes=resumes)
    return AirflowException(message) if resumes else AirflowFailException(message)


def resolve_watched_job(sensor, context, describe, create) -> str:
    """The job a resuming sensor watches; on a retry after a resumable failure, start the next attempt.

    ``sensor.config`` is the ``CreateTrainingJob`` request the train task sent. The sensor watches
    that request's newest attempt. In the first execution of a retry (try >= 2; not a later
    ``reschedule`` poke) that finds the newest attempt `resumable`, it starts ``<base>-a<n+1>``
    with the same request, whose ``CheckpointConfig`` makes the entry resume from the last epoch
    checkpoint. Idempotent: a try that dies after starting an attempt leaves it newest, and the
    next try watches it.

    Args:
        describe: ``name -> describe dict`` or None; create: ``request -> None``.

    Raises:
        AirflowFailException: ``sensor.config`` is not a ``CreateTrainingJob`` dict.
    """
    if not isinstance(sensor.config, dict) or "TrainingJobName" not in sensor.config:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{sensor.task_id}: config must be a CreateTrainingJob dict with "
                                   f"TrainingJobName, got {type(sensor.config).__name__}")
    base = sensor.config["TrainingJobName"]
    attempts = job_attempts(base, describe)
    if not attempts:
        return sensor.job_name or base
    name, newest = attempts[-1]
    retry = (try_number_of(context) or 1) >= 2 and first_execution_of_try(context)
    if not (retry and resumable(newest)):
        return name
    if len(attempts) >= MAX_ATTEMPTS:
        return name  # the poke reports the failure
    new = attempt_job_name(base, len(attempts) + 1)
    sensor.log.info("%s Failed (%s): starting %s with the same request; it resumes from the checkpoints at %s",
                    name, newest.get("FailureReason") or "no reason given", new,
                    (sensor.config.get("CheckpointConfig") or {}).get("S3Uri", "(no CheckpointConfig)"))
    create(dict(sensor.config, TrainingJobName=new))
    return new


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
