"""Which attempt of a training job a task runs, and what a try raises for the job's end state.

Attempt names, failure classes and the create / reconnect / restart / fail decision live in
`streamguard.lifecycle` (pure). Only the training operators call `start_job`, the one path that
starts jobs (Airflow's retries of the train task are the job's attempts); sensors only watch the
attempt they are given (`watch_failure`).
"""

from __future__ import annotations

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
