"""Recording trained models: one path for the training DAG and the retraining DAG's challengers.

In SageMaker mode every recorded version is mirrored into its SageMaker model package group
(moto): a promoted challenger is ``Approved``, a rejected one ``Rejected``. A retried
`compare_and_decide` (the task died after promoting) changes nothing and raises nothing.
"""

from __future__ import annotations

import json

import pytest

from streamguard.jobs.record import JobRecord
from streamguard.pipeline.model_packages import model_package_group_name
from streamguard.pipeline.params import MODEL_NAMES, resolve_retraining_config, resolve_training_config
from streamguard.pipeline.promotion import compare_and_decide
from streamguard.pipeline.records import Evaluation, PreparedChannels, RetrainPlan
from streamguard.pipeline.registration import record_version
from streamguard.registry import RegistryClient

PROMOTION = {"min_gain": 0.01, "max_fpr_rise": 0.005, "alpha": 0.05, "slice_tolerance": 0.02}
GATE = {"passed": True, "reasons": [], "thresholds": {"min_val_accuracy": 0.5}}
N = 200


def _predictions(path, correct: int) -> str:
    """N rows of one frozen test set; the first ``correct`` are right, the rest wrong."""
    rows = []
    for i in range(N):
        label = i % 2
        pred = label if i < correct else 1 - label
        rows.append({"id": f"s{i}", "label": label, "pred": pred, "score": float(pred),
                     "cwe": "CWE-89", "language": "python"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.as_uri()


def _evaluation(tmp_path, name: str, correct: int) -> Evaluation:
    artifact = tmp_path / f"{name}.tar.gz"
    artifact.write_bytes(name.encode())
    return Evaluation(model_type="gnn", evaluation_job=None, artifact_uri=artifact.as_uri(), artifact_sha256="0" * 64,
                      metrics={"test": {"accuracy": correct / N, "n": N}},
                      predictions_uri=_predictions(tmp_path / f"{name}.jsonl", correct))


def _job(name: str) -> JobRecord:
    return JobRecord(job_name=name, backend="sagemaker", model_type="gnn", status="Completed")


def _plan(data: PreparedChannels, champion_version: int) -> RetrainPlan:
    return RetrainPlan(mode="finetune", data=data, training_config=resolve_training_config({}),
                       champion={"version": champion_version})


@pytest.fixture
def sagemaker_mode(moto_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": moto_server}}))
    monkeypatch.setenv("STREAMGUARD_REGISTRY_URI", (tmp_path / "registry").as_uri())
    import boto3

    return RegistryClient((tmp_path / "registry").as_uri()), boto3.client("sagemaker", region_name="us-east-1")


def _packages(sm, model_type: str) -> dict[str, tuple[str, str]]:
    """training job -> (approval status, registry status) of every package in the model's group."""
    out = {}
    for summary in sm.list_model_packages(ModelPackageGroupName=model_package_group_name(model_type))[
            "ModelPackageSummaryList"]:
        package = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        props = package["CustomerMetadataProperties"]
        out[props["training_job_name"]] = (package["ModelApprovalStatus"], props["registry_status"])
    return out


def test_challengers_are_recorded_as_model_packages_and_a_retry_changes_nothing(sagemaker_mode, tmp_path):
    registry, sm = sagemaker_mode
    model = MODEL_NAMES["gnn"]
    data = PreparedChannels(data_hash="h", channels={"test": "file:///t"})
    champion_eval = _evaluation(tmp_path, "champion", correct=140)
    champion, record = record_version(registry, "gnn", evaluation=champion_eval, job_name="sg-gnn-first",
                                      backend="sagemaker", data=data, hyperparameters={}, gate=GATE,
                                      approved=True, extra={})
    assert record["model_package_arn"].startswith("arn:aws:sagemaker:us-east-1:")
    registry.promote(model, champion.version, expected_version=0)
    plan = _plan(data, champion.version)

    # A clearly better challenger: promoted, deployed, an Approved package.
    better = _evaluation(tmp_path, "better", correct=190)
    args = (resolve_retraining_config(PROMOTION), "gnn", better, champion_eval, _job("sg-gnn-ft-1"), GATE, plan, "sagemaker", "run-1")
    first = compare_and_decide(*args)
    assert first["promoted"] is True and first["promoted_version"] == 2
    assert registry.get_alias(model, "champion").version == 2 and registry.get_alias(model, "deployed").version == 2
    # The task is retried after it promoted: same version, no AliasConflict, no second package.
    again = compare_and_decide(*args)
    assert again["promoted_version"] == 2 and len(registry.list_versions(model)) == 2
    assert _packages(sm, "gnn") == {"sg-gnn-first": ("Approved", "registered"),
                                    "sg-gnn-ft-1": ("Approved", "registered")}

    # A worse challenger against the new champion: rejected in the registry and as a package.
    plan = _plan(data, 2)
    worse = compare_and_decide(resolve_retraining_config(PROMOTION), "gnn", _evaluation(tmp_path, "worse", correct=150), better,
                               _job("sg-gnn-ft-2"), GATE, plan, "sagemaker", "run-2")
    assert worse["promoted"] is False and worse["reasons"]
    assert registry.get_alias(model, "champion").version == 2
    assert registry.get_version(model, 3).status == "rejected"
    assert _packages(sm, "gnn")["sg-gnn-ft-2"] == ("Rejected", "rejected")
