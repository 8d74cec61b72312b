"""LocalTrainingOperator / LocalTrainingSensor / LocalTrainingHook, called directly (no scheduler)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from airflow.sdk import PokeReturnValue  # noqa: E402
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout  # noqa: E402
from streamguard_ops.hooks import LocalTrainingHook  # noqa: E402
from streamguard_ops.operators import LocalTrainingOperator  # noqa: E402
from streamguard_ops.sensors import LocalTrainingSensor  # noqa: E402

from streamguard.backends.local import pid_alive  # noqa: E402
from tests.support.local_world import make_request  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def context(task_id="wait", try_number=1):
    ti = SimpleNamespace(dag_id="streamguard_training", task_id=task_id, run_id="manual__1",
                         map_index=-1, try_number=try_number)
    return {"ti": ti}


def jobs_dir(world) -> str:
    return str(world["backend"].root)


def poke_until_done(sensor, ctx, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = sensor.poke(ctx)
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def test_templated_fields_match_the_provider_shapes():
    assert LocalTrainingOperator.template_fields == ("config",)
    # The sensors only watch the job they are given: no request to start one from.
    assert LocalTrainingSensor.template_fields == ("job_name",)
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTrainingSensor
    from streamguard_ops.reconnect import ResumingSageMakerTrainingSensor

    assert ResumingSageMakerTrainingSensor.template_fields == SageMakerTrainingSensor.template_fields
    assert "job_name" in ResumingSageMakerTrainingSensor.template_fields
    assert "config" not in ResumingSageMakerTrainingSensor.template_fields
    assert LocalTrainingHook.failed_states == {"Failed", "Stopped"}
    assert LocalTrainingHook.non_terminal_states == {"InProgress", "Stopping"}


def test_hook_defaults_to_the_configured_jobs_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMGUARD_LOCAL_JOBS_DIR", str(tmp_path / "jobs"))
    assert LocalTrainingHook().jobs_dir == tmp_path / "jobs"


def test_operator_starts_then_reconnects_and_sensor_returns_the_record(world, capsys):
    request = make_request(world, "op-ok")
    op = LocalTrainingOperator(task_id="train", config=request, jobs_dir=jobs_dir(world))
    out = op.execute(context("train"))
    assert out["job_name"] == "op-ok" and out["reconnected"] is False and out["backend"] == "local"

    retry = LocalTrainingOperator(task_id="train", config=request, jobs_dir=jobs_dir(world))
    assert retry.execute(context("train", try_number=2))["reconnected"] is True

    sensor = LocalTrainingSensor(task_id="wait", job_name="op-ok", jobs_dir=jobs_dir(world), poke_interval=0.2)
    result = poke_until_done(sensor, context())
    assert isinstance(result, PokeReturnValue) and result.is_done
    record = result.xcom_value
    assert record["status"] == "Completed" and record["backend"] == "local"
    assert record["model_type"] == "gnn"  # read from the model-type hyperparameter
    assert record["metrics"]["validation:accuracy"] == pytest.approx(0.55)
    assert record["artifact_uri"].endswith("/op-ok/output/model.tar.gz")
    # The entry's lines were streamed into the task log (Airflow's structlog writes to stdout), each once.
    task_log = capsys.readouterr().out
    assert task_log.count("[op-ok] Epoch 1/2: Train Loss=1.0000;") == 1
    assert task_log.count("[op-ok] Epoch 2/2: Train Loss=0.5000;") == 1


def test_sensor_log_offset_survives_a_new_instance(world):
    be = world["backend"]
    be.create_training_job(make_request(world, "op-tail"))
    be.wait("op-tail", 60)
    hook = LocalTrainingHook(jobs_dir(world))
    first = hook.read_new_log_lines("op-tail", "reader-1")
    assert any("Train Loss=" in line for line in first)
    assert hook.read_new_log_lines("op-tail", "reader-1") == []  # nothing new for the same reader
    assert LocalTrainingHook(jobs_dir(world)).read_new_log_lines("op-tail", "reader-1") == []
    assert LocalTrainingHook(jobs_dir(world)).read_new_log_lines("op-tail", "reader-2") == first


def test_sensor_raises_with_the_failure_reason(world):
    LocalTrainingOperator(task_id="train", config=make_request(world, "op-fail", behaviour="fail"),
                          jobs_dir=jobs_dir(world)).execute(context("train"))
    sensor = LocalTrainingSensor(task_id="wait", job_name="op-fail", jobs_dir=jobs_dir(world))
    with pytest.raises(AirflowFailException, match="op-fail Failed: ValueError: the train channel has no positive"):
        poke_until_done(sensor, context())


def test_operator_wait_for_completion(world):
    ok = LocalTrainingOperator(task_id="train", config=make_request(world, "op-wait"), wait_for_completion=True,
                               check_interval=0.2, jobs_dir=jobs_dir(world))
    assert ok.execute(context("train"))["status"] == "Completed"
    bad = LocalTrainingOperator(task_id="train2", config=make_request(world, "op-wait-bad", behaviour="crash"),
                                wait_for_completion=True, check_interval=0.2, jobs_dir=jobs_dir(world))
    with pytest.raises(AirflowException, match="op-wait-bad Failed: AlgorithmError"):
        bad.execute(context("train2"))


def test_operator_rejects_a_bad_config(world):
    with pytest.raises(AirflowFailException, match="TrainingJobName"):
        LocalTrainingOperator(task_id="t", config={"x": 1}, jobs_dir=jobs_dir(world)).execute(context("t"))
    request = make_request(world, "op-invalid")
    request["ResourceConfig"]["InstanceCount"] = "two"
    with pytest.raises(AirflowFailException, match="InstanceCount"):
        LocalTrainingOperator(task_id="t", config=request, jobs_dir=jobs_dir(world)).execute(context("t"))


def _running(world, name):
    be = world["backend"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = be.describe_training_job(name)
        if status.get("ChildPid") and status["SecondaryStatus"] == "Training":
            return status
        time.sleep(0.1)
    raise AssertionError(f"{name} never started training")


def test_operator_on_kill_stops_the_job(world):
    op = LocalTrainingOperator(task_id="train", config=make_request(world, "op-kill", sleep=60),
                               jobs_dir=jobs_dir(world))
    op.execute(context("train"))
    running = _running(world, "op-kill")
    op.on_kill()
    assert world["backend"].describe_training_job("op-kill")["TrainingJobStatus"] == "Stopped"
    assert not pid_alive(running["ChildPid"])


def test_sensor_on_kill_and_timeout_stop_the_job(world):
    for name, how in (("op-sensor-kill", "kill"), ("op-sensor-timeout", "timeout")):
        LocalTrainingOperator(task_id="train", config=make_request(world, name, sleep=60),
                              jobs_dir=jobs_dir(world)).execute(context("train"))
        running = _running(world, name)
        sensor = LocalTrainingSensor(task_id="wait", job_name=name, jobs_dir=jobs_dir(world),
                                     poke_interval=0.2, timeout=1)
        if how == "kill":
            assert sensor.poke(context()) is False
            sensor.on_kill()
        else:
            with pytest.raises(AirflowSensorTimeout):
                sensor.execute(context())
        status = world["backend"].describe_training_job(name)
        assert status["TrainingJobStatus"] == "Stopped", (how, status)
        assert not pid_alive(running["ChildPid"])
