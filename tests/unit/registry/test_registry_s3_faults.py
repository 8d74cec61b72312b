"""The S3 artifact/registry store under 503 SlowDown: retried by botocore, or a clear failure —
never a half-written registry record."""

from __future__ import annotations

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from streamguard.registry import RegistryClient, RegistryError
from streamguard.registry.s3 import S3Store

GATE = {"passed": True, "reasons": [], "thresholds": {"min_val_accuracy": 0.5}}


class _Raw:
    """The minimal raw body botocore reads from an injected response."""

    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):
        yield self._body

    def read(self, *_args, **_kwargs):
        return self._body


def _client_failing_puts(times: int, calls: list):
    client = boto3.session.Session().client(
        "s3", config=Config(retries={"max_attempts": 4, "mode": "standard"}))
    body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    def inject(request, **_kwargs):
        calls.append(request.url)
        if len(calls) <= times:
            return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _Raw(body))
        return None

    client.meta.events.register("before-send.s3.PutObject", inject)
    return client


def _register(client: RegistryClient, job: str):
    return client.register("taint_flow_gnn", model_type="gnn", artifact_uri="s3://b/a/model.tar.gz",
                           artifact_sha256="a" * 64, metrics={"validation": {"accuracy": 0.9}},
                           training_job_name=job, backend="sagemaker", data_hash="d" * 64, code_version="t",
                           hyperparameters={}, gate=GATE)


@pytest.fixture()
def bucket(moto_server):
    boto3.client("s3").create_bucket(Bucket="sg-faults")
    return "s3://sg-faults/registry"


def test_transient_503_is_retried_and_the_record_lands_once(bucket):
    calls: list = []
    client = RegistryClient(store=S3Store(bucket, client=_client_failing_puts(2, calls)))
    version = _register(client, "job-retry")
    assert version.version == 1
    assert len(calls) >= 3  # two 503s, then the write that landed
    fresh = RegistryClient(bucket)
    (only,) = fresh.list_versions("taint_flow_gnn")
    assert only.training_job_name == "job-retry" and only.metrics["validation"]["accuracy"] == 0.9


def test_persistent_503_fails_clearly_and_leaves_no_record(bucket):
    calls: list = []
    client = RegistryClient(store=S3Store(bucket, client=_client_failing_puts(10_000, calls)))
    with pytest.raises(RegistryError) as err:
        _register(client, "job-down")
    assert "SlowDown" in str(err.value) or "503" in str(err.value)
    assert RegistryClient(bucket).list_versions("taint_flow_gnn") == []
