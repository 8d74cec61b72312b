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


def _client_losing_first_responses(times: int, sent: list):
    """A client whose first ``times`` PutObject calls reach S3 but lose their first response.

    The request is sent as signed (so the write lands), then the connection "closes" before the
    reply: botocore retries the same conditional PUT, which S3 answers with 412.
    """
    import urllib3
    from botocore.exceptions import ConnectionClosedError

    client = boto3.session.Session().client(
        "s3", config=Config(retries={"max_attempts": 4, "mode": "standard"}))
    http = urllib3.PoolManager()

    def land_then_drop(request, **_kwargs):
        first_attempt = "attempt=1" in str(request.headers.get("amz-sdk-request", ""))
        if len(sent) >= times or not first_attempt:
            return None
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
            request.reset_stream()
        reply = http.request(request.method, request.url, body=body, headers=dict(request.headers.items()))
        sent.append(reply.status)
        raise ConnectionClosedError(endpoint_url=request.url)

    client.meta.events.register("before-send.s3.PutObject", land_then_drop)
    return client


def test_a_retried_put_whose_first_attempt_landed_is_not_a_lost_race(bucket):
    sent: list = []
    store = S3Store(bucket, client=_client_losing_first_responses(1, sent))
    etag = store.create("events/e1.json", b'{"event_id": "e1"}')
    assert sent == [200]  # the first attempt landed; its reply was lost and the retry got 412
    assert store.read("events/e1.json").etag == etag

    sent.clear()
    new_etag = store.replace("events/e1.json", b'{"event_id": "e1", "n": 2}', etag)
    assert sent == [200] and new_etag != etag
    assert S3Store(bucket).read("events/e1.json").data == b'{"event_id": "e1", "n": 2}'

    # Other bytes at the key are still someone else's write.
    from streamguard.registry import PreconditionFailed, RecordExists

    plain = S3Store(bucket)
    with pytest.raises(RecordExists):
        plain.create("events/e1.json", b'{"event_id": "other"}')
    with pytest.raises(PreconditionFailed):
        plain.replace("events/e1.json", b'{"event_id": "e1", "n": 3}', etag)


def test_registration_through_lost_responses_makes_one_version(bucket):
    sent: list = []
    # Each PutObject of the registration (the claim, the version record, the completed pointer)
    # lands, loses its reply and is retried by botocore.
    client = RegistryClient(store=S3Store(bucket, client=_client_losing_first_responses(3, sent)))
    version = _register(client, "job-lost-replies")
    assert sent == [200, 200, 200]
    (only,) = RegistryClient(bucket).list_versions("taint_flow_gnn")
    assert only.version == version.version == 1 and only.training_job_name == "job-lost-replies"
