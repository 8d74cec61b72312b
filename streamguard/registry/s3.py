"""S3 registry store (``s3://bucket/prefix``) using conditional writes.

- Exclusive create: ``PutObject`` with ``IfNoneMatch='*'`` (412 when the key exists).
- Compare-and-swap: ``PutObject`` with ``IfMatch=<etag>`` (412 when it changed, 404 when gone).
- 409 ``ConditionalRequestConflict`` (two conditional writes in flight on one key) is treated as
  a lost race: creates retry, swaps report ``PreconditionFailed`` so the caller re-reads.
- A 412 whose key now holds exactly the bytes this call sent is this call's own write: botocore
  retried a PUT that had landed but whose response was lost (a reset connection, a timeout). It is
  taken as success, with the stored etag. Every record the registry writes carries a fresh id or
  timestamp (``registration_id``, ``event_id``, ``claimed_at``, ``updated_at``), so another
  writer's bytes never equal ours.
boto3 is imported when a store is built, never at module import (DAG files import the registry).
The endpoint comes from the usual AWS settings (``AWS_ENDPOINT_URL`` for moto or MinIO).
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

from streamguard.registry.records import PreconditionFailed, RecordExists, RegistryError
from streamguard.registry.store import RegistryStore, StoredObject

_CONFLICT_RETRIES = 5


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise RegistryError(f"registry URI {uri!r}: expected s3://bucket[/prefix]")
    return parsed.netloc, parsed.path.strip("/")


def _code_status(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


class S3Store(RegistryStore):
    """Registry store under ``s3://bucket/prefix``."""

    def __init__(self, uri: str, client=None):
        self.bucket, self.prefix = parse_s3_uri(uri)
        if client is None:
            import boto3
            from botocore.config import Config

            # Enough pooled connections for many threads sharing one (thread-safe) client.
            config = Config(max_pool_connections=64, retries={"max_attempts": 5, "mode": "standard"})
            client = boto3.session.Session().client("s3", config=config)
        self.client = client
        from botocore.exceptions import ClientError

        self._client_error = ClientError

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, key: str, action: str, exc: Exception) -> RegistryError:
        code, status = _code_status(exc)
        hint = " (bucket does not exist)" if code == "NoSuchBucket" else ""
        return RegistryError(f"{action} {self.key_uri(key)} failed: {code or status or exc}{hint}")

    def create(self, key: str, data: bytes) -> str:
        for attempt in range(_CONFLICT_RETRIES):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data,
                    ContentType="application/json", IfNoneMatch="*",
                )
                return response["ETag"]
            except self._client_error as exc:
                code, status = _code_status(exc)
                if status == 412 or code == "PreconditionFailed":
                    landed = self._landed(key, data)
                    if landed is not None:
                        return landed
                    raise RecordExists(f"{self.key_uri(key)} already exists (registry records are immutable)") from None
                if status == 409:  # a concurrent conditional write is in flight: ask again
                    time.sleep(0.01 * (attempt + 1))
                    continue
                raise self._fail(key, "creating", exc) from exc
        raise RegistryError(f"creating {self.key_uri(key)}: conflicting writes did not settle")

    def _landed(self, key: str, data: bytes) -> str | None:
        """The etag at ``key`` if it holds exactly ``data`` (a retried write of ours that had landed)."""
        stored = self.read(key)
        return stored.etag if stored is not None and stored.data == data else None

    def read(self, key: str) -> StoredObject | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._client_error as exc:
            code, status = _code_status(exc)
            if code in ("NoSuchKey", "404") or status == 404 and code != "NoSuchBucket":
                return None
            raise self._fail(key, "reading", exc) from exc
        with response["Body"] as body:
            return StoredObject(data=body.read(), etag=response["ETag"])

    def replace(self, key: str, data: bytes, etag: str | None) -> str:
        if etag is None:
            try:
                return self.create(key, data)
            except RecordExists as exc:
                raise PreconditionFailed(str(exc)) from None
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data,
                ContentType="application/json", IfMatch=etag,
            )
        except self._client_error as exc:
            code, status = _code_status(exc)
            if status in (412, 409) or code in ("PreconditionFailed", "NoSuchKey"):
                landed = self._landed(key, data) if status == 412 or code == "PreconditionFailed" else None
                if landed is not None:
                    return landed
                raise PreconditionFailed(f"{self.key_uri(key)} changed since it was read ({code or status})") from None
            raise self._fail(key, "replacing", exc) from exc
        return response["ETag"]

    def _list(self, prefix: str, delimiter: str | None) -> tuple[list[str], list[str]]:
        full = self._key(prefix)
        kwargs = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        keys, prefixes = [], []
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
                prefixes.extend(p["Prefix"][strip:] for p in page.get("CommonPrefixes", []))
        except self._client_error as exc:
            raise self._fail(prefix, "listing", exc) from exc
        return keys, prefixes

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(self._list(prefix, None)[0])

    def list_prefixes(self, prefix: str) -> list[str]:
        _, prefixes = self._list(prefix, "/")
        return sorted(p[len(prefix):].strip("/") for p in prefixes)
