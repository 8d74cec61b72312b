"""CloudWatch tailing with stored offsets (`streamguard.cloudwatch`), in the sensor's reschedule mode.

Against moto's CloudWatch Logs on a ``ThreadedMotoServer``: streams named as SageMaker names them
(``<job>/algo-1-<epoch s>``), a second stream appearing as after a spot restart, stream listing over
several pages, and a sensor whose pokes are separate instances (as in ``reschedule`` mode).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from tests.support.moto_server import TRAINING_LOG_GROUP, put_log_lines


PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

JOB = "sg-gnn-manual-1-0123456789"


def _logs():
    import boto3

    return boto3.client("logs", region_name="us-east-1")


def test_tail_reads_each_event_once_and_picks_up_a_restart_stream(moto_server):
    from streamguard.cloudwatch import LogTail, job_streams

    client = _logs()
    assert LogTail(client, JOB).poll() == []  # no log group yet: nothing, no error
    client.create_log_group(logGroupName=TRAINING_LOG_GROUP)
    first = f"{JOB}/algo-1-1764000000"
    put_log_lines(client, first, "Epoch 1/3: Train Loss=0.7;", "Epoch 2/3: Train Loss=0.6;")
    put_log_lines(client, f"{JOB}-a2/algo-1-1764000001", "another attempt's line")  # not this job's stream
    for n in range(3):  # other jobs: the listing goes by the job's prefix
        put_log_lines(client, f"sg-other-{n}/algo-1-1764000000", "x")
    offsets: dict[str, str] = {}
    tail = LogTail(client, JOB, offsets, page_size=1)
    assert tail.poll() == [(first, "Epoch 1/3: Train Loss=0.7;"), (first, "Epoch 2/3: Train Loss=0.6;")]
    assert tail.poll() == []  # nothing new: nothing re-read
    assert set(offsets) == {first}
    # The instance was reclaimed; the restarted container writes a new stream; the old one gets a last line.
    second = f"{JOB}/algo-1-1764000900"
    put_log_lines(client, first, "Epoch 3/3 interrupted")
    put_log_lines(client, second, "Resuming from epoch 2", "Epoch 3/3: Train Loss=0.5;")
    # A new tail with the stored offsets (the next poke) continues where the last one stopped.
    again = LogTail(client, JOB, dict(offsets), page_size=1)
    assert again.poll() == [(first, "Epoch 3/3 interrupted"), (second, "Resuming from epoch 2"),
                            (second, "Epoch 3/3: Train Loss=0.5;")]
    assert again.poll() == []
    # More streams than one page: every page is listed.
    for n in range(3):
        put_log_lines(client, f"{JOB}/algo-{n + 2}-1764000000", f"host {n + 2}")
    assert len(job_streams(client, JOB, page_size=2)) == 5
    assert sorted(m for _s, m in again.poll()) == ["host 2", "host 3", "host 4"]


def test_sensor_in_reschedule_mode_prints_each_line_once(moto_server, tmp_path, monkeypatch, capfd):
    """Each poke is a new sensor instance; the offsets live in the run's folder, not on the instance."""
    import re

    from streamguard_ops.reconnect import ResumingSageMakerTrainingSensor

    monkeypatch.setenv("STREAMGUARD_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    client = _logs()
    client.create_log_group(logGroupName=TRAINING_LOG_GROUP)
    state = {"TrainingJobName": JOB, "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
             "ResourceConfig": {"InstanceCount": 1}}

    class Hook:
        logs_hook = SimpleNamespace(get_conn=lambda: client)

        def describe_training_job(self, name):
            assert name == JOB
            return dict(state)

    monkeypatch.setattr(ResumingSageMakerTrainingSensor, "hook", Hook())
    ti = SimpleNamespace(dag_id="streamguard_training", run_id="manual__logs", task_id="gnn.wait", map_index=-1,
                         try_number=1, max_tries=2)

    def poke(reschedules: int) -> list[str]:
        capfd.readouterr()
        sensor = ResumingSageMakerTrainingSensor(task_id="gnn.wait", job_name=JOB, print_log=True,
                                                 mode="reschedule", poke_interval=60)
        sensor.poke({"ti": ti, "task_reschedule_count": reschedules})
        # The task log (stdout here): one "[<stream>] <message>" line per event printed.
        return re.findall(rf"(\[{JOB}/[^\]]+\] [^\[]+?)\s+\[airflow", capfd.readouterr().out)

    first = f"{JOB}/algo-1-1764000000"
    put_log_lines(client, first, "line 1", "line 2")
    assert poke(0) == [f"[{first}] line 1", f"[{first}] line 2"]
    assert poke(1) == []  # on main, every poke printed both lines again
    second = f"{JOB}/algo-1-1764000900"
    put_log_lines(client, second, "after the spot restart")
    state.update(TrainingJobStatus="Completed", TrainingStartTime=datetime(2026, 1, 1),
                 TrainingEndTime=datetime(2026, 1, 1, 0, 5))
    assert poke(2) == [f"[{second}] after the spot restart"]
    stored = list((tmp_path / "artifacts").rglob("*.cloudwatch-offsets.json"))
    assert len(stored) == 1 and "gnn.wait" in stored[0].name


def test_unreadable_logs_do_not_fail_the_sensor(moto_server, monkeypatch):
    from streamguard_ops.reconnect import ResumingSageMakerTrainingSensor

    class Client:
        def get_paginator(self, name):
            raise RuntimeError("AccessDeniedException: logs:DescribeLogStreams")

    class Hook:
        logs_hook = SimpleNamespace(get_conn=lambda: Client())

        def describe_training_job(self, name):
            return {"TrainingJobName": name, "TrainingJobStatus": "InProgress", "ResourceConfig": {"InstanceCount": 1}}

    monkeypatch.setattr(ResumingSageMakerTrainingSensor, "hook", Hook())
    sensor = ResumingSageMakerTrainingSensor(task_id="wait", job_name=JOB, print_log=True)
    assert sensor.poke({}) is False
