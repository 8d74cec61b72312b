"""`streamguard monitor`: snapshots of local and (moto) SageMaker jobs, and following one job."""

from __future__ import annotations

import json
import os

import pytest

from streamguard.cli import main
from tests.support.local_world import make_request
from tests.support.moto_server import TRAINING_LOG_GROUP, put_log_lines

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def finished_jobs(world):
    be = world["backend"]
    be.create_training_job(make_request(world, "mon-ok"))
    be.create_training_job(make_request(world, "mon-fail", behaviour="fail"))
    be.wait("mon-ok", 60)
    be.wait("mon-fail", 60)
    return str(be.root)


def test_once_json_lists_local_jobs(finished_jobs, capsys):
    assert main(["monitor", "--backend", "local", "--jobs-dir", finished_jobs, "--once", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"mon-ok", "mon-fail"}
    ok, failed = rows["mon-ok"], rows["mon-fail"]
    assert ok["status"] == "Completed" and ok["backend"] == "local" and ok["instance"] == "local"
    assert ok["train_accuracy"] == pytest.approx(0.6) and ok["val_accuracy"] == pytest.approx(0.55)
    assert ok["elapsed_s"] is not None and ok["elapsed_s"] >= 0
    assert failed["status"] == "Failed"
    assert failed["failure_reason"] == "ValueError: the train channel has no positive examples"


def test_once_plain_table(finished_jobs, capsys):
    assert main(["monitor", "--backend", "local", "--jobs-dir", finished_jobs, "--once"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["backend", "job", "status"]
    assert "mon-ok" in out and "0.5500" in out
    assert "mon-fail: ValueError: the train channel has no positive examples" in out


def test_wait_exit_codes(finished_jobs, capsys):
    assert main(["monitor", "--jobs-dir", finished_jobs, "--wait", "mon-ok", "--interval", "0.1"]) == 0
    assert "mon-ok completed" in capsys.readouterr().out
    assert main(["monitor", "--jobs-dir", finished_jobs, "--wait", "mon-fail", "--interval", "0.1"]) == 1
    assert "mon-fail Failed: ValueError: the train channel" in capsys.readouterr().err
    assert main(["monitor", "--backend", "local", "--jobs-dir", finished_jobs, "--wait", "nope"]) == 2


def test_wait_follows_a_running_job_and_its_log(world, capsys):
    be = world["backend"]
    # Long enough that the monitor, started after the job, sees it running even on a loaded machine.
    be.create_training_job(make_request(world, "mon-live", sleep=4))
    code = main(["monitor", "--jobs-dir", str(be.root), "--wait", "mon-live", "--interval", "0.2", "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Epoch 2/2: Train Loss=0.5000;" in out  # the job's own log lines are followed
    assert "mon-live: InProgress" in out and "mon-live: Completed" in out


def test_empty_jobs_dir(tmp_path, capsys):
    assert main(["monitor", "--backend", "local", "--jobs-dir", str(tmp_path / "none"), "--once"]) == 0
    assert capsys.readouterr().out.strip() == "no training jobs"


def test_sagemaker_jobs_through_moto(moto_server, finished_jobs, capsys):
    import boto3

    from streamguard.jobs.request import build_training_request

    request = build_training_request(
        job_name="sg-moto-job", model_type="gnn", channels={"train": "s3://b/d/train"}, output_uri="s3://b/jobs",
        source_dir_uri="s3://b/code/sourcedir.tar.gz", hyperparameters={"model-type": "gnn"},
        role_arn="arn:aws:iam::123456789012:role/sm", region="us-east-1",
    )
    boto3.client("sagemaker").create_training_job(**request)
    assert main(["monitor", "--backend", "sagemaker", "--once", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["backend"], r["status"], r["instance"]) for r in rows] == [
        ("sg-moto-job", "sagemaker", "Completed", "ml.m5.xlarge x1")]
    assert main(["monitor", "--backend", "all", "--jobs-dir", finished_jobs, "--once", "--json"]) == 0
    assert {r["name"] for r in json.loads(capsys.readouterr().out)} == {"sg-moto-job", "mon-ok", "mon-fail"}
    assert main(["monitor", "--backend", "all", "--jobs-dir", finished_jobs, "--wait", "sg-moto-job"]) == 0


def test_rich_table_renders_rows(finished_jobs):
    from rich.console import Console

    from streamguard.monitor import local_rows, render_rich

    table = render_rich(local_rows(finished_jobs))
    assert table.row_count == 2
    console = Console(width=160, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    text = console.export_text()
    assert "mon-ok" in text and "Completed" in text and "Failed" in text


def test_wait_follows_a_sagemaker_job_s_cloudwatch_streams(moto_server, monkeypatch, capsys):
    """Group /aws/sagemaker/TrainingJobs, streams <job>/algo-1-<ts>; a restart's new stream is followed too."""
    import boto3

    from streamguard import monitor
    from streamguard.jobs.request import build_training_request

    monkeypatch.setenv("STREAMGUARD_SAGEMAKER_MIN_POLL_S", "0")  # moto, not the real API
    sm, logs = boto3.client("sagemaker"), boto3.client("logs")
    request = build_training_request(
        job_name="sg-moto-logs", model_type="gnn", channels={"train": "s3://b/d/train"}, output_uri="s3://b/jobs",
        source_dir_uri="s3://b/code/sourcedir.tar.gz", hyperparameters={"model-type": "gnn"},
        role_arn="arn:aws:iam::123456789012:role/sm", region="us-east-1",
    )
    sm.create_training_job(**request)
    logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)

    put_log_lines(logs, "sg-moto-logs/algo-1-1764000000", "Epoch 1/2: Train Loss=0.7;")
    put_log_lines(logs, "sg-moto-logs-a2/algo-1-1764000000", "not this job")
    describes = []

    class Client:  # moto's job is Completed at once: show it running for two looks, writing as it goes
        def describe_training_job(self, TrainingJobName):
            describe = sm.describe_training_job(TrainingJobName=TrainingJobName)
            describes.append(1)
            if len(describes) == 3:
                put_log_lines(logs, "sg-moto-logs/algo-1-1764000900", "Resuming from epoch 1",
                              "Epoch 2/2: Train Loss=0.5;")
            if len(describes) <= 3:
                describe = dict(describe, TrainingJobStatus="InProgress", SecondaryStatus="Training")
            return describe

    monkeypatch.setattr(monitor, "_sagemaker_client", Client)
    code = main(["monitor", "--backend", "sagemaker", "--wait", "sg-moto-logs", "--interval", "0.05"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("[algo-")]
    assert lines == ["[algo-1-1764000000] Epoch 1/2: Train Loss=0.7;", "[algo-1-1764000900] Resuming from epoch 1",
                     "[algo-1-1764000900] Epoch 2/2: Train Loss=0.5;"]
    assert "sg-moto-logs: InProgress (Training)" in out and "sg-moto-logs completed" in out


def test_sagemaker_polling_has_a_floor(monkeypatch):
    from streamguard.monitor import effective_interval

    monkeypatch.delenv("STREAMGUARD_SAGEMAKER_MIN_POLL_S", raising=False)
    assert effective_interval(2.0, "sagemaker") == 10.0 and effective_interval(2.0, "all") == 10.0
    assert effective_interval(30.0, "sagemaker") == 30.0
    assert effective_interval(0.2, "local") == 0.2
    monkeypatch.setenv("STREAMGUARD_SAGEMAKER_MIN_POLL_S", "0.5")
    assert effective_interval(0.1, "sagemaker") == 0.5
