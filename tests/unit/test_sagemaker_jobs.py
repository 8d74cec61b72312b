"""CreateTrainingJob builders: botocore's service model, names, hyperparameters, metrics, moto."""

from __future__ import annotations

import json

import pytest

from streamguard.jobs.images import is_gpu_instance, pytorch_training_image
from streamguard.jobs.metrics import METRIC_DEFINITIONS, parse_metric_series, parse_metrics
from streamguard.jobs.names import JOB_NAME_RE, make_job_name
from streamguard.jobs.request import (DISTRIBUTED_KEY, build_training_request, decode_hyperparameter,
                                      validate_request)
from streamguard.jobs.record import JobRecord, job_record_from_describe

ROLE = "arn:aws:iam::123456789012:role/streamguard-sagemaker"
CHANNELS = {c: f"s3://sg-bucket/runs/r1/data/{c}" for c in ("train", "validation", "test")}


def request(**overrides):
    kwargs = dict(
        job_name="sg-gnn-run-1-0123456789", model_type="gnn", channels=CHANNELS,
        output_uri="s3://sg-bucket/runs/r1/jobs", source_dir_uri="s3://sg-bucket/runs/r1/code/sourcedir.tar.gz",
        hyperparameters={"model-type": "gnn", "epochs": 8, "batch-size": 32, "learning-rate": 0.002, "seed": 13},
        role_arn=ROLE, region="us-east-1",
    )
    kwargs.update(overrides)
    return build_training_request(**kwargs)


VARIANTS = {
    "cpu": {},
    "spot+checkpoint": {"spot": True, "max_wait_s": 3 * 3600, "max_runtime_s": 3600,
                        "checkpoint_uri": "s3://sg-bucket/runs/r1/checkpoints/job"},
    "gpu": {"instance_type": "ml.g5.2xlarge"},
    "multi-instance distributed": {"instance_type": "ml.g5.12xlarge", "instance_count": 4},
    "model channel": {"model_channel_uri": "s3://sg-bucket/registry/gnn/v3/", "hyperparameters":
                      {"model-type": "gnn", "epochs": 2, "fine-tune": True}},
    "tags+image": {"tags": {"dag_run": "manual__2026-01-01T00:00:00+00:00"},
                   "image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/custom:1"},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_is_valid_for_botocore(variant):
    req = request(**VARIANTS[variant])
    validate_request(req)  # raises with botocore's report on any problem
    assert all(isinstance(v, str) for v in req["HyperParameters"].values())
    assert {d["Name"] for d in req["AlgorithmSpecification"]["MetricDefinitions"]} >= {
        "train:loss", "train:accuracy", "validation:accuracy"}
    tags = {t["Key"]: t["Value"] for t in req["Tags"]}
    assert tags["project"] == "streamguard" and tags["model_type"] == "gnn"


def test_script_mode_keys_are_json_encoded_like_the_sdk():
    hps = request()["HyperParameters"]
    assert hps["sagemaker_program"] == '"train_enhanced_models.py"'
    assert hps["sagemaker_submit_directory"] == '"s3://sg-bucket/runs/r1/code/sourcedir.tar.gz"'
    assert hps["sagemaker_region"] == '"us-east-1"'
    assert hps["sagemaker_container_log_level"] == "20"
    assert hps["model-type"] == '"gnn"' and hps["epochs"] == "8" and hps["learning-rate"] == "0.002"
    assert decode_hyperparameter(hps["model-type"]) == "gnn" and decode_hyperparameter("plain") == "plain"
    assert DISTRIBUTED_KEY not in hps


def test_spot_checkpoint_and_stopping_condition():
    req = request(**VARIANTS["spot+checkpoint"])
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 10800}
    assert req["CheckpointConfig"] == {"S3Uri": "s3://sg-bucket/runs/r1/checkpoints/job",
                                       "LocalPath": "/opt/ml/checkpoints"}
    assert request(spot=True, max_runtime_s=600)["StoppingCondition"]["MaxWaitTimeInSeconds"] == 600
    plain = request()
    assert plain["EnableManagedSpotTraining"] is False and "MaxWaitTimeInSeconds" not in plain["StoppingCondition"]
    assert "CheckpointConfig" not in plain


def test_distribution_and_images():
    multi = request(**VARIANTS["multi-instance distributed"])
    assert multi["HyperParameters"][DISTRIBUTED_KEY] == "true"
    assert multi["HyperParameters"]["sagemaker_instance_type"] == '"ml.g5.12xlarge"'
    assert multi["ResourceConfig"]["InstanceCount"] == 4
    assert multi["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.9.0-gpu-py312-cu130-ubuntu22.04-sagemaker")
    assert request(distributed=True, instance_type="ml.g5.12xlarge")["HyperParameters"][DISTRIBUTED_KEY] == "true"
    assert request()["AlgorithmSpecification"]["TrainingImage"].endswith("pytorch-training:2.9.0-cpu-py312-ubuntu22.04-sagemaker")
    assert pytorch_training_image("eu-west-1", gpu=False, tag="2.6.0-cpu-py312-ubuntu22.04-sagemaker") == (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312-ubuntu22.04-sagemaker")
    assert is_gpu_instance("ml.p4d.24xlarge") and not is_gpu_instance("ml.c5.xlarge")
    with pytest.raises(ValueError, match="region"):
        pytorch_training_image("nowhere", gpu=True)


def test_channels_including_model():
    req = request(**VARIANTS["model channel"])
    names = [c["ChannelName"] for c in req["InputDataConfig"]]
    assert names == ["train", "validation", "test", "model"]
    model = req["InputDataConfig"][-1]
    assert model["DataSource"]["S3DataSource"] == {"S3DataType": "S3Prefix", "S3Uri": "s3://sg-bucket/registry/gnn/v3/",
                                                   "S3DataDistributionType": "FullyReplicated"}
    assert model["ContentType"] == "application/jsonlines"
    assert req["HyperParameters"]["fine-tune"] == "true"


@pytest.mark.parametrize("overrides, message", [
    ({"instance_count": 0}, "instance_count"),
    ({"instance_count": True}, "instance_count"),
    ({"instance_type": "m5.xlarge"}, "instance_type"),
    ({"job_name": "bad_name"}, "invalid training job name"),
    ({"job_name": "x" * 64}, "invalid training job name"),
    ({"channels": {"train": "file:///tmp/train"}}, "s3://"),
    ({"output_uri": "/tmp/out"}, "output_uri"),
    ({"channels": {"extra": "s3://b/x"}}, "unknown channel"),
    ({"channels": {}}, "at least one"),
    ({"hyperparameters": {"sagemaker_program": "x.py"}}, "reserved"),
    ({"hyperparameters": {"epochs": None}}, "None"),
    ({"spot": True, "max_runtime_s": 3600, "max_wait_s": 60}, "max_wait_s"),
    ({"max_wait_s": 7200}, "only to spot"),
    ({"max_runtime_s": 0}, "max_runtime_s"),
    ({"role_arn": "my-role"}, "role_arn"),
    ({"region": "local", "entry_point": "dir/train.py"}, "entry_point"),
])
def test_bad_inputs_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        request(**overrides)


def test_local_region_allows_file_uris():
    req = request(region="local", role_arn="arn:aws:iam::000000000000:role/local",
                  channels={"train": "file:///tmp/d/train"}, output_uri="file:///tmp/out",
                  source_dir_uri="file:///tmp/src/sourcedir.tar.gz")
    validate_request(req)
    assert req["AlgorithmSpecification"]["TrainingImage"] == "local"


def test_validate_request_reports_botocore_errors():
    req = request()
    req["ResourceConfig"]["InstanceCount"] = "1"
    with pytest.raises(ValueError, match="InstanceCount"):
        validate_request(req)
    req = request()
    del req["RoleArn"]
    with pytest.raises(ValueError, match="RoleArn"):
        validate_request(req)
    req = request(spot=True)
    req["StoppingCondition"]["MaxWaitTimeInSeconds"] = 1
    with pytest.raises(ValueError, match="MaxWaitTimeInSeconds"):
        validate_request(req)


def test_job_names_are_deterministic_and_valid():
    config = {"hps": {"epochs": 8}, "data": "abc", "src": "def"}
    run = "manual__2026-05-01T12:34:56.789012+00:00"
    name = make_job_name("sg", "gnn", f"streamguard_training/{run}", config)
    assert name == make_job_name("sg", "gnn", f"streamguard_training/{run}", dict(reversed(list(config.items()))))
    assert name != make_job_name("sg", "gnn", f"streamguard_training/{run}", {**config, "data": "abd"})
    assert name != make_job_name("sg", "gnn", "streamguard_training/other", config)
    assert name != make_job_name("sg", "transformer", f"streamguard_training/{run}", config)
    for candidate in (name, make_job_name("sg", "transformer-eval", "x" * 300, config),
                      make_job_name("sg", "gnn", "___", {}), make_job_name("p", "m", "", {})):
        assert len(candidate) <= 63 and JOB_NAME_RE.match(candidate), candidate
    assert name.startswith("sg-gnn-streamguard-training-manual-2026")
    with pytest.raises(ValueError):
        make_job_name("-", "_", "run", {})


ENTRY_LINES = [
    "Epoch 1/3: Train Loss=0.6931; Train Acc=0.5000; Val Acc=0.5200; Val F1=0.4800; Val FPR=0.3000;",
    "some other output; Val Acc=oops;",
    "Epoch 2/3: Train Loss=0.4000; Train Acc=0.8125; Val Acc=0.8000; Val F1=0.7900; Val FPR=0.1000;",
    "Epoch 3/3: Train Loss=0.2500; Train Acc=0.9375; Val Acc=0.9100; Val F1=0.9050; Val FPR=0.0200;",
]


def test_metric_regexes_parse_the_entry_line_format():
    assert parse_metrics(ENTRY_LINES) == {"train:loss": 0.25, "train:accuracy": 0.9375,
                                          "validation:accuracy": 0.91, "validation:f1": 0.905,
                                          "validation:fpr": 0.02}
    series = parse_metric_series(ENTRY_LINES)
    assert series["train:loss"] == [0.6931, 0.4, 0.25]
    assert series["validation:accuracy"] == [0.52, 0.8, 0.91]  # "oops" is not a number: ignored
    assert parse_metrics(["nothing here"]) == {}
    assert [d["Regex"] for d in METRIC_DEFINITIONS[:3]] == ["Train Loss=(.*?);", "Train Acc=(.*?);", "Val Acc=(.*?);"]


def test_job_record_round_trip_and_from_describe():
    describe = {
        "TrainingJobName": "sg-gnn-x", "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
        "HyperParameters": {"model-type": '"gnn"'},
        "FinalMetricDataList": [{"MetricName": "validation:accuracy", "Value": 0.91, "Timestamp": "t"}],
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/jobs/sg-gnn-x/output/model.tar.gz"},
        "TrainingTimeInSeconds": 42,
    }
    record = job_record_from_describe(describe, "sagemaker")
    assert record.model_type == "gnn" and record.metrics == {"validation:accuracy": 0.91}
    assert record.artifact_uri.endswith("model.tar.gz") and record.training_seconds == 42.0
    assert record.succeeded and record.terminal
    assert JobRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    with pytest.raises(ValueError, match="unknown field"):
        JobRecord.from_dict({**record.to_dict(), "surprise": 1})
    with pytest.raises(ValueError, match="backend"):
        job_record_from_describe(describe, "k8s")
    with pytest.raises(ValueError, match="TrainingJobStatus"):
        job_record_from_describe({"TrainingJobName": "x"}, "local")


def test_moto_accepts_the_request_and_completes_it(moto_server):
    import boto3

    sm = boto3.client("sagemaker", region_name="us-east-1")
    req = request(job_name=make_job_name("sg", "gnn", "streamguard_training/manual__1", {"a": 1}),
                  **VARIANTS["spot+checkpoint"])
    created = sm.create_training_job(**req)
    assert created["TrainingJobArn"].endswith(req["TrainingJobName"])
    describe = sm.describe_training_job(TrainingJobName=req["TrainingJobName"])
    assert describe["TrainingJobStatus"] == "Completed"
    record = job_record_from_describe(describe, "sagemaker", "gnn")
    assert record.artifact_uri == f"s3://sg-bucket/runs/r1/jobs/{req['TrainingJobName']}/output/model.tar.gz"
    assert decode_hyperparameter(describe["HyperParameters"]["sagemaker_program"]) == "train_enhanced_models.py"
