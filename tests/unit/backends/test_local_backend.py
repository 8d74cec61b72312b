"""Local training backend: the SageMaker container contract, run by a detached supervisor.

The entry script here is a tiny stand-in (no torch): it prints the metric line format, dumps its
argv and environment, writes a model file, and can fail, sleep or ignore SIGTERM on request.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import time
from pathlib import Path

import pytest

from streamguard.backends.local import JobConflictError, JobNotFoundError, LocalTrainingBackend, pid_alive
from streamguard.core.archive import UnsafeArchiveError, safe_extract
from streamguard.jobs.metrics import parse_metrics
from streamguard.jobs.request import LOCAL_REGION, build_training_request
from streamguard.sourcedir import build_sourcedir_tarball
from tests.support.local_world import FAKE_ENTRY, make_request

pytestmark = pytest.mark.timeout(120)

def wait_for(backend, name, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.describe_training_job(name)
        if predicate(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"timed out; last status {status['TrainingJobStatus']}/{status['SecondaryStatus']}")


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_completed_job_follows_the_container_contract(world):
    be = world["backend"]
    created = be.create_training_job(make_request(world, "job-ok"))
    assert created["TrainingJobStatus"] == "InProgress" and created["Reconnected"] is False
    status = be.wait("job-ok", timeout_s=60)

    assert status["TrainingJobStatus"] == "Completed", status.get("FailureReason")
    assert status["SecondaryStatus"] == "Completed"
    metrics = {m["MetricName"]: m["Value"] for m in status["FinalMetricDataList"]}
    # Last epoch (e=1) of the fake entry: loss 0.5, acc 0.6, val acc 0.55, f1 0.5, fpr 0.1.
    assert metrics == pytest.approx({"train:loss": 0.5, "train:accuracy": 0.6, "validation:accuracy": 0.55,
                                     "validation:f1": 0.5, "validation:fpr": 0.1})
    series = be.metric_series("job-ok")
    assert [r["Value"] for r in series if r["MetricName"] == "train:loss"] == [1.0, 0.5]
    assert parse_metrics(be.job_log_path("job-ok").read_text().splitlines()) == pytest.approx(metrics)

    out = Path(world["tmp"]) / "out" / "job-ok" / "output"
    assert status["ModelArtifacts"]["S3ModelArtifacts"] == (out / "model.tar.gz").as_uri()
    # Everything the script saved, sub-directories and hidden files included, at the archive root.
    assert read_tar(out / "model.tar.gz") == {"model.txt": b"weights for gnn", "tokenizer/.hidden.json": b"{}"}
    dump = json.loads(read_tar(out / "output.tar.gz")["env.json"])
    assert status["TrainingTimeInSeconds"] is not None
    assert status["TrainingStartTime"] and status["TrainingEndTime"]

    job_dir = be.job_dir("job-ok")
    env = dump["env"]
    assert env["SM_CHANNEL_TRAIN"] == str(job_dir / "input" / "data" / "train")
    assert env["SM_CHANNEL_VALIDATION"] == str(job_dir / "input" / "data" / "validation")
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert env["SM_MODEL_DIR"] == str(job_dir / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(job_dir / "output" / "data")
    assert env["SM_CHECKPOINT_DIR"] == str(job_dir / "checkpoints")
    assert json.loads(env["SM_HPS"]) == {"model-type": "gnn", "epochs": 2}
    assert env["SM_HP_MODEL_TYPE"] == "gnn" and env["SM_HP_EPOCHS"] == "2"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_NUM_GPUS"] == "0"
    assert json.loads(env["SM_USER_ARGS"]) == dump["argv"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(job_dir / "code")
    # Hyperparameters arrive JSON-decoded as --name value; script-mode keys never do.
    assert dump["argv"] == ["--epochs", "2", "--model-type", "gnn"]  # sorted, as the toolkit does
    assert not any("sagemaker" in a for a in dump["argv"])
    assert dump["cwd"] == str(job_dir / "code")
    # The shipped streamguard package (in the source dir) is the one the entry imports.
    assert dump["streamguard_file"] == str(job_dir / "code" / "streamguard" / "__init__.py")
    # Channels copied from file:// URIs, sub-directories included.
    assert dump["channel_files"] == {"train": ["data.jsonl", "part/more.jsonl"],
                                     "validation": ["data.jsonl", "part/more.jsonl"]}
    config = job_dir / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text())["sagemaker_program"] == '"train_enhanced_models.py"'
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"train", "validation"}
    assert json.loads((config / "resourceconfig.json").read_text())["current_host"] == "algo-1"
    assert [j["TrainingJobName"] for j in be.list_training_jobs()] == ["job-ok"]


def test_failed_job_takes_reason_from_output_failure(world):
    be = world["backend"]
    be.create_training_job(make_request(world, "job-fail", behaviour="fail"))
    status = be.wait("job-fail", timeout_s=60)
    assert status["TrainingJobStatus"] == "Failed"
    assert status["FailureReason"] == "ValueError: the train channel has no positive examples"
    assert status["ModelArtifacts"] is None


def test_failed_job_without_failure_file_reports_exit_code_and_log_tail(world):
    be = world["backend"]
    be.create_training_job(make_request(world, "job-crash", behaviour="crash"))
    status = be.wait("job-crash", timeout_s=60)
    assert status["TrainingJobStatus"] == "Failed"
    assert "exit code 3" in status["FailureReason"] and "about to crash" in status["FailureReason"]
    assert status["ExitCode"] == 3 and status["FailureKind"] == "input"  # the exit code decides the class


def test_missing_channel_fails_with_the_channel_named(world):
    be = world["backend"]
    request = make_request(world, "job-nodata")
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = (world["tmp"] / "nope").as_uri()
    be.create_training_job(request)
    status = be.wait("job-nodata", timeout_s=60)
    assert status["TrainingJobStatus"] == "Failed"
    assert "channel 'train'" in status["FailureReason"] and "nope" in status["FailureReason"]
    # Classified by the error's type, not its text: no data recurs on every attempt.
    from streamguard.lifecycle import FINAL, failure_class

    assert status["FailureKind"] == "input" and failure_class(status) == FINAL


def test_a_transient_storage_error_is_retried_not_final(world, monkeypatch):
    """S3 unreachable while uploading the model: the job fails ``transient``, and a retry starts the next attempt."""
    from streamguard.lifecycle import AUTOMATIC, RESTART, RETRY, failure_class, next_action

    # A closed port: every S3 call fails to connect (no moto, no network).
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    be = world["backend"]
    request = make_request(world, "job-s3-down", epochs=1)
    request["OutputDataConfig"]["S3OutputPath"] = "s3://sg-unreachable/jobs"
    be.create_training_job(request)
    status = be.wait("job-s3-down", timeout_s=120)
    assert status["TrainingJobStatus"] == "Failed", status
    assert status["FailureKind"] == "transient" and status["FailureReason"].startswith("InternalServerError: ")
    assert failure_class(status) == RETRY
    action = next_action("job-s3-down", [("job-s3-down", status)], retry=True, who=AUTOMATIC)
    assert action.kind == RESTART and action.name == "job-s3-down-a2"


def test_stop_terminates_the_training_process(world):
    be = world["backend"]
    be.create_training_job(make_request(world, "job-stop", sleep=60))
    running = wait_for(be, "job-stop", lambda s: s.get("ChildPid") and s["SecondaryStatus"] == "Training")
    assert be.describe_training_job("job-stop")["TrainingJobStatus"] == "InProgress"
    status = be.stop_training_job("job-stop", wait_s=20)
    assert status["TrainingJobStatus"] == "Stopped"
    assert not pid_alive(running["ChildPid"])
    # The supervisor records Stopped, then uploads what the job saved and exits.
    deadline = time.monotonic() + 30
    while pid_alive(running["Pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(running["Pid"])
    # Stopping a finished job changes nothing.
    assert be.stop_training_job("job-stop")["TrainingJobStatus"] == "Stopped"


def test_max_runtime_stops_the_job_with_a_reason(world, monkeypatch):
    monkeypatch.setenv("STREAMGUARD_LOCAL_STOP_GRACE_S", "1")  # the supervisor inherits it
    be = world["backend"]
    be.create_training_job(make_request(world, "job-slow", max_runtime_s=2, sleep=60, behaviour="ignore_term"))
    status = be.wait("job-slow", timeout_s=60)
    assert status["TrainingJobStatus"] == "Stopped"
    assert status["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert "MaxRuntimeInSeconds" in status["FailureReason"]
    assert not pid_alive(status["ChildPid"])  # SIGKILL after the grace period when SIGTERM is ignored


def test_two_jobs_run_at_once(world):
    be = world["backend"]
    for name in ("job-a", "job-b"):
        be.create_training_job(make_request(world, name, sleep=8))
    a = wait_for(be, "job-a", lambda s: s.get("ChildPid"))
    b = wait_for(be, "job-b", lambda s: s.get("ChildPid"))
    assert pid_alive(a["ChildPid"]) and pid_alive(b["ChildPid"])
    assert a["Pid"] != b["Pid"]
    assert be.wait("job-a", 60)["TrainingJobStatus"] == "Completed"
    assert be.wait("job-b", 60)["TrainingJobStatus"] == "Completed"


def test_create_twice_reconnects_and_a_changed_request_conflicts(world):
    be = world["backend"]
    request = make_request(world, "job-twice", sleep=2)
    be.create_training_job(request)
    first = wait_for(be, "job-twice", lambda s: s.get("Pid"))
    again = be.create_training_job(request)
    assert again["Reconnected"] is True
    assert be.describe_training_job("job-twice")["Pid"] == first["Pid"]
    assert len([p for p in be.root.iterdir() if not p.name.startswith(".")]) == 1
    with pytest.raises(JobConflictError, match="different request"):
        be.create_training_job(make_request(world, "job-twice", sleep=3))
    assert be.wait("job-twice", 60)["TrainingJobStatus"] == "Completed"
    assert be.create_training_job(request)["TrainingJobStatus"] == "Completed"


def test_dead_supervisor_is_detected(world):
    be = world["backend"]
    be.create_training_job(make_request(world, "job-orphan", sleep=60))
    running = wait_for(be, "job-orphan", lambda s: s.get("ChildPid"))
    os.kill(running["Pid"], signal.SIGKILL)
    status = wait_for(be, "job-orphan", lambda s: s["TrainingJobStatus"] != "InProgress", timeout=10)
    assert status["TrainingJobStatus"] == "Failed"
    assert "supervisor process died" in status["FailureReason"]
    wait_for(be, "job-orphan", lambda s: not pid_alive(running["ChildPid"]), timeout=10)


def test_unknown_job_and_bad_names(world):
    be = world["backend"]
    with pytest.raises(JobNotFoundError):
        be.describe_training_job("no-such-job")
    with pytest.raises(ValueError, match="invalid training job name"):
        be.describe_training_job("../escape")
    bad = make_request(world, "job-bad")
    del bad["HyperParameters"]["sagemaker_program"]
    with pytest.raises(ValueError, match="sagemaker_program"):
        be.create_training_job(bad)


def test_s3_channels_and_output_through_moto(world, moto_server):
    import boto3

    from streamguard import storage

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="sg-local")
    for channel in ("train", "validation"):
        s3.put_object(Bucket="sg-local", Key=f"data/{channel}/data.jsonl", Body=b'{"code": "x", "label": 1}\n')
    storage.upload_file(storage.local_path(world["source"]), "s3://sg-local/code/sourcedir.tar.gz")
    request = build_training_request(
        job_name="job-s3", model_type="gnn",
        channels={c: f"s3://sg-local/data/{c}" for c in ("train", "validation")},
        output_uri="s3://sg-local/jobs", source_dir_uri="s3://sg-local/code/sourcedir.tar.gz",
        hyperparameters={"model-type": "gnn", "epochs": 1},
        role_arn="arn:aws:iam::000000000000:role/local", region=LOCAL_REGION,
    )
    be = world["backend"]
    be.create_training_job(request)
    status = be.wait("job-s3", timeout_s=60)
    assert status["TrainingJobStatus"] == "Completed", status.get("FailureReason")
    assert status["ModelArtifacts"]["S3ModelArtifacts"] == "s3://sg-local/jobs/job-s3/output/model.tar.gz"
    body = s3.get_object(Bucket="sg-local", Key="jobs/job-s3/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("model.txt").read() == b"weights for gnn"


# ------------------------------------------------------------------------------------- source dir
def test_sourcedir_tarball_is_deterministic_and_ships_core(world, tmp_path):
    entry = tmp_path / "entry"
    (entry / "__pycache__").mkdir()
    (entry / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    # Determinism is checked on the entry alone: streamguard/core is the live package tree.
    first, sha1 = build_sourcedir_tarball(tmp_path / "a.tar.gz", entry_dir=entry, include_core=False)
    time.sleep(1.1)
    os.utime(entry / "train_enhanced_models.py")  # a new mtime must not change the hash
    second, sha2 = build_sourcedir_tarball(tmp_path / "b.tar.gz", entry_dir=entry, include_core=False)
    assert sha1 == sha2 and first.read_bytes() == second.read_bytes()
    assert set(read_tar(first)) == {"train_enhanced_models.py", "requirements.txt"}
    (entry / "train_enhanced_models.py").write_text(FAKE_ENTRY + "\n# changed\n")
    assert build_sourcedir_tarball(tmp_path / "c.tar.gz", entry_dir=entry, include_core=False)[1] != sha1

    names = set(read_tar(build_sourcedir_tarball(tmp_path / "d.tar.gz", entry_dir=entry)[0]))
    assert {"train_enhanced_models.py", "requirements.txt", "streamguard/__init__.py",
            "streamguard/core/__init__.py"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_real_training_entry_is_packaged_when_present(tmp_path):
    from streamguard.sourcedir import ENTRY_POINT, TRAINING_ENTRY_DIR

    if not (TRAINING_ENTRY_DIR / ENTRY_POINT).is_file():
        with pytest.raises(FileNotFoundError, match=ENTRY_POINT):
            build_sourcedir_tarball(tmp_path / "s.tar.gz")
        return
    path, _ = build_sourcedir_tarball(tmp_path / "s.tar.gz")
    names = set(read_tar(path))
    assert ENTRY_POINT in names and "streamguard/core/__init__.py" in names
    assert not any(n.startswith("training_entry/") for n in names)  # entry files sit at the root


def _tar_with(tmp_path, build) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        build(tar)
    return path


def _add_file(tar, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink", "device"])
def test_safe_extract_refuses_unsafe_members(tmp_path, kind):
    def build(tar):
        _add_file(tar, "ok.txt")
        if kind == "absolute":
            _add_file(tar, "/etc/evil")
        elif kind == "dotdot":
            _add_file(tar, "a/../../evil")
        elif kind in ("symlink", "hardlink"):
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo("dev")
            info.type = tarfile.CHRTYPE
            tar.addfile(info)

    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match="evil|link|not a regular file"):
        safe_extract(_tar_with(tmp_path, build), dest)
    assert not (dest / "ok.txt").exists()  # all-or-nothing: checked before anything is written


def test_safe_extract_unpacks_a_normal_archive(tmp_path):
    path = _tar_with(tmp_path, lambda tar: (_add_file(tar, "a/b.txt", b"hello"), _add_file(tar, "c.txt")))
    out = safe_extract(path, tmp_path / "dest")
    assert (out / "a" / "b.txt").read_bytes() == b"hello" and (out / "c.txt").is_file()


def test_job_cpus_sets_the_jobs_cpu_count_and_torch_threads(tmp_path):
    from streamguard.backends.container_env import JOB_CPUS_VAR, training_environment
    from streamguard.backends.local import JobPaths

    request = {"TrainingJobName": "job-cpus", "AlgorithmSpecification": {"TrainingInputMode": "File"},
               "HyperParameters": {"sagemaker_program": '"train_enhanced_models.py"',
                                   "sagemaker_submit_directory": '"file:///src.tar.gz"', "epochs": "1"}}
    paths = JobPaths(tmp_path / "job")
    base = {k: v for k, v in os.environ.items() if k not in (JOB_CPUS_VAR, "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    # Unset: the machine's CPUs, and torch's own thread default (nothing forced).
    env = training_environment(request, paths, tmp_path / "ckpt", base_env=base)
    assert env["SM_NUM_CPUS"] == str(os.cpu_count() or 1)
    assert "OMP_NUM_THREADS" not in env and "MKL_NUM_THREADS" not in env
    # Set: the job's share, for SageMaker's variable and for torch's thread pools.
    env = training_environment(request, paths, tmp_path / "ckpt", base_env={**base, JOB_CPUS_VAR: "3"})
    assert env["SM_NUM_CPUS"] == env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match=rf"{JOB_CPUS_VAR}='{bad}': expected a positive number"):
            training_environment(request, paths, tmp_path / "ckpt", base_env={**base, JOB_CPUS_VAR: bad})
