"""One job lifecycle: attempt names, failure classes and what a task does next. Pure: no I/O.

Every job of one ``CreateTrainingJob`` request is an *attempt*: ``<base>``, then ``<base>-a2``,
``<base>-a3``... numbered without gaps, each started only after the one before it ended Failed or
Stopped. The newest attempt is the request's job. Only the task that owns a job starts attempts:
the train operator (``streamguard_ops``), which follows its job to the end in deferrable mode, and
the evaluation task. Each asks `next_action` what to do, given the attempts that exist, and
`failure_class` whether a failed attempt is worth another. Sensors only watch an attempt they are
given (`watch_outcome` with ``watcher=True``): Airflow has no cycles, so a failed sensor cannot
re-run the task upstream of it.

Decision table (`next_action`; ``retry`` = the task's try >= 2 and this is the first execution of
that try, not a later poke of a rescheduled one or a resumption after a deferral):

============================  =========  ====================  ======================================
newest attempt                retry      who                   action
============================  =========  ====================  ======================================
none                          any        any                   create ``<base>``
InProgress / Stopping         any        any                   reconnect (watch it)
Completed                     any        any                   reconnect (read its outputs)
Failed or Stopped             no         any                   reconnect (the owner reports it)
Failed, class ``retry``       yes        any                   restart as the next attempt
Failed, class ``final``       yes        ``automatic``         fail for good
Stopped                       yes        ``automatic``         fail for good (stopped on purpose)
Failed / Stopped, any class   yes        ``manual``            restart as the next attempt
any of the above restarts     yes        any                   fail for good once `MAX_ATTEMPTS` exist
============================  =========  ====================  ======================================

``automatic`` is a retry Airflow scheduled by itself: the owner failed its try retryably (its
attempt failed in a way a new attempt may fix) or died (its worker was lost); it restarts only
what a new attempt can fix. ``manual`` is the first try after a person cleared the task, who asked
for another attempt whatever ended the last one. `try_origin` tells the two apart from the task
instance's numbers.

Failure classes (`failure_class`), from structured fields, never from the wording of a message:

* the local backend records ``FailureKind`` (``input``, ``transient`` or ``algorithm``) from the
  entry's exit code and the type of the supervisor's own error;
* SageMaker gives only ``FailureReason``; its structured parts are the service's category before
  the first colon (``ClientError``, ``AlgorithmError``, ``InternalServerError``, ``CapacityError``)
  and the training toolkit's ``ExitCode N`` line. ``ClientError`` (the request or its data) and
  exit code `DETERMINISTIC_EXIT_CODE` are final; anything else is retried.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from streamguard.core.job_errors import DETERMINISTIC_EXIT_CODE, DETERMINISTIC_MARKER
from streamguard.jobs.names import JOB_NAME_HASH_LEN, JOB_NAME_MAX, check_job_name

ACTIVE_STATES = frozenset({"InProgress", "Stopping"})
RESTART_STATES = frozenset({"Failed", "Stopped"})
MAX_ATTEMPTS = 50

# Failure classes.
RETRY = "retry"      # a new attempt may succeed (resumes from the last checkpoint)
FINAL = "final"      # the same request fails the same way: do not bill it again
STOPPED = "stopped"  # stopped on purpose (a person, MaxRuntimeInSeconds, a watcher that gave up)

# ``FailureKind`` values the local backend records, and their class.
INPUT, TRANSIENT, ALGORITHM = "input", "transient", "algorithm"
KIND_CLASS = {INPUT: FINAL, TRANSIENT: RETRY, ALGORITHM: RETRY}
# SageMaker's FailureReason categories; a category not listed here is retried.
FINAL_CATEGORIES = frozenset({"ClientError"})
_CATEGORY = re.compile(r"^\s*([A-Z][A-Za-z]*Error)\s*:")
_EXIT_CODE = re.compile(r"\bExitCode[ :]+(-?\d+)\b")

# Actions.
CREATE, RECONNECT, RESTART, FAIL = "create", "reconnect", "restart", "fail"
AUTOMATIC, MANUAL = "automatic", "manual"


def attempt_job_name(base: str, attempt: int) -> str:
    """The job name of attempt ``attempt`` of a request: ``<base>`` for 1, else ``<base>-a<attempt>``.

    At most 63 characters: when the base name is too long, its middle (the run slug) is shortened;
    the head and the hash tail that makes it unique (`streamguard.jobs.names.make_job_name`) survive.

    Raises:
        ValueError: ``attempt`` < 1, or no valid name results.
    """
    if attempt < 1:
        raise ValueError(f"attempt_job_name: attempt {attempt} < 1")
    if attempt == 1:
        return base
    suffix = f"-a{attempt}"
    name = base + suffix
    if len(name) > JOB_NAME_MAX:
        tail_len = JOB_NAME_HASH_LEN + 1  # "-<hash>"
        tail = base[-tail_len:]
        head = base[: len(base) - tail_len][: JOB_NAME_MAX - len(suffix) - tail_len].rstrip("-")
        name = head + tail + suffix
    return check_job_name(name)


def job_attempts(base: str, describe: Callable[[str], dict | None]) -> list[tuple[str, dict]]:
    """The existing attempts of ``base``, oldest first, as ``(name, describe dict)``.

    Args:
        describe: ``name -> DescribeTrainingJob dict``, or None when no such job exists.
    """
    attempts: list[tuple[str, dict]] = []
    for number in range(1, MAX_ATTEMPTS + 1):
        found = describe(attempt_job_name(base, number))
        if found is None:
            break
        attempts.append((attempt_job_name(base, number), found))
    return attempts


def exit_code_of(describe: dict) -> int | None:
    """The training script's exit code: the local backend's ``ExitCode``, else the toolkit's line."""
    code = describe.get("ExitCode")
    if isinstance(code, int):
        return code
    match = _EXIT_CODE.search(str(describe.get("FailureReason") or ""))
    return int(match.group(1)) if match else None


def failure_category(reason: str | None) -> str | None:
    """SageMaker's category of a ``FailureReason`` (``ClientError``, ``AlgorithmError``...), or None."""
    match = _CATEGORY.match(reason or "")
    return match.group(1) if match else None


def failure_class(describe: dict) -> str | None:
    """`RETRY`, `FINAL` or `STOPPED` for a Failed or Stopped job; None for any other state."""
    status = describe.get("TrainingJobStatus")
    if status == "Stopped":
        return STOPPED
    if status != "Failed":
        return None
    kind = describe.get("FailureKind")
    if kind in KIND_CLASS:
        return KIND_CLASS[kind]
    if exit_code_of(describe) == DETERMINISTIC_EXIT_CODE:
        return FINAL
    reason = str(describe.get("FailureReason") or "")
    if DETERMINISTIC_MARKER in reason:  # the toolkit kept the entry's own failure file
        return FINAL
    return FINAL if failure_category(reason) in FINAL_CATEGORIES else RETRY


@dataclass(frozen=True)
class Action:
    """What a task does with a request's job.

    Attributes:
        kind: `CREATE`, `RECONNECT`, `RESTART` or `FAIL`.
        name: the job to create or watch (for `FAIL`, the newest attempt).
        describe: the newest attempt's describe (None when there is none).
        replaces: for `RESTART`, the Failed/Stopped attempt the new one replaces.
        reason: for `FAIL`, why no attempt follows.
    """

    kind: str
    name: str
    describe: dict | None = None
    replaces: str | None = None
    reason: str | None = None

    @property
    def starts_job(self) -> bool:
        return self.kind in (CREATE, RESTART)


def next_action(base: str, attempts: list[tuple[str, dict]], *, retry: bool, who: str = AUTOMATIC) -> Action:
    """Create, reconnect, restart as the next attempt, or fail for good (the table in the module docstring).

    Args:
        base: the request's (deterministic) job name.
        attempts: `job_attempts` of ``base``.
        retry: the first execution of a try >= 2.
        who: `AUTOMATIC` (Airflow's own retry) or `MANUAL` (the first try after a person cleared the task).
    """
    if who not in (AUTOMATIC, MANUAL):
        raise ValueError(f"next_action: who={who!r} is not {AUTOMATIC!r} or {MANUAL!r}")
    if not attempts:
        return Action(CREATE, base)
    name, newest = attempts[-1]
    status = newest.get("TrainingJobStatus")
    if status not in RESTART_STATES or not retry:
        return Action(RECONNECT, name, newest)
    klass = failure_class(newest)
    if who == AUTOMATIC and klass == FINAL:
        return Action(FAIL, name, newest, reason="not retried: this failure would recur")
    if who == AUTOMATIC and klass == STOPPED:
        return Action(FAIL, name, newest, reason="stopped on purpose: not restarted automatically; clear the "
                                                 "train task to start an attempt that resumes from the checkpoint")
    if len(attempts) >= MAX_ATTEMPTS:
        return Action(FAIL, name, newest, reason=f"all {MAX_ATTEMPTS} attempts have been used")
    return Action(RESTART, attempt_job_name(base, len(attempts) + 1), newest, replaces=name)


def try_origin(try_number: int | None, max_tries: int | None, retries: int | None) -> tuple[bool, str]:
    """``(retry, who)`` of a task's try, for `next_action`.

    ``retry``: the try is not the task's first (``try_number >= 2``). ``who``: `MANUAL` when it is
    the first try after a person cleared the task, else `AUTOMATIC`. Clearing sets ``max_tries`` to
    the last try number plus the task's ``retries`` (Airflow's ``clear_task_instances``), so the
    first try after a clear is ``max_tries - retries + 1`` (the number Airflow's task runner itself
    takes for the first try, in ``get_first_reschedule_date``); Airflow's own retries come after it.
    Unknown numbers (a direct call, no task instance) count as a first try, or as `AUTOMATIC`
    when only ``try_number`` is known: that never bills a failure that would recur again.
    """
    if not isinstance(try_number, int) or try_number < 2:
        return False, AUTOMATIC
    if isinstance(max_tries, int) and isinstance(retries, int) and try_number == max_tries - retries + 1:
        return True, MANUAL
    return True, AUTOMATIC


def watch_outcome(describe: dict, *, will_retry: bool, watcher: bool = False) -> tuple[str, str]:
    """What the task watching a job does with it: ``(outcome, message)``.

    outcome: ``wait`` (still running), ``done`` (Completed), ``retry`` (fail this try; its retry
    starts the next attempt) or ``fail`` (fail for good).

    Args:
        will_retry: Airflow retries the task if this try fails.
        watcher: the task only watches (a sensor): it cannot start an attempt, so a failure is
            final for it, and the message says who can start the next one.
    """
    status = describe.get("TrainingJobStatus")
    name = describe.get("TrainingJobName")
    if status in ACTIVE_STATES:
        return "wait", f"{name}: {status} ({describe.get('SecondaryStatus')})"
    if status == "Completed":
        return "done", f"{name} completed"
    klass = failure_class(describe)
    reason = describe.get("FailureReason") or "no reason given"
    if klass == RETRY and watcher:
        return "fail", (f"training job {name} {status}: {reason} (a new attempt may succeed, but a sensor does not "
                        "start one: clear the train task to start the next attempt, which resumes from the last "
                        "checkpoint; in deferrable mode the train task retries it by itself)")
    if klass == RETRY and will_retry:
        return "retry", (f"training job {name} {status}: {reason} (a retry of this task starts the next attempt, "
                         "which resumes from the last checkpoint)")
    if klass == STOPPED:
        nxt = "not restarted automatically: clear the train task to start an attempt that resumes from the checkpoint"
    elif klass == RETRY:
        nxt = "no retry of this task is left"
    else:
        nxt = "not retried: this failure would recur"
    return "fail", f"training job {name} {status}: {reason} ({nxt})"


def ensure_job(request: dict, describe: Callable[[str], dict | None], create: Callable[[dict], None], *,
               retry: bool, who: str) -> Action:
    """The one path that starts jobs (used by the owner only): `next_action` for ``request``, then create
    what it says.

    Args:
        describe: ``name -> describe dict`` or None; create: ``request -> None``, given the
            request under the name the action chose (the same request otherwise).
    """
    base = request["TrainingJobName"]
    action = next_action(base, job_attempts(base, describe), retry=retry, who=who)
    if action.starts_job:
        create(request if action.name == base else dict(request, TrainingJobName=action.name))
    return action
