"""The records that cross task boundaries, the DAG side of the boundary (`steps.call`) and `collect`."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from streamguard.jobs.record import JobRecord
from streamguard.pipeline import job_running
from streamguard.pipeline.params import (RETRAINING_PARAMS, TrainingConfig, resolve_retraining_config,
                                         resolve_training_config)
from streamguard.pipeline.records import (Evaluation, PreparedChannels, RetrainingConfig, RetrainPlan, RunContext,
                                          Skipped, SourcePackage, run_key)
from streamguard.pipeline.retraining import compare_and_promote
from streamguard.pipeline.steps import _convert, call

CHANNELS = {n: f"file:///d/{n}" for n in ("train", "validation", "test")}


def _evaluation() -> Evaluation:
    return Evaluation(model_type="gnn", evaluation_job="sg-gnn-eval-1", metrics={"test": {"accuracy": 0.9}},
                      predictions_uri="file:///p.jsonl", artifact_uri="file:///m/model.tar.gz",
                      artifact_sha256="a" * 64, artifact_bytes=10, weights_bytes=4)


def test_every_record_survives_json_and_refuses_unknown_fields():
    plan = RetrainPlan(mode="finetune", data=PreparedChannels(channels=CHANNELS, data_hash="h", source="s"),
                       training_config=resolve_training_config({"models": ["gnn"]}),
                       champion={"version": 3}, model_channel_uri="file:///m/", model_sha256="b" * 64)
    for record in (RunContext.create("dag", "manual__1", "local"), SourcePackage(uri="file:///s.tar.gz", sha256="c"),
                   PreparedChannels(channels=CHANNELS, data_hash="h", report={"kept": 3}), _evaluation(),
                   Skipped("nothing to do"), plan, resolve_retraining_config({"models": ["gnn"], "force": True})):
        wire = json.loads(json.dumps(record.to_dict()))
        assert type(record).from_dict(wire) == record
        with pytest.raises(ValueError, match="unknown field"):
            type(record).from_dict(dict(wire, surprise=1))
    assert isinstance(RetrainPlan.from_dict(plan.to_dict()).training_config, TrainingConfig)


def test_the_retraining_config_is_the_trigger_params_and_the_resolved_gate():
    # One field per form param (a param the record lacked would be refused by `from_dict`), plus the gate.
    assert {f.name for f in dataclasses.fields(RetrainingConfig)} == {*RETRAINING_PARAMS, "gate"}
    config = resolve_retraining_config({"models": ["transformer", "gnn"], "min_gain": 0.02})
    assert isinstance(config, RetrainingConfig)
    assert config.models == ("gnn", "transformer") and config.min_gain == 0.02
    assert set(config.gate) == {"gnn", "transformer"}
    wire = config.to_dict()
    assert wire["models"] == ["gnn", "transformer"] and RetrainingConfig.from_dict(wire) == config


def test_run_context_is_the_run_key_and_folder():
    run = RunContext.create("streamguard_training", "manual__2026-01-01T00:00:00", "sagemaker")
    assert run.key == run_key("streamguard_training", "manual__2026-01-01T00:00:00")
    assert run.dag_run_id == "streamguard_training/manual__2026-01-01T00:00:00"
    with pytest.raises(ValueError, match="backend"):
        RunContext.create("d", "r", "cloud")


def test_a_plan_says_whether_it_has_a_champion():
    data = PreparedChannels(channels=CHANNELS)
    config = resolve_training_config({})
    with pytest.raises(ValueError, match="finetune plan needs champion"):
        RetrainPlan(mode="finetune", data=data, training_config=config)
    with pytest.raises(ValueError, match="bootstrap plan has no champion"):
        RetrainPlan(mode="bootstrap", data=data, training_config=config, champion={"version": 1})
    with pytest.raises(ValueError, match="mode"):
        RetrainPlan(mode="resume", data=data, training_config=config)


def test_call_converts_arguments_by_annotation_and_the_result_back():
    run = RunContext.create("streamguard_retraining", "r1", "local")
    plan = RetrainPlan(mode="bootstrap", data=PreparedChannels(channels=CHANNELS, data_hash="h"),
                       training_config=resolve_training_config({"models": ["gnn"]}))
    # A bootstrap plan has no champion to evaluate: a Skipped record, returned as its dict.
    out = call("retraining:evaluate_champion", run.to_dict(), plan.to_dict(), "gnn",
               SourcePackage(uri="file:///s.tar.gz", sha256="c").to_dict())
    assert out == {"skipped": "no champion for taint_flow_gnn: nothing to compare with"}
    # `Evaluation | Skipped`: each dict becomes the record it is.
    hint = typing.get_type_hints(compare_and_promote)["champion_eval"]
    assert _convert(hint, _evaluation().to_dict()) == _evaluation()
    assert _convert(hint, {"skipped": "why"}) == Skipped("why")
    with pytest.raises(TypeError, match="none of the records"):
        _convert(hint, {"model_type": "gnn"})


def _record(**changes) -> dict:
    record = JobRecord(job_name="sg-gnn-x", backend="local", model_type="gnn", status="Completed",
                       artifact_uri="file:///j/sg-gnn-x/output/model.tar.gz", metrics={"validation:accuracy": 0.8})
    return dict(record.to_dict(), **changes)


def test_collect_takes_the_local_sensors_record_without_describing_again(monkeypatch):
    def no_describe(backend):
        raise AssertionError("collect described a job the sensor already described")

    monkeypatch.setattr(job_running, "_job_ops", no_describe)
    assert job_running.collect_job(_record(), "local", "gnn") == JobRecord.from_dict(_record())
    assert job_running.collect_job(_record(model_type=None), "local", "gnn").model_type == "gnn"
    with pytest.raises(RuntimeError, match="is Failed: oom"):
        job_running.collect_job(_record(status="Failed", failure_reason="oom"), "local", "gnn")


def test_collect_describes_once_when_the_sensor_returns_only_the_name(monkeypatch):
    described = []

    def describe(name):
        described.append(name)
        return {"TrainingJobName": name, "TrainingJobStatus": "Completed",
                "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/jobs/{name}/output/model.tar.gz"},
                "FinalMetricDataList": [{"MetricName": "validation:accuracy", "Value": 0.7}]}

    monkeypatch.setattr(job_running, "_job_ops", lambda backend: (None, describe, None))
    record = job_running.collect_job({"job_name": "sg-gnn-y", "status": "Completed", "backend": "sagemaker"},
                                     "sagemaker", "gnn")
    assert described == ["sg-gnn-y"]
    assert (record.backend, record.model_type, record.metrics) == ("sagemaker", "gnn", {"validation:accuracy": 0.7})
    assert record.artifact_uri == "s3://b/jobs/sg-gnn-y/output/model.tar.gz"
