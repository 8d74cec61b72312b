"""A training process killed mid-run fails its task with the reason; the retry resumes from the checkpoint.

The slow test runs the real entry on the local backend: the job is killed after an epoch
checkpoint reached ``CheckpointConfig.S3Uri``, the sensor's try 1 fails with the job's reason (a
retryable failure), and the sensor's try 2 starts ``<name>-a2`` by itself, which resumes from that
checkpoint and finishes every epoch. `tests/test_e2e_resume.py` shows the same through
`airflow dags test`.
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

from airflow.sdk.exceptions import AirflowException, AirflowFailException  # noqa: E402
from streamguard_ops.backend import AUTOMATIC, MANUAL, job_name_template, start_job  # noqa: E402
from streamguard_ops.operators import LocalTrainingOperator  # noqa: E402
from streamguard_ops.sensors import LocalTrainingSensor  # noqa: E402

from streamguard.backends.local import kill_group  # noqa: E402
from streamguard.lifecycle import attempt_job_name, job_attempts, next_action  # noqa: E402
from streamguard.jobs.names import JOB_NAME_MAX, make_job_name  # noqa: E402
from streamguard.jobs.request import LOCAL_REGION, build_training_request

BASE = "sg-gnn-manual-1-0123456789"


def _sagemaker_request() -> dict:
    return build_training_request(
        job_name=BASE, model_type="gnn", channels={"train": "s3://b/runs/k/data/train"},
        output_uri="s3://b/runs/k/jobs", source_dir_uri="s3://b/runs/k/code/sourcedir.tar.gz",
        hyperparameters={"model-type": "gnn"}, role_arn="arn:aws:iam::123456789012:role/sg",
        region="us-east-1", checkpoint_uri="s3://b/runs/k/checkpoints/gnn")


def context(task_id: str, try_number: int, *, reschedules: int = 0, max_tries: int = 2) -> dict:
    ti = SimpleNamespace(dag_id="streamguard_training", task_id=task_id, run_id="manual__1",
                         map_index=-1, try_number=try_number, max_tries=max_tries)
    return {"ti": ti, "task_reschedule_count": reschedules}


# ----------------------------------------------------------------------------- naming and choice
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


class FakeSensor:
    """What `start_job` reads from a sensor, with jobs in a dict."""

    task_id = "wait"

    def __init__(self, jobs: dict, retries: int = 2):
        self.jobs = {n: dict(d) for n, d in jobs.items()}
        self.config = {"TrainingJobName": BASE, "CheckpointConfig": {"S3Uri": "s3://b/runs/k/checkpoints/gnn"}}
        self.job_name = BASE
        self.retries = retries
        self.created: list[dict] = []
        self.log = SimpleNamespace(info=lambda *a, **k: None)

    def describe(self, name):
        return self.jobs.get(name)

    def create(self, request):
        self.created.append(request)
        self.jobs[request["TrainingJobName"]] = {"TrainingJobStatus": "InProgress"}

    def resolve(self, ctx) -> str:
        return start_job(self, ctx, self.config, self.describe, self.create, who=AUTOMATIC).name


KILLED = {"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: killed by signal 9"}


@pytest.mark.parametrize("jobs, ctx, watched, starts", [
    ({BASE: {"TrainingJobStatus": "InProgress"}}, context("wait", 1), BASE, False),
    ({BASE: KILLED}, context("wait", 1), BASE, False),                         # try 1 reports it
    ({BASE: KILLED}, context("wait", 2), BASE + "-a2", True),                  # its retry resumes
    ({BASE: KILLED}, context("wait", 2, reschedules=3), BASE, False),          # a later poke of try 2 does not
    ({BASE: KILLED, BASE + "-a2": {"TrainingJobStatus": "InProgress"}}, context("wait", 3), BASE + "-a2", False),
    ({BASE: KILLED, BASE + "-a2": KILLED}, context("wait", 3), BASE + "-a3", True),
    ({}, context("wait", 2), BASE, True),                                       # try 1 never created it
])
def test_sensor_retry_resumes_only_a_failed_newest_attempt(jobs, ctx, watched, starts):
    sensor = FakeSensor(jobs)
    if not jobs and starts:
        sensor.config = dict(sensor.config, TrainingJobName=BASE)
    assert sensor.resolve(ctx) == watched
    assert sensor.created == ([dict(sensor.config, TrainingJobName=watched)] if starts else [])
    # Idempotent: the same try executing again (after its first reschedule) watches the same job.
    if not jobs:
        return
    again = dict(ctx, task_reschedule_count=1)
    assert sensor.resolve(again) == watched and len(sensor.created) == (1 if starts else 0)


@pytest.mark.parametrize("newest", [
    {"TrainingJobStatus": "Failed", "FailureReason": "ClientError: channel train is empty"},  # would recur
    {"TrainingJobStatus": "Stopped", "FailureReason": "stopped by a user"},                    # on purpose
])
def test_sensor_retry_fails_for_good_when_a_new_attempt_cannot_help(newest):
    sensor = FakeSensor({BASE: newest})
    with pytest.raises(AirflowFailException, match=f"training job {BASE} "):
        sensor.resolve(context("wait", 2))
    assert sensor.created == []


def test_sensor_failure_is_retryable_only_when_a_retry_can_resume(tmp_path):
    from streamguard_ops.sensors import LocalTrainingSensor

    states = {"sg-a": KILLED, "sg-b": {"TrainingJobStatus": "Failed", "FailureReason": "ClientError: bad"}}

    class Hook:
        non_terminal_states = {"InProgress", "Stopping"}
        failed_states = {"Failed", "Stopped"}

        def describe_training_job(self, name):
            return dict(states[name], TrainingJobName=name)

    def poke(name, *, config, try_number):
        sensor = LocalTrainingSensor(task_id="wait", job_name=name, config=config, print_log=False, retries=2)
        sensor.__dict__["hook"] = Hook()
        return sensor.poke(context("wait", try_number))

    request = {"TrainingJobName": "sg-a"}
    with pytest.raises(AirflowException, match="sg-a Failed: AlgorithmError: killed by signal 9 "
                                               r"\(a retry of this task starts the next attempt") as raised:
        poke("sg-a", config=request, try_number=1)
    assert not isinstance(raised.value, AirflowFailException)  # Airflow retries it
    with pytest.raises(AirflowFailException, match="not retried: this failure would recur"):
        poke("sg-b", config={"TrainingJobName": "sg-b"}, try_number=1)
    with pytest.raises(AirflowFailException):  # the last try: nothing follows
        poke("sg-a", config=request, try_number=3)
    with pytest.raises(AirflowFailException):  # no request: a retry could not start anything
        poke("sg-a", config=None, try_number=1)


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
    from tests.test_models import make_records

    # Copy checkpoints out often, so one is at CheckpointConfig before the kill.
    monkeypatch.setenv("STREAMGUARD_LOCAL_CHECKPOINT_SYNC_S", "0.2")
    tarball, _ = build_sourcedir_tarball(tmp_path / "src" / "sourcedir.tar.gz")
    # Enough records that an epoch outlasts the polling below (the kill must land mid-run).
    _write_jsonl(tmp_path / "data" / "train" / "data.jsonl", make_records(1000, seed=10))
    _write_jsonl(tmp_path / "data" / "validation" / "data.jsonl", make_records(40, seed=11))
    ckpt_root = tmp_path / "runs" / "checkpoints" / "gnn"
    epochs = 4
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

    # Try 1: start, wait for an epoch checkpoint at CheckpointConfig.S3Uri, kill the training process.
    first = LocalTrainingOperator(task_id="train", config=request, jobs_dir=jobs).execute(context("train", 1))
    assert first["job_name"] == name and first["replaces"] is None
    saved = _wait_for(lambda: _checkpoint_epoch(ckpt_root), "an epoch checkpoint at the checkpoint URI", 300)
    hook = LocalTrainingOperator(task_id="x", config=request, jobs_dir=jobs).hook
    child = hook.describe_training_job(name)["ChildPid"]
    assert child and kill_group(child, signal.SIGKILL)

    def sensor():
        return LocalTrainingSensor(task_id="wait", job_name=first["job_name"], config=request, jobs_dir=jobs,
                                   print_log=False, model_type="gnn", retries=2, poke_interval=0.1, timeout=300)

    # Sensor try 1: fails with the job's reason, retryably (not AirflowFailException).
    with pytest.raises(AirflowException, match=rf"{name} Failed: AlgorithmError: .*killed by signal 9") as failed:
        sensor().execute(context("wait", 1))
    assert not isinstance(failed.value, AirflowFailException)
    saved = _checkpoint_epoch(ckpt_root)  # the final copy after the kill may hold a later epoch
    assert 1 <= saved < epochs, f"the kill did not land mid-run (checkpoint epoch {saved})"

    # Sensor try 2 (Airflow's retry): starts <name>-a2 from the same request, which resumes.
    record = sensor().execute(context("wait", 2))
    assert record["status"] == "Completed" and record["job_name"] == f"{name}-a2"
    log = hook.log_path(f"{name}-a2").read_text()
    assert f"Resuming from epoch {saved}" in log, log[-3000:]
    assert f"Epoch {saved}/{epochs}:" not in log  # the resumed job does not redo a saved epoch
    with tarfile.open(record["artifact_uri"].removeprefix("file://")) as tar:
        history = json.load(tar.extractfile("history.json"))
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    assert _checkpoint_epoch(ckpt_root) == epochs  # the completed job copied its last checkpoint back

    # A later retry of train, or of the sensor, finds the completed attempt and reconnects to it.
    third = LocalTrainingOperator(task_id="train", config=request, jobs_dir=jobs).execute(context("train", 2))
    assert third["job_name"] == f"{name}-a2" and third["reconnected"] is True
    assert sensor().execute(context("wait", 3))["job_name"] == f"{name}-a2"


def _not_found(name: str):
    """The error SageMaker's DescribeTrainingJob answers for a job that does not exist."""
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "ValidationException", "Message": f"Requested resource not found: {name}"}},
                       "DescribeTrainingJob")


def test_sagemaker_operator_replaces_a_failed_job_and_returns_its_name(monkeypatch):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
    from streamguard_ops.reconnect import ReconnectingSageMakerTrainingOperator

    jobs = {BASE: {"TrainingJobName": BASE, "TrainingJobStatus": "Failed"}}
    created = []

    class Hook:
        def describe_training_job(self, name):
            if name not in jobs:
                raise _not_found(name)
            return jobs[name]

    def create(self, context):  # the provider's execute, as far as this test needs it
        name = self.config["TrainingJobName"]
        created.append(dict(self.config))
        jobs[name] = {"TrainingJobName": name, "TrainingJobStatus": "InProgress"}
        return self.serialize_result(name)

    monkeypatch.setattr(SageMakerTrainingOperator, "execute", create)
    monkeypatch.setattr(ReconnectingSageMakerTrainingOperator, "hook", Hook())
    config = _sagemaker_request()  # a valid request: both classes validate it before any create

    first = ReconnectingSageMakerTrainingOperator(task_id="train", config=dict(config)).execute(context("train", 1))
    assert first["job_name"] == BASE and first["Training"]["TrainingJobStatus"] == "Failed" and created == []
    second = ReconnectingSageMakerTrainingOperator(task_id="train", config=dict(config)).execute(context("train", 2))
    assert second["job_name"] == BASE + "-a2" and second["Training"]["TrainingJobName"] == BASE + "-a2"
    assert created == [dict(config, TrainingJobName=BASE + "-a2")]  # same request, new name
    again = ReconnectingSageMakerTrainingOperator(task_id="train", config=dict(config)).execute(context("train", 3))
    assert again["job_name"] == BASE + "-a2" and len(created) == 1  # the running attempt is reconnected


def test_sagemaker_sensor_fails_with_the_reason_and_its_retry_starts_the_next_attempt(monkeypatch):
    from streamguard_ops.reconnect import ResumingSageMakerTrainingSensor

    jobs = {BASE: {"TrainingJobName": BASE, "TrainingJobStatus": "Failed",
                   "FailureReason": "AlgorithmError: ExecuteUserScriptError: exit code 137"}}
    created = []

    class Hook:
        def describe_training_job(self, name):
            if name not in jobs:
                raise _not_found(name)
            job = dict(jobs[name])
            if job["TrainingJobStatus"] == "InProgress":  # seen running once, then it completes
                jobs[name].update(TrainingJobStatus="Completed", TrainingStartTime=datetime(2026, 1, 1, 0, 0),
                                  TrainingEndTime=datetime(2026, 1, 1, 0, 5), ResourceConfig={"InstanceCount": 1})
            return job

        def create_training_job(self, config, wait_for_completion=True, print_log=True):
            assert wait_for_completion is False
            created.append(dict(config))
            jobs[config["TrainingJobName"]] = {"TrainingJobName": config["TrainingJobName"],
                                               "TrainingJobStatus": "InProgress"}

    monkeypatch.setattr(ResumingSageMakerTrainingSensor, "hook", Hook())
    config = _sagemaker_request()  # a valid request: both classes validate it before any create

    def sensor():
        return ResumingSageMakerTrainingSensor(task_id="wait", job_name=BASE, config=config, print_log=False,
                                               retries=2, poke_interval=0.01, timeout=5)

    with pytest.raises(AirflowException, match=f"SageMaker training job {BASE} Failed: AlgorithmError") as failed:
        sensor().execute(context("wait", 1))
    assert not isinstance(failed.value, AirflowFailException) and created == []

    # The retry starts <name>-a2 with the same request and watches it until it completes.
    result = sensor().execute(context("wait", 2))
    assert created == [dict(config, TrainingJobName=BASE + "-a2")]
    assert result == {"job_name": BASE + "-a2", "status": "Completed", "backend": "sagemaker"}

    # A ClientError would recur: final at once, and no retry starts anything.
    jobs[BASE + "-a2"].update(TrainingJobStatus="Failed", FailureReason="ClientError: no data in channel train")
    with pytest.raises(AirflowFailException, match="not retried: this failure would recur"):
        sensor().execute(context("wait", 3, max_tries=5))
    assert len(created) == 1
