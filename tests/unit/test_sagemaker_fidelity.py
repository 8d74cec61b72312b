"""What a real SageMaker account would refuse or run differently, checked offline.

- the default training image's torch and Python against every pin the toolkit installs on it;
- evaluate requests built on their own (no spot, no checkpoint, one instance) and validated
  against botocore's service model before any create;
- the DLC registry account of each region, and image overrides read on their own.
"""

from __future__ import annotations

import ast
import sys
from importlib.metadata import metadata, requires, version
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from streamguard.jobs.images import (DEFAULT_INFERENCE_TAGS, DEFAULT_TRAINING_TAGS, DLC_ACCOUNTS, DLC_IMAGES,
                                     TRAINING_REPOSITORY, dlc_registry, image_pin_conflicts, image_versions,
                                     pytorch_inference_image, pytorch_training_image)
from streamguard.jobs.metrics import (BEST_METRIC_DEFINITIONS, EPOCH_METRIC_DEFINITIONS,
                                      EVALUATE_METRIC_DEFINITIONS, parse_metrics)
from streamguard.jobs.request import validate_request
from streamguard.pipeline.records import Evaluation, PreparedChannels, RunContext, SourcePackage

REPO = Path(__file__).resolve().parents[2]
ENTRY_DIR = REPO / "training_entry"
ROLE = "arn:aws:iam::123456789012:role/streamguard-test"


def _entry_pins() -> list[Requirement]:
    pins = []
    for line in (ENTRY_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins.append(Requirement(line))
    return pins


def _pin_metadata() -> tuple[dict, dict]:
    """Each pinned package's declared requirements and Requires-Python, from the installed metadata."""
    pins = _entry_pins()
    assert pins, "training_entry/requirements.txt pins nothing"
    for pin in pins:
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{pin}: the entry's requirements must be exact pins"
        # The metadata read below describes exactly the pinned release.
        assert version(pin.name) == spec.version, (pin, version(pin.name))
    reqs = {pin.name: requires(pin.name) or [] for pin in pins}
    pythons = {pin.name: metadata(pin.name).get("Requires-Python") for pin in pins}
    return reqs, pythons


def _transformers_runtime_torch_floor() -> str:
    """The torch version below which transformers disables PyTorch (read from its own source)."""
    import transformers.utils.import_utils as iu

    source = Path(iu.__file__).read_text()
    import re

    match = re.search(r'Disabling PyTorch because PyTorch >= (\d+\.\d+) is required', source)
    assert match, "could not find transformers' minimum torch version in its source"
    return match.group(1)


def test_default_training_images_satisfy_every_pin_of_the_entry():
    from packaging.version import Version

    reqs, pythons = _pin_metadata()
    floor = _transformers_runtime_torch_floor()
    assert Version(floor) >= Version("2.6")  # "AutoModel requires PyTorch >= 2.6" in transformers 5
    for device, tag in DEFAULT_TRAINING_TAGS.items():
        torch_version, python = DLC_IMAGES[(TRAINING_REPOSITORY, tag)]
        assert tag.startswith(torch_version + f"-{device}-py{python.replace('.', '')}"), tag
        assert image_pin_conflicts(torch_version, python, reqs, pythons) == [], tag
        assert Version(torch_version) >= Version(floor), tag
        uri = pytorch_training_image("us-east-1", gpu=device == "gpu")
        assert image_versions(uri) == (torch_version, python)
    for tag in DEFAULT_INFERENCE_TAGS.values():
        torch_version, python = DLC_IMAGES[("pytorch-inference", tag)]
        assert image_pin_conflicts(torch_version, python, reqs, pythons) == []
        assert Version(torch_version) >= Version(floor)
    # The check can fail: the former default (torch 2.5.1, Python 3.11) is below transformers' floor.
    old = DLC_IMAGES[(TRAINING_REPOSITORY, "2.5.1-cpu-py311")]
    assert Version(old[0]) < Version(floor)
    assert "transformers needs torch>=2.6, the image has torch 2.5.1" in image_pin_conflicts(*old, reqs, pythons)
    assert image_pin_conflicts("2.5.1", "3.11", {"x": ["torch>=2.6"]}, {"y": ">=3.12"}) == [
        "x needs torch>=2.6, the image has torch 2.5.1", "y needs Python >=3.12, the image has Python 3.11"]


# Standard-library modules removed in Python 3.12 (PEP 594 / PEP 632 and the `imp` module).
_REMOVED_IN_312 = {"distutils", "imp", "asynchat", "asyncore", "smtpd"}


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported by ``path``, except optional ones (inside ``try: ... except ImportError``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_entry_runs_on_the_image_python():
    """Every import of the shipped source is the stdlib of the image's Python, the source dir itself,
    the image's own torch/numpy, or a package of the pins (whose Requires-Python admits that Python)."""
    from importlib.metadata import packages_distributions

    from streamguard.sourcedir import sourcedir_members

    (python,) = {DLC_IMAGES[(TRAINING_REPOSITORY, t)][1] for t in DEFAULT_TRAINING_TAGS.values()}
    members = [name for name, _ in sourcedir_members()]
    shipped = {name.split("/")[0].removesuffix(".py") for name in members}
    by_dist = packages_distributions()
    pinned = {pin.name.lower().replace("_", "-") for pin in _entry_pins()}
    provided = {mod for mod, dists in by_dist.items()
                if any(d.lower().replace("_", "-") in pinned for d in dists)} | {"torch", "numpy"}
    stdlib = set(sys.stdlib_module_names) - _REMOVED_IN_312
    missing = {}
    for name, path in sourcedir_members():
        if not name.endswith(".py"):
            continue
        for module in _top_level_imports(path):
            if module not in stdlib | shipped | provided | {"__future__"}:
                missing.setdefault(module, []).append(name)
    assert not missing, f"imports the image ({python}) + pins would not provide: {missing}"
    assert "train_enhanced_models.py" in members and "requirements.txt" in members
    for pin in _entry_pins():
        spec = metadata(pin.name).get("Requires-Python")
        if spec:
            from packaging.specifiers import SpecifierSet

            assert SpecifierSet(spec).contains(python + ".0"), (pin.name, spec)


# ------------------------------------------------------------------------------- evaluate requests
def _sagemaker_env(monkeypatch):
    monkeypatch.setenv("STREAMGUARD_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("STREAMGUARD_ARTIFACT_ROOT", "s3://bkt/artifacts")
    for name in ("STREAMGUARD_TRAINING_IMAGE", "STREAMGUARD_INFERENCE_IMAGE"):
        monkeypatch.delenv(name, raising=False)


def _inputs(**conf):
    from streamguard.pipeline.params import resolve_training_config

    config = resolve_training_config({"models": ["gnn", "transformer"], **conf})
    data = PreparedChannels(data_hash="d" * 16,
                            channels={n: f"s3://bkt/runs/data/{n}" for n in ("train", "validation", "test")})
    source = SourcePackage(uri="s3://bkt/runs/code/abc/sourcedir.tar.gz", sha256="a" * 64)
    return config, data, source


def _run(dag_id: str, run_id: str, backend: str) -> RunContext:
    return RunContext.create(dag_id, run_id, backend)


def test_evaluate_requests_are_on_demand_single_instance_without_checkpoints(monkeypatch):
    from streamguard.pipeline.job_specs import build_evaluate_job, build_training_job

    _sagemaker_env(monkeypatch)
    config, data, source = _inputs(use_spot=True, instance_count=2, instance_type="ml.g5.12xlarge")
    train = build_training_job(_run("dag", "run-1", "sagemaker"), config, "transformer", data, source)
    validate_request(train)
    assert train["EnableManagedSpotTraining"] is True and "MaxWaitTimeInSeconds" in train["StoppingCondition"]
    model_uri = f"s3://bkt/runs/jobs/{train['TrainingJobName']}/output/"
    request = build_evaluate_job(_run("dag", "run-1", "sagemaker"), config, "transformer", data, source,
                                 model_channel_uri=model_uri, expected_sha256="f" * 64)
    validate_request(request)  # botocore's service model + the spot/wait rule
    assert request["EnableManagedSpotTraining"] is False
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": config.max_runtime_s}
    assert "CheckpointConfig" not in request
    assert request["ResourceConfig"]["InstanceCount"] == 1
    hps = request["HyperParameters"]
    assert not any(k.startswith("sagemaker_torch_distributed") or k == "sagemaker_instance_type" for k in hps)
    assert hps["mode"] == '"evaluate"' and hps["model-sha256"] == '"' + "f" * 64 + '"'
    assert "threshold" not in hps and "epochs" not in hps
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["test", "model"]
    assert request["TrainingJobName"] != train["TrainingJobName"]
    # A second model evaluated in the same run is a second job.
    other = build_evaluate_job(_run("dag", "run-1", "sagemaker"), config, "transformer", data, source,
                               model_channel_uri="s3://bkt/registry/champion/")
    assert other["TrainingJobName"] != request["TrainingJobName"]


def test_run_evaluation_job_validates_before_any_create(monkeypatch):
    import airflow.providers.amazon.aws.hooks.sagemaker as hooks

    from streamguard.pipeline import job_running, job_specs

    created = []

    class RecordingHook:
        def __init__(self, *a, **k):
            pass

        def create_training_job(self, *a, **k):
            created.append(a)

        def describe_training_job(self, name):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ValidationException", "Message": "not found"}}, "Describe")

    monkeypatch.setattr(hooks, "SageMakerHook", RecordingHook)
    _sagemaker_env(monkeypatch)
    config, data, source = _inputs()
    request = job_specs.build_training_job(_run("dag", "run-1", "sagemaker"), config, "gnn", data, source)
    request["StoppingCondition"]["MaxWaitTimeInSeconds"] = 7200  # what CreateTrainingJob rejects without spot
    with pytest.raises(ValueError, match="MaxWaitTimeInSeconds is only valid with EnableManagedSpotTraining"):
        job_running.run_evaluation_job(request, "sagemaker")
    request["StoppingCondition"].pop("MaxWaitTimeInSeconds")
    request["ResourceConfig"]["InstanceCount"] = "1"  # botocore's type check
    with pytest.raises(ValueError, match="InstanceCount"):
        job_running.run_evaluation_job(request, "sagemaker")
    assert created == []


def test_sagemaker_operator_and_sensor_refuse_an_invalid_request_before_create():
    from airflow.sdk.exceptions import AirflowFailException
    from streamguard_ops.reconnect import _validate

    with pytest.raises(AirflowFailException, match="not sending 'x-1' to SageMaker"):
        _validate({"TrainingJobName": "x-1", "StoppingCondition": {}})


# ---------------------------------------------------------------------------------- image accounts
@pytest.mark.parametrize("region,account,domain", [
    ("us-east-1", "763104351884", "amazonaws.com"),
    ("ap-southeast-3", "907027046896", "amazonaws.com"),
    ("me-central-1", "914824155844", "amazonaws.com"),
    ("eu-south-2", "503227376785", "amazonaws.com"),
    ("cn-north-1", "727897471807", "amazonaws.com.cn"),
])
def test_images_come_from_the_region_s_dlc_account(region, account, domain):
    host = ".".join([account, "dkr", "ecr", region, domain])
    assert dlc_registry(region) == host
    assert pytorch_training_image(region, gpu=False).startswith(host + "/pytorch-training:")
    assert pytorch_inference_image(region).startswith(host + "/pytorch-inference:")


def test_a_region_outside_the_table_asks_for_an_explicit_image():
    assert len(DLC_ACCOUNTS) >= 35 and all(len(a) == 12 and a.isdigit() for a in DLC_ACCOUNTS.values())
    with pytest.raises(ValueError, match="set the image URI explicitly"):
        pytorch_training_image("xx-nowhere-9", gpu=False)


def test_image_overrides_are_read_on_their_own_and_apply_to_training_and_inference(monkeypatch):
    from streamguard import settings
    from streamguard.pipeline.job_specs import build_evaluate_job, build_training_job

    _sagemaker_env(monkeypatch)  # role and region in the environment: the Variables are read anyway
    mirror = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/pytorch-training:2.9.0-cpu"
    serving = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/pytorch-inference:2.6.0-cpu"
    # Airflow Variables from the environment (AIRFLOW_VAR_<NAME>), as a deployment sets them.
    monkeypatch.setenv("AIRFLOW_VAR_STREAMGUARD_TRAINING_IMAGE", mirror)
    monkeypatch.setenv("AIRFLOW_VAR_STREAMGUARD_INFERENCE_IMAGE", serving)
    sm = settings.resolve_sagemaker_settings()
    assert (sm.role_arn, sm.region, sm.image_uri, sm.inference_image_uri) == (ROLE, "eu-west-1", mirror, serving)
    config, data, source = _inputs()
    assert build_training_job(_run("d", "r", "sagemaker"), config, "gnn", data, source)[
        "AlgorithmSpecification"]["TrainingImage"] == mirror
    assert build_evaluate_job(_run("d", "r", "sagemaker"), config, "gnn", data, source,
                              model_channel_uri="s3://b/m/")[
        "AlgorithmSpecification"]["TrainingImage"] == mirror
    assert settings.inference_image_override() == serving
    # The environment wins over the Variable.
    monkeypatch.setenv("STREAMGUARD_TRAINING_IMAGE", mirror + "-env")
    assert settings.resolve_sagemaker_settings().image_uri == mirror + "-env"


# ------------------------------------------------------------------------------------------ metrics
LOG = [
    "Epoch 1/2: Train Loss=0.600000; Train Acc=0.700000; Val Acc=0.9000; Val F1=0.9100; Val FPR=0.0100;",
    "Epoch 2/2: Train Loss=0.400000; Train Acc=0.800000; Val Acc=0.7000; Val F1=0.6500; Val FPR=0.2000;",
    "Best epoch 1: Validation accuracy=0.9000; Validation f1=0.9100; Validation fpr=0.0100; "
    "Test accuracy=0.8800; Test f1=0.8700; Test fpr=0.0300; model written to /opt/ml/model",
]


def test_final_metrics_name_the_kept_epoch_apart_from_the_last_one():
    from streamguard.jobs.metrics import METRIC_DEFINITIONS

    last = parse_metrics(LOG)
    assert last["validation:f1"] == 0.65  # the last epoch, as FinalMetricDataList has it
    assert last["best:epoch"] == 1 and last["best:validation:f1"] == 0.91 and last["best:test:accuracy"] == 0.88
    # The two families never read each other's lines.
    assert parse_metrics(LOG[2:], EPOCH_METRIC_DEFINITIONS) == {}
    assert parse_metrics(LOG[:2], BEST_METRIC_DEFINITIONS) == {}
    assert parse_metrics(LOG, EVALUATE_METRIC_DEFINITIONS) == {}
    names = [d["Name"] for d in METRIC_DEFINITIONS + EVALUATE_METRIC_DEFINITIONS]
    assert len(names) == len(set(names))


def test_training_and_evaluate_requests_register_their_metric_definitions(monkeypatch):
    from streamguard.pipeline.job_specs import build_evaluate_job, build_training_job
    from streamguard.jobs.metrics import METRIC_DEFINITIONS

    _sagemaker_env(monkeypatch)
    config, data, source = _inputs()
    train = build_training_job(_run("d", "r", "sagemaker"), config, "gnn", data, source)
    evaluate = build_evaluate_job(_run("d", "r", "sagemaker"), config, "gnn", data, source,
                                  model_channel_uri="s3://b/m/")
    assert train["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert evaluate["AlgorithmSpecification"]["MetricDefinitions"] == EVALUATE_METRIC_DEFINITIONS
    validate_request(train)
    validate_request(evaluate)


def test_model_packages_carry_the_evaluation_metrics(moto_server, monkeypatch, tmp_path):
    import json

    import boto3

    from streamguard import storage
    from streamguard.pipeline.evaluation import evaluation_metrics_uri
    from streamguard.pipeline.registration import record_version
    from streamguard.registry import RegistryClient

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": moto_server}}))
    serving = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/pytorch-inference:2.6.0-cpu"
    monkeypatch.setenv("STREAMGUARD_INFERENCE_IMAGE", serving)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="sg-metrics")
    predictions = "s3://sg-metrics/runs/eval/gnn/sg-gnn-eval-1/predictions.jsonl"
    storage.write_text(predictions, '{"id": "a", "label": 1, "pred": 1, "score": 0.9}\n')
    metrics_uri = evaluation_metrics_uri(predictions)
    storage.write_text(metrics_uri, json.dumps({"test": {"accuracy": 1.0, "n": 1}}))
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"model")
    evaluation = Evaluation(model_type="gnn", evaluation_job="sg-gnn-eval-1", artifact_uri=artifact.as_uri(),
                            artifact_sha256="0" * 64, metrics={"test": {"accuracy": 1.0, "n": 1}},
                            predictions_uri=predictions)
    _, record = record_version(RegistryClient((tmp_path / "registry").as_uri()), "gnn", evaluation=evaluation,
                               job_name="sg-gnn-1", backend="sagemaker",
                               data=PreparedChannels(channels={}, data_hash="h"),
                               hyperparameters={}, gate={"passed": True, "reasons": []}, approved=True,
                               extra={"predictions_uri": predictions})
    package = boto3.client("sagemaker", region_name="us-east-1").describe_model_package(
        ModelPackageName=record["model_package_arn"])
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json", "S3Uri": metrics_uri}
    # The inference image override reaches the package's container too.
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == serving


@pytest.mark.parametrize("reason,final", [
    ("StreamGuardInputError: EntryError: test input /opt/ml/input/data/test has no records", True),
    ('AlgorithmError: ExecuteUserScriptError:\nExitCode 3\nErrorMessage "EntryError: x"', True),
    ('AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "RuntimeError: x"', False),
])
def test_evaluate_jobs_are_not_retried_after_a_deterministic_failure(monkeypatch, reason, final):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from streamguard.pipeline import job_running, job_specs

    class Backend:
        def create_training_job(self, request):
            return {}

        def describe_training_job(self, name):
            if name.endswith("-a2"):
                from streamguard.backends.local import JobNotFoundError

                raise JobNotFoundError(name)
            return {"TrainingJobName": name, "TrainingJobStatus": "Failed", "FailureReason": reason}

    monkeypatch.setattr(job_running, "_local_backend", Backend)
    monkeypatch.delenv("STREAMGUARD_ARTIFACT_ROOT", raising=False)
    config, data, source = _inputs()
    data = replace(data, channels={n: f"file:///tmp/d/{n}" for n in ("train", "validation", "test")})
    source = replace(source, uri="file:///tmp/code/sourcedir.tar.gz")
    request = job_specs.build_evaluate_job(_run("d", "r", "local"), config, "gnn", data, source,
                                          model_channel_uri="file:///tmp/m/")
    with pytest.raises(AirflowFailException if final else AirflowException) as err:
        job_running.run_evaluation_job(request, "local", poll_s=0.01)
    assert isinstance(err.value, AirflowFailException) is final


def test_evaluation_jobs_share_the_training_lifecycle(monkeypatch):
    """Reconnect, reschedule while running (slot given back), retry a transient failure as the next attempt."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowRescheduleException

    from streamguard.pipeline import job_running, job_specs

    jobs: dict[str, dict] = {}
    created: list[str] = []

    def create(request):
        created.append(request["TrainingJobName"])
        jobs[request["TrainingJobName"]] = {"TrainingJobName": request["TrainingJobName"],
                                            "TrainingJobStatus": "InProgress"}

    monkeypatch.setattr(job_running, "_job_ops", lambda backend: (jobs.get, lambda n: dict(jobs[n]), create))
    _sagemaker_env(monkeypatch)
    config, data, source = _inputs()
    request = job_specs.build_evaluate_job(_run("dag", "run-1", "sagemaker"), config, "gnn", data, source,
                                          model_channel_uri="s3://bkt/jobs/sg-gnn/output/")
    base = request["TrainingJobName"]

    def ctx(try_number, reschedules=0):
        return {"ti": SimpleNamespace(try_number=try_number, max_tries=2), "task_reschedule_count": reschedules}

    # Running: the task reschedules instead of polling in its worker slot.
    with pytest.raises(AirflowRescheduleException):
        job_running.run_evaluation_job(request, "sagemaker", context=ctx(1))
    with pytest.raises(AirflowRescheduleException):  # the next execution reconnects, creates nothing
        job_running.run_evaluation_job(request, "sagemaker", context=ctx(1, reschedules=1))
    assert created == [base]
    # A transient failure (SageMaker's InternalServerError) fails this try retryably...
    jobs[base].update(TrainingJobStatus="Failed", FailureReason="InternalServerError: We encountered an internal error")
    with pytest.raises(AirflowException) as failed:
        job_running.run_evaluation_job(request, "sagemaker", context=ctx(1, reschedules=2))
    assert not isinstance(failed.value, AirflowFailException)
    # ...and its retry starts the next attempt, which is read once it completes.
    with pytest.raises(AirflowRescheduleException):
        job_running.run_evaluation_job(request, "sagemaker", context=ctx(2))
    assert created == [base, base + "-a2"]
    jobs[base + "-a2"]["TrainingJobStatus"] = "Completed"
    desc = job_running.run_evaluation_job(request, "sagemaker", context=ctx(2, reschedules=1))
    assert desc["TrainingJobName"] == base + "-a2" and created == [base, base + "-a2"]
    # A failure that would recur is final, on the first look and on a retry.
    jobs[base + "-a2"].update(TrainingJobStatus="Failed", FailureReason="ClientError: channel test holds no data")
    with pytest.raises(AirflowFailException, match="would recur"):
        job_running.run_evaluation_job(request, "sagemaker", context=ctx(2, reschedules=2))
    with pytest.raises(AirflowFailException, match="would recur"):
        job_running.run_evaluation_job(request, "sagemaker", context=ctx(3))
    assert len(created) == 2
