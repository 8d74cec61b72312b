"""The training DAG end to end in SageMaker mode, against moto with real training behind it.

The DAG runs in this process (`DAG.test`) with ``STREAMGUARD_BACKEND=sagemaker``: the provider's
operator, sensor and hook talk to a ``ThreadedMotoServer`` through the ``aws_default`` connection,
and `tests.support.sagemaker_sim.SageMakerSimulator` makes moto's training jobs real (the local backend
runs each received ``CreateTrainingJob`` request against the moto S3 bucket). The tests check the
exact requests SageMaker receives, the registry and SageMaker model packages they lead to, a
job that fails for good, a failed job resumed by the deferred train task's retry (the provider's
`SageMakerTrigger`, run in-process by `DAG.test`), and that a retried training task starts no
second job.

Three settings are shortened for the test only: the sensors' ``poke_interval`` and the train
tasks' trigger interval (60 s in the DAG), the evaluation tasks' reschedule interval
(``STREAMGUARD_SAGEMAKER_POKE_SECONDS``, 60 s) and every
task's ``retry_delay`` (20 s).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest

from tests.conftest import OPEN_GATE, REPO
from tests.support.moto_server import _CLEARED_ENV, aws_env, reset_moto_server, start_moto_server
from tests.support.sagemaker_sim import SageMakerSimulator, hyperparameter

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BUCKET = "sg-e2e-sagemaker"
ROLE_ARN = "arn:aws:iam::123456789012:role/test"
REGION = "us-east-1"
DAG_ID = "streamguard_training"
# Tiny but real: a few dozen records, one epoch, gates open so both models register.
CONF = {
    "sample_pairs": 20,
    "gnn_epochs": 1,
    "transformer_epochs": 1,
    "gnn_batch_size": 8,
    "transformer_batch_size": 8,
    "gnn_min_val_accuracy": 0.0,
    "transformer_min_val_accuracy": 0.0,
    "max_fpr": 1.0,
}
FAILURE_REASON = "AlgorithmError: simulated out of memory (exit code 137)"
CLIENT_ERROR = "ClientError: simulated: channel train holds no data"


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sagemaker_env(airflow_db, tmp_path_factory):
    """Moto server + bucket + SageMaker-mode env + simulator + the parsed training DAG (one per module)."""
    endpoint = start_moto_server()
    reset_moto_server(endpoint)
    home = tmp_path_factory.mktemp("e2e-sagemaker")
    empty = home / "aws-empty-config"
    empty.write_text("")
    with pytest.MonkeyPatch.context() as mp:
        for name in _CLEARED_ENV:
            mp.delenv(name, raising=False)
        for name, value in aws_env(endpoint).items():
            mp.setenv(name, value)
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        # The provider reads `endpoint_url` and `region_name` from the connection's extra.
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"region_name": REGION, "endpoint_url": endpoint},
        }))
        mp.setenv("STREAMGUARD_BACKEND", "sagemaker")
        mp.setenv("STREAMGUARD_SAGEMAKER_POKE_SECONDS", "1")  # evaluation tasks reschedule every second
        mp.setenv("STREAMGUARD_GATE_THRESHOLDS", OPEN_GATE)
        mp.setenv("STREAMGUARD_ARTIFACT_ROOT", f"s3://{BUCKET}/artifacts")
        mp.setenv("STREAMGUARD_REGISTRY_URI", f"s3://{BUCKET}/registry")
        mp.setenv("STREAMGUARD_SAGEMAKER_ROLE_ARN", ROLE_ARN)
        mp.delenv("STREAMGUARD_TRAINING_IMAGE", raising=False)

        import boto3

        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)

        # The DAG file picks operator and sensor from STREAMGUARD_BACKEND at import: parse it now.
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags" / "streamguard_training.py"))
        assert bag.import_errors == {}, bag.import_errors
        dag = bag.dags[DAG_ID]
        from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTrainingSensor

        for task in dag.tasks:
            task.retry_delay = timedelta(seconds=1)
            if isinstance(task, SageMakerTrainingSensor):
                task.poke_interval = 1
        with SageMakerSimulator(home / "sim-jobs") as sim:
            yield SimpleNamespace(endpoint=endpoint, dag=dag, sim=sim, home=home, mp=mp)


def _run_dag(env, conf: dict, registry_prefix: str):
    """One `DAG.test` run with its own registry prefix; returns the DagRun."""
    env.sim.reset()
    env.mp.setenv("STREAMGUARD_REGISTRY_URI", f"s3://{BUCKET}/{registry_prefix}")
    return env.dag.test(run_conf=conf)


def _s3():
    import boto3

    return boto3.client("s3", region_name=REGION)


def _sm():
    import boto3

    return boto3.client("sagemaker", region_name=REGION)


def _read_s3(uri: str) -> bytes:
    bucket, key = uri[len("s3://"):].split("/", 1)
    return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()


def _expected_inputs(run_id: str):
    """Config, prepared data and source package of a run, read back from the bucket."""
    from streamguard import storage
    from streamguard.pipeline.params import TrainingConfig, resolve_training_config
    from streamguard.pipeline.records import PreparedChannels, SourcePackage, run_key, run_uri

    config: TrainingConfig = resolve_training_config(CONF)
    key = run_key(DAG_ID, run_id)
    data = PreparedChannels.from_dict(json.loads(storage.read_text(run_uri(key, "data", "_SUCCESS.json"))))
    prefix = run_uri(key, "code")[len(f"s3://{BUCKET}/"):] + "/"
    (obj,) = _s3().list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    uri = f"s3://{BUCKET}/{obj['Key']}"
    sha = hashlib.sha256(_read_s3(uri)).hexdigest()
    # The package is content-addressed: <run>/code/<sha256[:12]>/sourcedir.tar.gz.
    assert uri == run_uri(key, "code", sha[:12], "sourcedir.tar.gz")
    return config, data, SourcePackage(uri=uri, sha256=sha)


@pytest.fixture(scope="module")
def success_run(sagemaker_env):
    """The training DAG run with both models; returns (dag run, recorded requests)."""
    dr = _run_dag(sagemaker_env, CONF, "registry-ok")
    return dr, list(sagemaker_env.sim.requests)


# ---------------------------------------------------------------------------------------- tests
def test_dag_run_succeeds(success_run):
    dr, requests = success_run
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    assert len(requests) == 4  # two training jobs, two evaluation jobs, nothing twice


def test_training_requests_are_exactly_the_built_requests(success_run, sagemaker_env):
    from streamguard.pipeline.job_specs import build_training_job
    from streamguard.pipeline.records import RunContext, run_key, run_uri
    from streamguard.jobs.metrics import METRIC_DEFINITIONS
    from streamguard.jobs.request import validate_request

    dr, requests = success_run
    assert dr.state == "success"
    training = [r for r in requests if hyperparameter(r, "mode") is None]
    assert sorted(hyperparameter(r, "model-type") for r in training) == ["gnn", "transformer"]
    config, data, source = _expected_inputs(dr.run_id)
    key = run_key(DAG_ID, dr.run_id)
    for request in training:
        validate_request(request)
        model_type = hyperparameter(request, "model-type")
        run = RunContext.create(DAG_ID, dr.run_id, "sagemaker")
        expected = build_training_job(run, config, model_type, data, source)
        assert request == expected
        # The same, field by field, for what SageMaker relies on.
        m = config.per_model[model_type]
        assert request["TrainingJobName"].startswith(f"sg-{model_type}-")
        assert request["RoleArn"] == ROLE_ARN
        assert request["AlgorithmSpecification"] == {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.9.0-cpu-py312-ubuntu22.04-sagemaker",
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
            "EnableSageMakerMetricsTimeSeries": True,
        }
        assert {"Name": "train:loss", "Regex": "Train Loss=(.*?);"} in METRIC_DEFINITIONS
        assert {"Name": "train:accuracy", "Regex": "Train Acc=(.*?);"} in METRIC_DEFINITIONS
        assert {"Name": "validation:accuracy", "Regex": "Val Acc=(.*?);"} in METRIC_DEFINITIONS
        hps = request["HyperParameters"]
        assert all(isinstance(v, str) for v in hps.values()), hps
        for name, value in {
            "model-type": json.dumps(model_type),
            "epochs": str(m.epochs),
            "batch-size": str(m.batch_size),
            "learning-rate": json.dumps(m.learning_rate),
            "seed": str(config.seed),
            "sagemaker_program": '"train_enhanced_models.py"',
            "sagemaker_submit_directory": json.dumps(source.uri),
            "sagemaker_region": '"us-east-1"',
            "sagemaker_container_log_level": "20",
        }.items():
            assert hps[name] == value, (name, hps)
        assert "mode" not in hps
        assert source.uri.startswith(f"s3://{BUCKET}/artifacts/runs/")
        assert [(c["ChannelName"], c["DataSource"]["S3DataSource"]["S3DataType"],
                 c["DataSource"]["S3DataSource"]["S3Uri"]) for c in request["InputDataConfig"]] == [
            (name, "S3Prefix", run_uri(key, "data", name)) for name in ("train", "validation", "test")]
        assert request["OutputDataConfig"] == {"S3OutputPath": run_uri(key, "jobs")}
        assert request["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                             "VolumeSizeInGB": 30}
        assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 120 * 60}
        assert request["EnableManagedSpotTraining"] is False
        assert {"Key": "model_type", "Value": model_type} in request["Tags"]
        assert {"Key": "dag_id", "Value": DAG_ID} in request["Tags"]
        assert {"Key": "project", "Value": "streamguard"} in request["Tags"]
        # The sensor watched a running job that then completed.
        history = sagemaker_env.sim.status_history(request["TrainingJobName"])
        assert "InProgress" in history and history[-1] == "Completed", history


def test_evaluation_requests_run_evaluate_mode_on_the_trained_model(success_run):
    from streamguard.pipeline.job_specs import build_evaluate_job, build_training_job
    from streamguard.pipeline.records import RunContext, run_key, run_uri
    from streamguard.jobs.request import validate_request

    dr, requests = success_run
    assert dr.state == "success"
    evaluation = [r for r in requests if hyperparameter(r, "mode") == "evaluate"]
    assert sorted(hyperparameter(r, "model-type") for r in evaluation) == ["gnn", "transformer"]
    config, data, source = _expected_inputs(dr.run_id)
    key = run_key(DAG_ID, dr.run_id)
    for request in evaluation:
        validate_request(request)
        model_type = hyperparameter(request, "model-type")
        run = RunContext.create(DAG_ID, dr.run_id, "sagemaker")
        trained = build_training_job(run, config, model_type, data, source)
        model_prefix = f"{run_uri(key, 'jobs')}/{trained['TrainingJobName']}/output/"
        expected = build_evaluate_job(run, config, model_type, data, source,
                                      model_channel_uri=model_prefix)
        # One on-demand instance without checkpoints, whatever the training jobs used.
        assert request["EnableManagedSpotTraining"] is False and "CheckpointConfig" not in request
        assert set(request["StoppingCondition"]) == {"MaxRuntimeInSeconds"}
        assert request["ResourceConfig"]["InstanceCount"] == 1
        assert "threshold" not in request["HyperParameters"]  # evaluation uses the model's own threshold
        assert request == expected
        assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["test", "model"]


def test_registry_holds_one_evaluated_version_per_model(success_run):
    from streamguard import storage
    from streamguard.registry import RegistryClient

    dr, _requests = success_run
    assert dr.state == "success"
    client = RegistryClient(f"s3://{BUCKET}/registry-ok")
    assert sorted(client.list_models()) == ["sql_intent_transformer", "taint_flow_gnn"]
    for model in ("sql_intent_transformer", "taint_flow_gnn"):
        (v,) = client.list_versions(model)
        assert v.status == "registered" and v.gate["passed"] is True and v.backend == "sagemaker"
        assert v.artifact_uri.startswith(f"s3://{BUCKET}/artifacts/runs/") and v.artifact_uri.endswith(
            f"/{v.training_job_name}/output/model.tar.gz")
        assert hashlib.sha256(_read_s3(v.artifact_uri)).hexdigest() == v.artifact_sha256
        # Metrics of real inference on the test channel: one prediction per test record.
        n_test = len([line for line in storage.read_text(
            storage.join_uri(v.extra["channels"]["test"], "data.jsonl")).splitlines() if line.strip()])
        test = v.metrics["test"]
        assert test["n"] == n_test > 0
        assert sum(map(sum, test["confusion_matrix"])) == n_test
        assert 0.0 <= test["accuracy"] <= 1.0
        assert len(storage.read_text(v.extra["predictions_uri"]).splitlines()) == n_test
        assert v.metrics["validation"]["n"] > 0
        # FinalMetricDataList reached the job record through DescribeTrainingJob: the entry's own
        # log lines, parsed with the request's MetricDefinitions (not moto's placeholders).
        assert {"train:loss", "train:accuracy", "validation:accuracy"} <= set(v.extra["job_metrics"])
        assert v.extra["job_metrics"]["validation:accuracy"] == pytest.approx(v.metrics["validation"]["accuracy"],
                                                                              abs=1e-3)
        assert client.get_alias(model, "champion").version == v.version


def test_passing_models_are_approved_sagemaker_model_packages(success_run):
    from streamguard.pipeline.model_packages import model_package_group_name
    from streamguard.registry import RegistryClient
    from streamguard.jobs.images import pytorch_inference_image

    dr, _requests = success_run
    assert dr.state == "success"
    client = RegistryClient(f"s3://{BUCKET}/registry-ok")
    sm = _sm()
    for model_type, model in (("gnn", "taint_flow_gnn"), ("transformer", "sql_intent_transformer")):
        (v,) = client.list_versions(model)
        group = model_package_group_name(model_type)
        assert group == "streamguard-" + model.replace("_", "-")
        sm.describe_model_package_group(ModelPackageGroupName=group)
        (summary,) = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
        package = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        assert package["ModelApprovalStatus"] == "Approved"
        (container,) = package["InferenceSpecification"]["Containers"]
        assert container["ModelDataUrl"] == v.artifact_uri
        assert container["Image"] == pytorch_inference_image(REGION) == \
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker"
        # The archive's own handler serves it (not the toolkit's default, which wants model.pt).
        assert container.get("Environment", {}).get("SAGEMAKER_PROGRAM") == "inference.py"
        props = package["CustomerMetadataProperties"]
        assert props["registry_version"] == str(v.version)
        assert props["training_job_name"] == v.training_job_name
        assert props["artifact_sha256"] == v.artifact_sha256


def test_failed_training_job_fails_the_run_and_registers_nothing(sagemaker_env, capfd):
    from streamguard.registry import RegistryClient

    sagemaker_env.sim.reset()
    # A ClientError recurs on every attempt: the train task fails for good, without a retry.
    sagemaker_env.sim.fail_training("transformer", CLIENT_ERROR)
    sagemaker_env.mp.setenv("STREAMGUARD_REGISTRY_URI", f"s3://{BUCKET}/registry-failed")
    capfd.readouterr()
    # Only the failing model: the success run above already covers the other branch.
    dr = sagemaker_env.dag.test(run_conf=dict(CONF, models=["transformer"]))
    task_log = capfd.readouterr().out  # dag.test writes the task logs to stdout
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    states = {task_id: ti.state for task_id, ti in tis.items()}
    assert dr.state == "failed", states
    assert states["transformer.train"] == "failed" and tis["transformer.train"].try_number == 1
    assert states["transformer.wait"] == states["transformer.collect"] == "upstream_failed"
    assert states["transformer.register"] == "upstream_failed"
    (failed,) = sagemaker_env.sim.training_requests()
    # The train task's error carries SageMaker's FailureReason and says why nothing retries it.
    assert (f"SageMaker training job {failed['TrainingJobName']} Failed: {CLIENT_ERROR} "
            "(not retried: this failure would recur)") in task_log, task_log[-3000:]
    assert hyperparameter(failed, "model-type") == "transformer"
    assert sagemaker_env.sim.status_history(failed["TrainingJobName"])[:2] == ["InProgress", "Failed"]
    assert _sm().describe_training_job(TrainingJobName=failed["TrainingJobName"])["FailureReason"] == CLIENT_ERROR
    assert sagemaker_env.sim.training_requests(mode="evaluate") == []  # nothing evaluated a failed job
    client = RegistryClient(f"s3://{BUCKET}/registry-failed")
    assert client.list_models() == []
    assert client.list_versions("sql_intent_transformer") == []
    sm = _sm()
    package_jobs = [sm.describe_model_package(ModelPackageName=p["ModelPackageArn"])
                    ["CustomerMetadataProperties"]["training_job_name"]
                    for p in sm.list_model_packages(ModelPackageType="Both")["ModelPackageSummaryList"]]
    assert failed["TrainingJobName"] not in package_jobs


def test_failed_job_is_resumed_by_the_train_retry_and_registered(sagemaker_env, capfd):
    from streamguard.registry import RegistryClient
    from streamguard.lifecycle import attempt_job_name

    sagemaker_env.sim.reset()
    # The first job dies as an out-of-memory kill would; the next one is allowed to run.
    sagemaker_env.sim.fail_training("transformer", FAILURE_REASON, times=1)
    sagemaker_env.mp.setenv("STREAMGUARD_REGISTRY_URI", f"s3://{BUCKET}/registry-resumed")
    capfd.readouterr()
    dr = sagemaker_env.dag.test(run_conf=dict(CONF, models=["transformer"]))
    task_log = capfd.readouterr().out
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert dr.state == "success", {task_id: ti.state for task_id, ti in tis.items()}
    # The deferred train task saw its job fail; Airflow's retry of train started the next attempt.
    assert tis["transformer.train"].try_number == 2
    assert tis["transformer.wait"].try_number == 1  # the sensor only watched the attempt that completed
    assert "from the triggerer" in task_log
    first, second = sagemaker_env.sim.training_requests()
    base = first["TrainingJobName"]
    assert f"SageMaker training job {base} Failed: {FAILURE_REASON} (a retry of this task starts" in task_log
    # The retry sent the same request under the next attempt's name: same channels, same checkpoints.
    assert second == dict(first, TrainingJobName=attempt_job_name(base, 2))
    assert second["CheckpointConfig"]["S3Uri"].startswith(f"s3://{BUCKET}/artifacts/runs/")
    assert sagemaker_env.sim.status_history(second["TrainingJobName"])[-1] == "Completed"
    (version,) = RegistryClient(f"s3://{BUCKET}/registry-resumed").list_versions("sql_intent_transformer")
    assert version.training_job_name == second["TrainingJobName"] and version.status == "registered"
    (evaluation,) = sagemaker_env.sim.training_requests(mode="evaluate")
    # The evaluate job scored the resumed job's model.
    (model_channel,) = [c for c in evaluation["InputDataConfig"] if c["ChannelName"] == "model"]
    assert second["TrainingJobName"] in model_channel["DataSource"]["S3DataSource"]["S3Uri"]


def test_retried_train_task_reconnects_instead_of_starting_a_second_job(sagemaker_env, success_run, capfd):
    from streamguard.pipeline.job_specs import build_training_job
    from streamguard.pipeline.records import RunContext
    from streamguard_ops.reconnect import ReconnectingSageMakerTrainingOperator

    dr, _requests = success_run
    config, data, source = _expected_inputs(dr.run_id)
    request = build_training_job(RunContext.create(DAG_ID, "manual__retry-test", "sagemaker"), config, "gnn", data,
                                 source)
    sim = sagemaker_env.sim
    sim.reset()
    # The job's outcome does not matter here, only how often it is created: do not train.
    sim.fail_training("gnn", "not run by this test")
    results, logs = [], []
    for _attempt in range(2):  # the first try, then its retry with the same config
        capfd.readouterr()
        op = ReconnectingSageMakerTrainingOperator(task_id="train", config=dict(request))
        results.append(op.execute({}))
        logs.append(capfd.readouterr().out)
    assert [r["TrainingJobName"] for r in sim.requests] == [request["TrainingJobName"]]
    assert sim.requests[0] == request
    assert "Creating SageMaker training job" in logs[0] and "reconnecting" not in logs[0]
    assert f"Training job {request['TrainingJobName']} already exists" in logs[1]
    assert "reconnecting instead of starting a second job" in logs[1]
    assert "Creating SageMaker training job" not in logs[1]
    assert results[0]["Training"]["TrainingJobName"] == results[1]["Training"]["TrainingJobName"]
    # Without the reconnect the retry would have failed: like SageMaker, the simulator refuses
    # a second job of the same name.
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        _sm().create_training_job(**request)
    assert refused.value.response["Error"]["Code"] == "ResourceInUse"


# ------------------------------------------------------------------------------- retraining DAG
def _copy_prefix(src: str, dest: str) -> None:
    s3 = _s3()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=src + "/"):
        for obj in page.get("Contents", []):
            s3.copy_object(Bucket=BUCKET, Key=dest + obj["Key"][len(src):],
                           CopySource={"Bucket": BUCKET, "Key": obj["Key"]})


def test_retraining_dag_fine_tunes_evaluates_promotes_and_creates_the_endpoint_config(sagemaker_env, success_run):
    """The retraining DAG in SageMaker mode: the training run's GNN champion, fine-tuned one epoch."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTrainingSensor

    from streamguard.ab import sagemaker_model_name
    from streamguard.pipeline.model_packages import model_package_group_name
    from streamguard.registry import RegistryClient
    from streamguard.jobs.images import pytorch_inference_image

    dr, _requests = success_run
    assert dr.state == "success"
    # A registry of its own, holding the training run's champions (the other tests read registry-ok).
    _copy_prefix("registry-ok", "registry-retrain")
    client = RegistryClient(f"s3://{BUCKET}/registry-retrain")
    champion = client.get_alias("taint_flow_gnn", "champion")
    bag = DagBag(dag_folder=str(REPO / "dags" / "streamguard_retraining.py"))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.dags["streamguard_retraining"]
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)
        if isinstance(task, SageMakerTrainingSensor):
            task.poke_interval = 1
    sim = sagemaker_env.sim
    sim.reset()
    sagemaker_env.mp.setenv("STREAMGUARD_REGISTRY_URI", f"s3://{BUCKET}/registry-retrain")
    created_models, created_configs = [], []
    import botocore.client

    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):  # what the DAG sends SageMaker, over the wire to moto
        if operation == "CreateModel":
            created_models.append(params)
        elif operation == "CreateEndpointConfig":
            created_configs.append(params)
        return original(self, operation, params)

    sagemaker_env.mp.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    run = dag.test(run_conf={"force": True, "models": ["gnn"], "finetune_epochs": 1,
                             "gnn_min_val_accuracy": 0.0, "transformer_min_val_accuracy": 0.0, "max_fpr": 1.0})
    sagemaker_env.mp.setattr(botocore.client.BaseClient, "_make_api_call", original)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states["transformer.skip"] == "success" and states["transformer.train"] == "skipped"

    # One fine-tune job from the champion's verified weights, then both evaluations on the same test set.
    (finetune,) = sim.training_requests()
    assert finetune["TrainingJobName"].startswith("sg-gnn-ft-")
    assert hyperparameter(finetune, "fine-tune") is True and hyperparameter(finetune, "epochs") == 1
    assert hyperparameter(finetune, "model-sha256") == champion.artifact_sha256
    (model_channel,) = [c for c in finetune["InputDataConfig"] if c["ChannelName"] == "model"]
    assert model_channel["DataSource"]["S3DataSource"]["S3Uri"] == champion.artifact_uri.rsplit("/", 1)[0] + "/"
    evaluations = {r["TrainingJobName"]: r for r in sim.training_requests(mode="evaluate")}
    assert len(evaluations) == 2 and any("-champ-eval-" in n for n in evaluations)
    tests = {[c for c in r["InputDataConfig"] if c["ChannelName"] == "test"][0]["DataSource"]["S3DataSource"]["S3Uri"]
             for r in evaluations.values()}
    assert tests == {champion.extra["channels"]["test"]}
    (champ_eval,) = [r for n, r in evaluations.items() if "-champ-eval-" in n]
    assert hyperparameter(champ_eval, "model-sha256") == champion.artifact_sha256
    for name in [finetune["TrainingJobName"], *evaluations]:
        assert sim.status_history(name)[-1] == "Completed", name

    # The promotion decision, recorded with the challenger it concerns.
    versions = client.list_versions("taint_flow_gnn")
    assert [v.version for v in versions] == [champion.version, champion.version + 1]
    challenger = versions[-1]
    assert challenger.training_job_name == finetune["TrainingJobName"] and challenger.backend == "sagemaker"
    assert challenger.extra["fine_tuned_from"] == champion.version
    # It records what the fine-tune ran with, so that the next fine-tune starts from its options and rate.
    assert challenger.hyperparameters["fine_tuned_from"] == champion.version
    for flag in ("epochs", "learning-rate", "seed", "sink-dropout"):
        assert challenger.hyperparameters[flag] == hyperparameter(finetune, flag), flag
    (event,) = [e.payload for e in client.list_events() if e.kind in ("promotion", "challenger_rejected")]
    promoted = event["promoted"]
    assert event["challenger_version"] == challenger.version and event["champion_version"] == champion.version
    assert client.get_alias("taint_flow_gnn", "champion").version == (challenger.version if promoted
                                                                        else champion.version)
    # The challenger's model package, approved only when promoted, with its evaluation metrics.
    sm = _sm()
    group = model_package_group_name("gnn")
    packages = [sm.describe_model_package(ModelPackageName=p["ModelPackageArn"])
                for p in sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]]
    (package,) = [p for p in packages if p["CustomerMetadataProperties"]["training_job_name"]
                  == challenger.training_job_name]
    assert package["ModelApprovalStatus"] == ("Approved" if promoted else "Rejected")
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == challenger.artifact_uri
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("/metrics.json")

    # CreateModel for champion and challenger, then CreateEndpointConfig naming both; no endpoint.
    assert sorted(m["ModelName"] for m in created_models) == sorted(
        sagemaker_model_name(v) for v in (champion, challenger))
    for params, version in zip(sorted(created_models, key=lambda m: m["ModelName"]),
                               sorted((champion, challenger), key=sagemaker_model_name)):
        container = params["PrimaryContainer"]
        assert container["ModelDataUrl"] == version.artifact_uri
        assert container["Image"] == pytorch_inference_image(REGION)
        assert sm.describe_model(ModelName=params["ModelName"])["PrimaryContainer"]["ModelDataUrl"] == \
            version.artifact_uri
    (config,) = created_configs
    # Promoted: an A/B split; not promoted: the challenger only shadows (moto does not echo shadow variants).
    variants = config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
    assert sorted(v["ModelName"] for v in variants) == sorted(m["ModelName"] for m in created_models)
    assert ("ShadowProductionVariants" in config) is not promoted
    serving = sagemaker_model_name(challenger if promoted else champion)
    described = sm.describe_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
    assert described["ProductionVariants"][0]["ModelName"] == serving
    assert sm.list_endpoints()["Endpoints"] == []  # shifting live traffic stays a person's decision
