"""`streamguard.lifecycle`: the decision table, failure classes and attempt names (pure, no I/O)."""

from __future__ import annotations

import pytest

from streamguard import lifecycle
from streamguard.lifecycle import (AUTOMATIC, CREATE, FAIL, FINAL, MANUAL, RECONNECT, RESTART, RETRY, STOPPED,
                                   Action, attempt_job_name, ensure_job, failure_class, job_attempts, next_action,
                                   watch_outcome)
from streamguard.jobs.names import JOB_NAME_HASH_LEN, JOB_NAME_MAX, make_job_name

BASE = "sg-gnn-manual-1-0123456789"
A2, A3 = BASE + "-a2", BASE + "-a3"
KILLED = {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: killed by signal 9"}
INPUT = {"TrainingJobStatus": "Failed", "FailureReason": "ClientError: channel train holds no data"}
STOP = {"TrainingJobStatus": "Stopped", "FailureReason": "stopped by a user"}
RUNNING = {"TrainingJobStatus": "InProgress"}
DONE = {"TrainingJobStatus": "Completed"}


def _attempts(*describes):
    return [(attempt_job_name(BASE, n), d) for n, d in enumerate(describes, start=1)]


# --------------------------------------------------------------------------------- decision table
@pytest.mark.parametrize("attempts, retry, who, expected", [
    ((), False, AUTOMATIC, (CREATE, BASE, None)),
    ((), True, MANUAL, (CREATE, BASE, None)),
    ((RUNNING,), True, AUTOMATIC, (RECONNECT, BASE, None)),
    ((DONE,), True, MANUAL, (RECONNECT, BASE, None)),
    ((KILLED,), False, AUTOMATIC, (RECONNECT, BASE, None)),        # the watcher reports it
    ((INPUT,), False, MANUAL, (RECONNECT, BASE, None)),
    ((KILLED,), True, AUTOMATIC, (RESTART, A2, BASE)),             # a new attempt may succeed
    ((KILLED,), True, MANUAL, (RESTART, A2, BASE)),
    ((INPUT,), True, AUTOMATIC, (FAIL, BASE, None)),               # would recur
    ((INPUT,), True, MANUAL, (RESTART, A2, BASE)),                 # a person asked again
    ((STOP,), True, AUTOMATIC, (FAIL, BASE, None)),                # stopped on purpose
    ((STOP,), True, MANUAL, (RESTART, A2, BASE)),
    ((KILLED, RUNNING), True, AUTOMATIC, (RECONNECT, A2, None)),   # the newest attempt counts
    ((KILLED, KILLED), True, AUTOMATIC, (RESTART, A3, A2)),
    ((KILLED, KILLED, DONE), True, AUTOMATIC, (RECONNECT, A3, None)),
])
def test_next_action_decision_table(attempts, retry, who, expected):
    action = next_action(BASE, _attempts(*attempts), retry=retry, who=who)
    assert (action.kind, action.name, action.replaces) == expected
    if action.kind == FAIL:
        assert action.reason


def test_no_attempt_follows_the_last_one():
    full = [(attempt_job_name(BASE, n), KILLED) for n in range(1, lifecycle.MAX_ATTEMPTS + 1)]
    action = next_action(BASE, full, retry=True, who=MANUAL)
    assert action.kind == FAIL and str(lifecycle.MAX_ATTEMPTS) in action.reason


def test_unknown_caller_is_refused():
    with pytest.raises(ValueError, match="who="):
        next_action(BASE, [], retry=True, who="someone")


def test_ensure_job_creates_only_what_the_action_starts():
    jobs: dict[str, dict] = {BASE: dict(KILLED)}
    created: list[dict] = []
    request = {"TrainingJobName": BASE, "CheckpointConfig": {"S3Uri": "s3://b/ck"}}

    def create(r):
        created.append(r)
        jobs[r["TrainingJobName"]] = dict(RUNNING)

    assert ensure_job(request, jobs.get, create, retry=False, who=AUTOMATIC).kind == RECONNECT and created == []
    action = ensure_job(request, jobs.get, create, retry=True, who=AUTOMATIC)
    assert action == Action(RESTART, A2, KILLED, replaces=BASE)
    assert created == [dict(request, TrainingJobName=A2)]
    # Run again (a reschedule, a second retry): the running attempt is watched, nothing else starts.
    assert ensure_job(request, jobs.get, create, retry=True, who=AUTOMATIC).name == A2 and len(created) == 1


# -------------------------------------------------------------------------------- failure classes
@pytest.mark.parametrize("describe, expected", [
    (RUNNING, None),
    (DONE, None),
    (STOP, STOPPED),
    (KILLED, RETRY),
    (INPUT, FINAL),
    # The local backend's structured kind decides, whatever the text says.
    ({"TrainingJobStatus": "Failed", "FailureKind": "transient",
      "FailureReason": "ClientError: upload failed: Could not connect to the endpoint URL"}, RETRY),
    ({"TrainingJobStatus": "Failed", "FailureKind": "input", "FailureReason": "anything"}, FINAL),
    ({"TrainingJobStatus": "Failed", "FailureKind": "algorithm", "ExitCode": 1}, RETRY),
    ({"TrainingJobStatus": "Failed", "ExitCode": 3, "FailureReason": "EntryError: --epochs must be >= 1"}, FINAL),
    # SageMaker: the service's category and the training toolkit's exit code line.
    ({"TrainingJobStatus": "Failed",
      "FailureReason": 'AlgorithmError: ExecuteUserScriptError:\nExitCode 3\nErrorMessage "EntryError: x"'}, FINAL),
    ({"TrainingJobStatus": "Failed",
      "FailureReason": 'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "RuntimeError: x"'}, RETRY),
    ({"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: StreamGuardInputError: bad record"}, FINAL),
    ({"TrainingJobStatus": "Failed", "FailureReason": "InternalServerError: We encountered an internal error."},
     RETRY),
    ({"TrainingJobStatus": "Failed", "FailureReason": "CapacityError: Unable to provision capacity"}, RETRY),
    ({"TrainingJobStatus": "Failed"}, RETRY),
])
def test_failure_class(describe, expected):
    assert failure_class(describe) == expected


def test_watch_outcome_messages_say_what_happens_next():
    assert watch_outcome(dict(RUNNING, TrainingJobName=BASE), will_retry=True)[0] == "wait"
    assert watch_outcome(dict(DONE, TrainingJobName=BASE), will_retry=False)[0] == "done"
    outcome, message = watch_outcome(dict(KILLED, TrainingJobName=BASE), will_retry=True)
    assert outcome == "retry" and "a retry of this task starts the next attempt" in message
    assert watch_outcome(dict(KILLED, TrainingJobName=BASE), will_retry=False)[0] == "fail"
    outcome, message = watch_outcome(dict(INPUT, TrainingJobName=BASE), will_retry=True)
    assert outcome == "fail" and "not retried: this failure would recur" in message
    outcome, message = watch_outcome(dict(STOP, TrainingJobName=BASE), will_retry=True)
    assert outcome == "fail" and "clear the train task" in message


# ---------------------------------------------------------------------------------- attempt names
def test_attempt_names_keep_the_hash_defined_once():
    long = make_job_name("sg", "transformer-ft", "streamguard_retraining/scheduled__2026-01-01T00:00:00+00:00", {})
    assert len(long) == JOB_NAME_MAX
    digest = long[-JOB_NAME_HASH_LEN:]
    for n in (2, 12, lifecycle.MAX_ATTEMPTS):
        named = attempt_job_name(long, n)
        assert len(named) <= JOB_NAME_MAX and named.endswith(f"-{digest}-a{n}")
    assert attempt_job_name(BASE, 1) == BASE and attempt_job_name(BASE, 2) == A2


# ------------------------------------------------------------------------ attempts of one request
def test_attempt_names_keep_the_hash_and_the_length_limit():
    assert attempt_job_name(BASE, 2) == BASE + "-a2"
    long = make_job_name("sg", "transformer-ft", "streamguard_retraining/scheduled__2026-01-01T00:00:00+00:00", {})
    assert len(long) == JOB_NAME_MAX
    named = attempt_job_name(long, 12)
    assert len(named) == JOB_NAME_MAX and named.endswith(long[-10:] + "-a12")
    assert named.startswith("sg-transformer-ft-")
    assert attempt_job_name(BASE, 1) == BASE
    with pytest.raises(ValueError, match="< 1"):
        attempt_job_name(BASE, 0)


@pytest.mark.parametrize("jobs, try_number, expected", [
    ({}, 1, (BASE, None, None)),                                   # first try: create
    ({BASE: "Failed"}, 1, (BASE, "Failed", None)),                 # first try: never replaced
    ({BASE: "Failed"}, None, (BASE, "Failed", None)),              # no task instance: as before
    ({BASE: "InProgress"}, 2, (BASE, "InProgress", None)),         # still running: reconnect
    ({BASE: "Completed"}, 3, (BASE, "Completed", None)),
    ({BASE: "Failed"}, 2, (BASE + "-a2", None, BASE)),             # failed: new attempt
    ({BASE: "Stopped"}, 2, (BASE + "-a2", None, BASE)),
    ({}, 2, (BASE, None, None)),                                   # try 1 never created it
    ({BASE: "Failed", BASE + "-a2": "InProgress"}, 3, (BASE + "-a2", "InProgress", None)),
    ({BASE: "Failed", BASE + "-a2": "InProgress"}, 1, (BASE + "-a2", "InProgress", None)),  # newest, any try
    ({BASE: "Failed", BASE + "-a2": "Failed"}, 3, (BASE + "-a3", None, BASE + "-a2")),
    ({BASE: "Failed", BASE + "-a2": "Failed"}, 2, (BASE + "-a3", None, BASE + "-a2")),  # numbered by attempt
    ({BASE: "Failed", BASE + "-a2": "Failed", BASE + "-a3": "Completed"}, 4, (BASE + "-a3", "Completed", None)),
])
def test_train_operator_choice(jobs, try_number, expected):
    """The train operator (`MANUAL`: run again only when a person cleared it) restarts any Failed or Stopped job."""
    def describe(name):
        return {"TrainingJobStatus": jobs[name]} if name in jobs else None

    action = next_action(BASE, job_attempts(BASE, describe), retry=(try_number or 1) >= 2, who=MANUAL)
    existing = None if action.starts_job else action.describe
    assert (action.name, existing and existing["TrainingJobStatus"], action.replaces) == expected


def test_attempts_are_listed_oldest_first_and_stop_at_the_first_gap():
    jobs = {BASE: "Failed", BASE + "-a2": "Failed", BASE + "-a4": "InProgress"}
    found = job_attempts(BASE, lambda n: {"TrainingJobStatus": jobs[n]} if n in jobs else None)
    assert [n for n, _ in found] == [BASE, BASE + "-a2"]


def test_try_origin_tells_airflows_retry_from_a_persons_clear():
    from streamguard.lifecycle import try_origin

    assert try_origin(1, 2, 2) == (False, AUTOMATIC)
    assert try_origin(2, 2, 2) == (True, AUTOMATIC) and try_origin(3, 2, 2) == (True, AUTOMATIC)
    assert try_origin(4, 5, 2) == (True, MANUAL)      # cleared after try 3 (max_tries = 3 + 2)
    assert try_origin(5, 5, 2) == (True, AUTOMATIC)   # Airflow's retry after that
    assert try_origin(2, None, 2) == (True, AUTOMATIC) and try_origin(None, None, None) == (False, AUTOMATIC)


def test_a_watcher_never_retries_and_says_who_starts_the_next_attempt():
    outcome, message = watch_outcome(dict(KILLED, TrainingJobName=BASE), will_retry=True, watcher=True)
    assert outcome == "fail" and "clear the train task" in message and "a sensor does not start one" in message
    assert watch_outcome(dict(INPUT, TrainingJobName=BASE), will_retry=True, watcher=True)[0] == "fail"
    assert watch_outcome(dict(DONE, TrainingJobName=BASE), will_retry=False, watcher=True)[0] == "done"
