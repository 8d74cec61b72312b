"""A training process killed mid-run fails its train task with the reason; the retry resumes from the checkpoint.

Only the train operator starts jobs; the sensors only watch. The slow test runs the real entry on
the local backend with the train task deferred (`LocalTrainingTrigger` run here as the triggerer
runs it): the job is killed after an epoch checkpoint reached ``CheckpointConfig.S3Uri``, try 1 of
`train` fails with the job's reason (a retryable failure), and try 2 of `train` (Airflow's retry)
starts ``<name>-a2``, which resumes from that checkpoint and finishes every epoch; the sensor then
reports the completed attempt. `tests/e2e/test_e2e_resume.py` shows the same through `airflow dags test`.
"""

from __future__ import annotations

import json
import signal
import sys
import tarfile
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

import asyncio  # noqa: E402

from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred  # noqa: E402
from streamguard_ops.attempts import start_job  # noqa: E402
from streamguard_ops.operators import LocalTrainingOperator  # noqa: E402
from streamguard_ops.sensors import LocalTrainingSensor  # noqa: E402
from streamguard_ops.wiring import job_name_template  # noqa: E402

from streamguard.backends.local import kill_group  # noqa: E402
from streamguard.lifecycle import attempt_job_name  # noqa: E402
from streamguard.jobs.request import LOCAL_REGION, build_training_request  # noqa: E402

BASE = "sg-gnn-manual-1-0123456789"


def _sagemaker_request() -> dict:
    return build_training_request(
        job_name=BASE, model_type="gnn", channels={"train": "s3://b/runs/k/data/train"},
        output_uri="s3://b/runs/k/jobs", source_dir_uri="s3://b/runs/k/code/sourcedir.tar.gz",
        hyperparameters={"model-type": "gnn"}, role_arn="arn:aws:iam::123456789012:role/sg",
        region="us-east-1", checkpoint_uri="s3://b/runs/k/checkpoints/gnn")


def context(task_id: str, try_number: int, *, reschedules: int = 0, max_tries: int = 2) -> dict:
    """A task instance's numbers as Airflow sets them: ``max_tries`` is ``retries`` (2) until a person
    clears the task, which sets it to the last try number + ``retries``."""
    ti = SimpleNamespace(dag_id="streamguard_training", task_id=task_id, run_id="manual__1",
                         map_index=-1, try_number=try_number, max_tries=max_tries)
    return {"ti": ti, "task_reschedule_count": reschedules}


def run_trigger(trigger) -> dict:
    """Run a trigger to its first event, as the triggerer (or `airflow dags test`) does."""
    async def first():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(first())


class FakeTrain:
    """What `start_job` reads from the train operator, with jobs in a dict."""

    task_id = "train"

    def __init__(self, jobs: dict, retries: int = 2):
        self.jobs = {n: dict(d) for n, d in jobs.items()}
        self.config = {"TrainingJobName": BASE, "CheckpointConfig": {"S3Uri": "s3://b/runs/k/checkpoints/gnn"}}
        self.retries = retries
        self.created: list[dict] = []
        self.log = SimpleNamespace(info=lambda *a, **k: None)

    def describe(self, name):
        return self.jobs.get(name)

    def create(self, request):
        self.created.append(request)
        self.jobs[request["TrainingJobName"]] = {"TrainingJobStatus": "InProgress"}

    def resolve(self, ctx) -> str:
        return start_job(self, ctx, self.config, self.describe, self.create).name


KILLED = {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: killed by signal 9"}
FINAL_FAILURE = {"TrainingJobStatus": "Failed", "FailureReason": "ClientError: channel train is empty"}
STOPPED = {"TrainingJobStatus": "Stopped", "FailureReason": "stopped by a user"}


@pytest.mark.parametrize("jobs, ctx, watched, starts", [
    ({BASE: {"TrainingJobStatus": "InProgress"}}, context("train", 1), BASE, False),
    ({BASE: KILLED}, context("train", 1), BASE, False),                        # try 1 reports it
    ({BASE: KILLED}, context("train", 2), BASE + "-a2", True),                 # Airflow's retry resumes
    ({BASE: {"TrainingJobStatus": "InProgress"}}, context("train", 2), BASE, False),  # worker died: reconnect
    ({BASE: KILLED, BASE + "-a2": {"TrainingJobStatus": "InProgress"}}, context("train", 3), BASE + "-a2", False),
    ({BASE: KILLED, BASE + "-a2": KILLED}, context("train", 3), BASE + "-a3", True),
    ({}, context("train", 2), BASE, True),                                      # try 1 never created it
    ({BASE: FINAL_FAILURE}, context("train", 4, max_tries=5), BASE + "-a2", True),  # cleared by a person
    ({BASE: STOPPED}, context("train", 2, max_tries=3), BASE + "-a2", True),        # cleared after try 1
])
def test_train_retry_starts_the_next_attempt_only_when_it_can_help(jobs, ctx, watched, starts):
    train = FakeTrain(jobs)
    assert train.resolve(ctx) == watched
    assert train.created == ([dict(train.config, TrainingJobName=watched)] if starts else [])
    # Idempotent: the same try executing again (its worker died before the next try began) creates nothing.
    if not jobs:
        return
    assert train.resolve(dict(ctx, task_reschedule_count=1)) == watched and len(train.created) == (1 if starts else 0)


@pytest.mark.parametrize("newest", [FINAL_FAILURE, STOPPED])
def test_automatic_train_retry_fails_for_good_when_a_new_attempt_cannot_help(newest):
    """Airflow's own retry (its worker died while the job ended this way) does not bill the request again."""
    train = FakeTrain({BASE: newest})
    with pytest.raises(AirflowFailException, match=f"training job {BASE} "):
        train.resolve(context("train", 2))
    assert train.created == []


class JobsHook:
    """The local hook's read side over a dict of jobs; it has no create, so a caller that tried fails."""

    non_terminal_states = {"InProgress", "Stopping"}
    failed_states = {"Failed", "Stopped"}

    def __init__(self, states: dict):
        self.states = states

    def describe_training_job(self, name):
        return dict(self.states[name], TrainingJobName=name)


def test_sensors_only_watch_they_take_no_request_and_start_nothing():
    from streamguard_ops.reconnect import ResumingSageMakerTrainingSensor

    for cls in (LocalTrainingSensor, ResumingSageMakerTrainingSensor):
        with pytest.raises(TypeError, match="config"):
            cls(task_id="wait", job_name=BASE, config={"TrainingJobName": BASE})
        assert not any(hasattr(cls, name) for name in ("_create", "create_training_job")), cls
        with pytest.raises(ValueError, match="job_name is needed"):
            cls(task_id="wait", job_name="")


@pytest.mark.parametrize("state, reason", [
    (KILLED, "a new attempt may succeed, but a sensor does not start one: clear the train task"),
    (FINAL_FAILURE, "not retried: this failure would recur"),
    (STOPPED, "not restarted automatically"),
])
def test_sensor_failures_are_final_and_say_who_starts_the_next_attempt(state, reason):
    sensor = LocalTrainingSensor(task_id="wait", job_name="sg-a", print_log=False, retries=2)
    sensor.__dict__["hook"] = JobsHook({"sg-a": state})
    for try_number in (1, 2):  # a retry would see the same ended job: nothing retries it
        with pytest.raises(AirflowFailException, match=rf"sg-a {state['TrainingJobStatus']}: .*\({reason}"):
            sensor.poke(context("wait", try_number))


def test_train_try_fails_retryably_only_when_a_retry_can_resume(tmp_path):
    """`execute_complete` of the deferred train task: retryable for a killed job while a retry follows."""
    states = {"sg-a": KILLED, "sg-b": FINAL_FAILURE, "sg-c": STOPPED, "sg-d": {"TrainingJobStatus": "Completed"}}

    def complete(name, try_number):
        op = LocalTrainingOperator(task_id="train", config={"TrainingJobName": name}, wait_for_completion=True,
                                   deferrable=True, retries=2, jobs_dir=str(tmp_path))
        hook = JobsHook(states)
        hook.log_path = lambda n: tmp_path / n / "train.log"
        op.__dict__["hook"] = hook
        return op.execute_complete(context("train", try_number), event={"job_name": name, "status": "x",
                                                                        "result": {"replaces": None}})

    with pytest.raises(AirflowException, match="sg-a Failed: AlgorithmError: killed by signal 9 "
                                               r"\(a retry of this task starts the next attempt") as raised:
        complete("sg-a", 1)
    assert not isinstance(raised.value, AirflowFailException)  # Airflow retries it
    with pytest.raises(AirflowFailException, match="not retried: this failure would recur"):
        complete("sg-b", 1)
    with pytest.raises(AirflowFailException, match="not restarted automatically"):
        complete("sg-c", 1)
    with pytest.raises(AirflowFailException, match="no retry of this task is left"):  # the last try
        complete("sg-a", 3)
    done = complete("sg-d", 1)
    assert done["job_name"] == "sg-d" and done["status"] == "Completed" and done["replaces"] is None


def test_local_trigger_serializes_and_fires_once_the_job_ended(tmp_path):
    from streamguard_ops.triggers import CLASSPATH, LocalTrainingTrigger

    trigger = LocalTrainingTrigger("sg-none", str(tmp_path), 0.01, result={"replaces": None})
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH and LocalTrainingTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert run_trigger(trigger) == {"job_name": "sg-none", "status": "missing", "result": {"replaces": None}}
    with pytest.raises(ValueError, match="poll_interval"):
        LocalTrainingTrigger("sg-x", str(tmp_path), 0)


def test_sensor_template_reads_the_job_name_the_train_task_returned():
    assert job_name_template(SimpleNamespace(task_id="gnn.train")) == \
        "{{ ti.xcom_pull(task_ids='gnn.train')['job_name'] }}"


# ------------------------------------------------------------------------------- kill and resume
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _wait_for(predicate, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _checkpoint_epoch(ckpt_root: Path) -> int | None:
    state = ckpt_root / "checkpoint.json"
    try:
        return json.loads(state.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_training_fails_the_task_and_the_retry_resumes(tmp_path, monkeypatch):
    from streamguard.sourcedir import build_sourcedir_tarball
    from tests.support.entry_data import make_records

    # Copy checkpoints out often, so one is at CheckpointConfig before the kill.
    monkeypatch.setenv("STREAMGUARD_LOCAL_CHECKPOINT_SYNC_S", "0.2")
    tarball, _ = build_sourcedir_tarball(tmp_path / "src" / "sourcedir.tar.gz")
    # Enough records that an epoch (about a second on an idle machine) outlasts the polling below (0.05 s;
    # checkpoints are copied every 0.2 s): the kill lands after a checkpoint and before the last epoch.
    _write_jsonl(tmp_path / "data" / "train" / "data.jsonl", make_records(1000, seed=10))
    _write_jsonl(tmp_path / "data" / "validation" / "data.jsonl", make_records(40, seed=11))
    ckpt_root = tmp_path / "runs" / "checkpoints" / "gnn"
    epochs = 3
    name = "sg-gnn-retry-test-0123456789"
    request = build_training_request(
        job_name=name, model_type="gnn",
        channels={c: (tmp_path / "data" / c).as_uri() for c in ("train", "validation")},
        output_uri=(tmp_path / "out").as_uri(), source_dir_uri=tarball.as_uri(),
        hyperparameters={"model-type": "gnn", "epochs": epochs, "batch-size": 8, "learning-rate": 0.005,
                         "seed": 5, "hidden-size": 16, "num-layers": 1, "patience": 0},
        role_arn="arn:aws:iam::000000000000:role/local", region=LOCAL_REGION, max_runtime_s=600,
        checkpoint_uri=ckpt_root.as_uri(),
    )
    jobs = str(tmp_path / "jobs")

    def train():
        return LocalTrainingOperator(task_id="train", config=request, jobs_dir=jobs, wait_for_completion=True,
                                     deferrable=True, check_interval=0.1, retries=2)

    def follow(try_number: int) -> dict:
        """One try of the deferred train task: execute, the trigger to its event, execute_complete."""
        with pytest.raises(TaskDeferred) as deferred:
            train().execute(context("train", try_number))
        assert deferred.value.trigger.job_name == attempt_job_name(name, try_number)
        return train().execute_complete(context("train", try_number), event=run_trigger(deferred.value.trigger))

    # Try 1 of train: start, defer; wait for an epoch checkpoint at CheckpointConfig.S3Uri; kill the process.
    with pytest.raises(TaskDeferred) as deferred:
        train().execute(context("train", 1))
    trigger = deferred.value.trigger
    assert trigger.job_name == name and trigger.result["replaces"] is None
    saved = _wait_for(lambda: _checkpoint_epoch(ckpt_root), "an epoch checkpoint at the checkpoint URI", 300)
    hook = train().hook
    child = hook.describe_training_job(name)["ChildPid"]
    assert child and kill_group(child, signal.SIGKILL)

    # The trigger fires; the resumed try 1 fails with the job's reason, retryably (not AirflowFailException).
    with pytest.raises(AirflowException, match=rf"{name} Failed: AlgorithmError: .*killed by signal 9") as failed:
        train().execute_complete(context("train", 1), event=run_trigger(trigger))
    assert not isinstance(failed.value, AirflowFailException)
    saved = _checkpoint_epoch(ckpt_root)  # the final copy after the kill may hold a later epoch
    assert 1 <= saved < epochs, f"the kill did not land mid-run (checkpoint epoch {saved})"

    # Try 2 of train (Airflow's retry): starts <name>-a2 from the same request, which resumes.
    trained = follow(2)
    assert trained["status"] == "Completed" and trained["job_name"] == f"{name}-a2" and trained["replaces"] == name

    # The sensor only watches the attempt train reported, and reports it.
    def sensor():
        return LocalTrainingSensor(task_id="wait", job_name=trained["job_name"], jobs_dir=jobs, print_log=False,
                                   model_type="gnn", retries=2, poke_interval=0.1, timeout=300)

    record = sensor().execute(context("wait", 1))
    assert record["status"] == "Completed" and record["job_name"] == f"{name}-a2"
    log = hook.log_path(f"{name}-a2").read_text()
    assert f"Resuming from epoch {saved}" in log, log[-3000:]
    assert f"Epoch {saved}/{epochs}:" not in log  # the resumed job does not redo a saved epoch
    with tarfile.open(record["artifact_uri"].removeprefix("file://")) as tar:
        history = json.load(tar.extractfile("history.json"))
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    assert _checkpoint_epoch(ckpt_root) == epochs  # the completed job copied its last checkpoint back

    # A later retry of train, or of the sensor, finds the completed attempt and reconnects to it.
    third = train().execute(context("train", 3))
    assert third["job_name"] == f"{name}-a2" and third["reconnected"] is True and third["status"] == "Completed"
    assert sensor().execute(context("wait", 2))["job_name"] == f"{name}-a2"
    assert not (Path(jobs) / attempt_job_name(name, 3)).exists()


def _not_found(name: str):
    """The error SageMaker's DescribeTrainingJob answers for a job that does not exist."""
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "ValidationException", "Message": f"Requested resource not found: {name}"}},
                       "DescribeTrainingJob")


class SageMakerJobs:
    """The SageMaker hook's calls these tests need, over a dict of jobs (the provider's execute patched
    to create through it)."""

    def __init__(self, jobs: dict):
        self.jobs = jobs
        self.created: list[dict] = []

    def describe_training_job(self, name):
        if name not in self.jobs:
            raise _not_found(name)
        return dict(self.jobs[name], TrainingJobName=name)

    def create(self, op, context):  # the provider's execute, as far as these tests need it
        name = op.config["TrainingJobName"]
        self.created.append(dict(op.config))
        self.jobs[name] = {"TrainingJobStatus": "InProgress"}
        return op.serialize_result(name)


def _sagemaker_train(monkeypatch, jobs: dict, **kwargs):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
    from streamguard_ops.reconnect import ReconnectingSageMakerTrainingOperator

    hook = SageMakerJobs(jobs)
    monkeypatch.setattr(SageMakerTrainingOperator, "execute", lambda op, ctx: hook.create(op, ctx))
    monkeypatch.setattr(ReconnectingSageMakerTrainingOperator, "hook", hook)
    config = _sagemaker_request()  # a valid request: the operator validates it before any create

    def make():
        return ReconnectingSageMakerTrainingOperator(task_id="train", config=dict(config), retries=2, **kwargs)
    return make, hook, config


def test_sagemaker_operator_replaces_a_failed_job_and_returns_its_name(monkeypatch):
    train, hook, config = _sagemaker_train(monkeypatch, {BASE: {"TrainingJobStatus": "Failed"}})

    first = train().execute(context("train", 1))
    assert first["job_name"] == BASE and first["Training"]["TrainingJobStatus"] == "Failed" and hook.created == []
    second = train().execute(context("train", 2))
    assert second["job_name"] == BASE + "-a2" and second["Training"]["TrainingJobName"] == BASE + "-a2"
    assert hook.created == [dict(config, TrainingJobName=BASE + "-a2")]  # same request, new name
    again = train().execute(context("train", 3))
    assert again["job_name"] == BASE + "-a2" and len(hook.created) == 1  # the running attempt is reconnected


def test_deferrable_sagemaker_train_owns_its_job_and_its_retry_is_the_next_attempt(monkeypatch):
    """Try 1 creates and defers to the provider's `SageMakerTrigger`; the job fails retryably, so the
    resumed try fails retryably; Airflow's retry (try 2) starts `-a2` and defers; a trigger that ran out
    of polls while the job runs defers again; the completed attempt is returned with its name."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    train, hook, config = _sagemaker_train(monkeypatch, {}, wait_for_completion=True, deferrable=True,
                                           check_interval=60)
    with pytest.raises(TaskDeferred) as deferred:
        train().execute(context("train", 1))
    trigger = deferred.value.trigger
    assert isinstance(trigger, SageMakerTrigger) and trigger.job_name == BASE and deferred.value.method_name == \
        "execute_complete"
    assert trigger.serialize()[1]["waiter_max_attempts"] >= 7200 // 60  # polls for as long as MaxRuntimeInSeconds lets it run
    assert hook.created == [config]

    hook.jobs[BASE] = {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: ExitCode 137"}
    with pytest.raises(AirflowException, match=f"SageMaker training job {BASE} Failed: AlgorithmError") as failed:
        train().execute_complete(context("train", 1), event={"status": "failed", "job_name": BASE})
    assert not isinstance(failed.value, AirflowFailException) and len(hook.created) == 1

    with pytest.raises(TaskDeferred) as deferred:
        train().execute(context("train", 2))
    assert deferred.value.trigger.job_name == BASE + "-a2"
    assert hook.created[1] == dict(config, TrainingJobName=BASE + "-a2")
    with pytest.raises(TaskDeferred):  # the waiter gave up while the job still runs: follow it again
        train().execute_complete(context("train", 2), event={"status": "timeout", "job_name": BASE + "-a2"})
    hook.jobs[BASE + "-a2"] = {"TrainingJobStatus": "Completed"}
    result = train().execute_complete(context("train", 2), event={"status": "success", "job_name": BASE + "-a2"})
    assert result["job_name"] == BASE + "-a2" and result["Training"]["TrainingJobStatus"] == "Completed"

    # A ClientError would recur: final at once, and no retry starts anything.
    hook.jobs[BASE + "-a2"] = {"TrainingJobStatus": "Failed", "FailureReason": "ClientError: no data in channel train"}
    with pytest.raises(AirflowFailException, match="not retried: this failure would recur"):
        train().execute_complete(context("train", 2), event={"status": "failed", "job_name": BASE + "-a2"})
    with pytest.raises(AirflowFailException, match="not retried: this failure would recur"):
        train().execute(context("train", 3))  # Airflow's retry, had the try died before it saw the failure
    assert len(hook.created) == 2


def test_sagemaker_sensor_only_watches_and_fails_for_good(monkeypatch):
    from streamguard_ops.reconnect import ResumingSageMakerTrainingSensor

    jobs = {BASE: {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: ExitCode 137"}}

    class Hook(SageMakerJobs):
        def describe_training_job(self, name):
            job = super().describe_training_job(name)
            if job["TrainingJobStatus"] == "InProgress":  # seen running once, then it completes
                self.jobs[name].update(TrainingJobStatus="Completed", TrainingStartTime=datetime(2026, 1, 1, 0, 0),
                                       TrainingEndTime=datetime(2026, 1, 1, 0, 5),
                                       ResourceConfig={"InstanceCount": 1})
            return job

    hook = Hook(jobs)
    monkeypatch.setattr(ResumingSageMakerTrainingSensor, "hook", hook)

    def sensor(name=BASE):
        return ResumingSageMakerTrainingSensor(task_id="wait", job_name=name, print_log=False, retries=2,
                                               poke_interval=0.01, timeout=5)

    for try_number in (1, 2):  # its retry sees the same failed job, and starts nothing
        with pytest.raises(AirflowFailException, match=f"SageMaker training job {BASE} Failed: AlgorithmError.*"
                                                       "clear the train task"):
            sensor().execute(context("wait", try_number))
    jobs[BASE + "-a2"] = {"TrainingJobStatus": "InProgress"}
    assert sensor(BASE + "-a2").execute(context("wait", 1)) == {"job_name": BASE + "-a2", "status": "Completed",
                                                                "backend": "sagemaker"}
    assert hook.created == []
