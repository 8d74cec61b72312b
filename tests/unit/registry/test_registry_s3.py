"""Model registry on S3 (moto server): conditional writes, idempotency and concurrent writers."""

from __future__ import annotations

import json

import boto3
import pytest

from streamguard.registry import PreconditionFailed, RecordExists, RegistryClient, RegistryError
from streamguard.registry.s3 import S3Store
from streamguard.registry.store import version_key
from tests.support.registry_scenarios import (
    MODEL,
    register_kwargs,
    run_concurrent_alias_moves,
    run_concurrent_registrations,
    run_same_job_registrations,
)

BUCKET = "sg-registry"


@pytest.fixture
def s3_client(moto_server) -> RegistryClient:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return RegistryClient(f"s3://{BUCKET}/registry")


def test_layout_and_api(s3_client):
    v1 = s3_client.register(MODEL, **register_kwargs("job-a"))
    assert s3_client.register(MODEL, **register_kwargs("job-a")) == v1  # idempotent
    s3_client.register(MODEL, **register_kwargs("job-b", val_acc=0.5))  # rejected
    s3_client.promote(MODEL, 1, expected_version=0)
    s3_client.mark_deployed(MODEL, 1)
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {f"registry/models/{MODEL}/versions/000001.json", f"registry/models/{MODEL}/versions/000002.json",
            f"registry/models/{MODEL}/by_job/job-a.json", f"registry/models/{MODEL}/aliases/champion.json",
            f"registry/models/{MODEL}/aliases/deployed.json"} <= keys
    assert sum(k.startswith("registry/events/") for k in keys) == 5  # 2 created, 2 moves, 1 deployment
    assert s3_client.list_models() == [MODEL]
    assert [h["passed"] for h in s3_client.gate_history(MODEL)] == [True, False]
    assert s3_client.get_alias(MODEL, "deployed").version == 1
    with pytest.raises(RegistryError, match="rejected"):
        s3_client.promote(MODEL, 2)
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"registry/models/{MODEL}/versions/000001.json")
    assert json.loads(body["Body"].read())["training_job_name"] == "job-a"


def test_conditional_writes(s3_client):
    store = s3_client.store
    assert isinstance(store, S3Store)
    s3_client.register(MODEL, **register_kwargs("job-a"))
    with pytest.raises(RecordExists, match=rf"s3://{BUCKET}/registry/models/{MODEL}/versions/000001.json"):
        store.create(version_key(MODEL, 1), b"{}")
    assert json.loads(store.read(version_key(MODEL, 1)).data)["version"] == 1  # unchanged
    etag = store.create("scratch/x.json", b"1")
    etag2 = store.replace("scratch/x.json", b"2", etag)
    with pytest.raises(PreconditionFailed):
        store.replace("scratch/x.json", b"3", etag)  # stale etag
    with pytest.raises(PreconditionFailed):
        store.replace("scratch/gone.json", b"3", etag2)  # no such key
    assert store.read("scratch/x.json").data == b"2"


def test_missing_bucket_is_a_clear_error(moto_server):
    message = r"creating s3://no-such-bucket/r/models/m/by_job/job-a.json failed: NoSuchBucket \(bucket does not"
    with pytest.raises(RegistryError, match=message):
        RegistryClient("s3://no-such-bucket/r").register("m", **register_kwargs("job-a"))


def test_concurrent_registrations_threads(s3_client):
    elapsed = run_concurrent_registrations(s3_client, 50)
    print(f"\ns3 (moto): 50 concurrent registrations (threads) took {elapsed:.2f}s")


def test_same_job_concurrently(s3_client):
    elapsed = run_same_job_registrations(s3_client, 10)
    print(f"\ns3 (moto): 10 concurrent registrations of one job took {elapsed:.2f}s")


def test_concurrent_alias_moves(s3_client):
    elapsed, wins = run_concurrent_alias_moves(s3_client, 20)
    print(f"\ns3 (moto): 20 threads x 3 champion moves took {elapsed:.2f}s ({wins} won, {60 - wins} AliasConflict)")
