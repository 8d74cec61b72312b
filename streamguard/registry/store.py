"""The abstract registry store: registry operations built on four conditional-object primitives.

A backend (local directory, S3) implements only ``create`` (exclusive: fails if the key exists),
``read`` (bytes + etag), ``replace`` (compare-and-swap on the etag) and key listing. Everything
else -- version numbering, idempotent registration, alias moves, the event log -- lives here once,
so both backends share the exact same concurrency protocol.

Layout under the root::

    models/<model>/versions/000001.json   immutable version record (exclusive create)
    models/<model>/aliases/<alias>.json   where an alias points (compare-and-swap)
    models/<model>/by_job/<job>.json      idempotency pointer: training job -> version
    events/<UTC timestamp>-<uuid>.json    one object per event, never rewritten

Idempotent registration (one version per training job, even under races):

1. *Claim* ``by_job/<job>.json`` with an exclusive create: ``{"state": "pending", "registration_id"}``.
   Exactly one caller wins; the others wait for the pointer to become ``complete`` and return
   the version it names, writing nothing.
2. The winner re-reads its claim (it must still be its own), then writes the version record
   (exclusive create, next free number; the record carries the ``registration_id``).
3. The winner swaps the pointer to ``{"state": "complete", "version": N}`` (compare-and-swap).

Recovery: a caller that finds a ``pending`` pointer first looks for a version record carrying the
claim's ``registration_id`` (the winner died after step 2) and completes the pointer itself. A
claim marked ``abandoned`` (the winner failed before step 2 and said so), or one older than
``stale_after`` seconds (the winner died silently), is taken over with a compare-and-swap. A winner
stalled longer than ``stale_after`` between steps 2 and 3 may leave one extra record; its step 3
then fails, it logs a ``duplicate_registration`` event and returns the version the pointer names.
No step ever leaves a torn object: every write is a whole-object create or swap.
"""

from __future__ import annotations

import abc
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from streamguard.registry.records import (
    AliasConflict,
    AliasRecord,
    Event,
    ModelVersion,
    PreconditionFailed,
    RecordExists,
    RegistryError,
    VersionNotFound,
    utc_now,
)

VERSION_DIGITS = 6
MAX_VERSION_ATTEMPTS = 1000
MAX_ALIAS_ATTEMPTS = 100
CLOCK_SKEW_MARGIN = 600.0  # seconds


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes and the etag to pass to ``replace`` for a compare-and-swap."""

    data: bytes
    etag: str


def dumps(obj: dict) -> bytes:
    """Canonical JSON bytes for a record (sorted keys, so equal records give equal bytes)."""
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def version_key(model: str, version: int) -> str:
    return f"models/{model}/versions/{version:0{VERSION_DIGITS}d}.json"


def alias_key(model: str, alias: str) -> str:
    return f"models/{model}/aliases/{alias}.json"


def job_key(model: str, job: str) -> str:
    return f"models/{model}/by_job/{job}.json"


def _stem(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name[: -len(".json")] if name.endswith(".json") else name


def _parse_iso(iso: str) -> datetime | None:
    try:
        return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def _age_seconds(iso: str) -> float:
    then = _parse_iso(iso)
    if then is None:
        return float("inf")  # an unreadable timestamp cannot prove the claim is alive
    return (datetime.now(timezone.utc) - then).total_seconds()


def _backoff(attempt: int, base: float = 0.002, cap: float = 0.5) -> None:
    # Exponential backoff with full jitter: racing writers spread out, so each retry round is
    # not a new stampede that wastes a request per loser.
    time.sleep(random.uniform(0, min(cap, base * 2 ** min(attempt, 16))))


class RegistryStore(abc.ABC):
    """Registry operations over an object store with exclusive create and compare-and-swap."""

    #: how long a ``pending`` job claim may stay unfinished before another caller takes it over
    stale_after: float = 300.0
    #: how long a caller waits for another caller's in-flight registration of the same job
    claim_wait: float = 60.0

    # ---- primitives a backend implements -------------------------------------------------
    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """The root URI of this store (for messages)."""

    @abc.abstractmethod
    def create(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` only if nothing is there; return the etag.

        A key that already holds exactly ``data`` may be taken as this call's own write seen
        through a transport retry (the S3 store does); callers make each write's bytes unique.

        Raises:
            RecordExists: the key already exists (nothing was written).
        """

    @abc.abstractmethod
    def read(self, key: str) -> StoredObject | None:
        """The object at ``key`` with its etag, or None when absent."""

    @abc.abstractmethod
    def replace(self, key: str, data: bytes, etag: str | None) -> str:
        """Swap the object at ``key`` for ``data`` if its etag is still ``etag``; return the new etag.

        ``etag=None`` means the key must not exist yet (same as ``create``).

        Raises:
            PreconditionFailed: the object changed, vanished or (for None) appeared meanwhile.
        """

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys under ``prefix`` (a folder path ending in ``/``), sorted."""

    @abc.abstractmethod
    def list_prefixes(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix``, sorted."""

    def key_uri(self, key: str) -> str:
        """The full URI of ``key`` (for error messages)."""
        return f"{self.uri.rstrip('/')}/{key}"

    # ---- JSON helpers --------------------------------------------------------------------
    def _load(self, key: str) -> tuple[dict, str] | None:
        obj = self.read(key)
        if obj is None:
            return None
        try:
            data = json.loads(obj.data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{self.key_uri(key)}: not valid JSON ({exc})") from exc
        return data, obj.etag

    # ---- versions ------------------------------------------------------------------------
    def version_numbers(self, model: str) -> list[int]:
        """Sorted version numbers of ``model`` (empty when the model has none)."""
        numbers = []
        for key in self.list_keys(f"models/{model}/versions/"):
            stem = _stem(key)
            if key.endswith(".json") and stem.isdigit():
                numbers.append(int(stem))
        return sorted(numbers)

    def get_version(self, model: str, version: int) -> ModelVersion:
        key = version_key(model, version)
        loaded = self._load(key)
        if loaded is None:
            raise VersionNotFound(f"model {model!r} has no version {version} in registry {self.uri}")
        record = ModelVersion.from_dict(loaded[0], where=self.key_uri(key))
        if record.model_name != model or record.version != version:
            raise RegistryError(
                f"{self.key_uri(key)}: record says model {record.model_name!r} version {record.version}"
            )
        return record

    def list_versions(self, model: str) -> list[ModelVersion]:
        return [self.get_version(model, n) for n in self.version_numbers(model)]

    def list_models(self) -> list[str]:
        return self.list_prefixes("models/")

    def _create_next_version(self, model: str, build: Callable[[int], dict]) -> ModelVersion:
        """Write ``build(n)`` at the next free version number ``n`` (exclusive create, retried)."""
        numbers = self.version_numbers(model)
        candidate = (numbers[-1] if numbers else 0) + 1
        for attempt in range(MAX_VERSION_ATTEMPTS):
            record = ModelVersion.from_dict(build(candidate), where=f"new version {candidate} of {model!r}")
            started = time.monotonic()
            try:
                self.create(version_key(model, candidate), dumps(record.to_dict()))
                return record
            except RecordExists:
                # Someone took this number. Back off in units of the store's own latency (a
                # local link takes microseconds, an S3 put milliseconds), then try the next one;
                # every third miss, re-list to jump past a run of numbers taken meanwhile.
                _backoff(attempt, base=max(0.001, time.monotonic() - started), cap=1.0)
                candidate += 1
                if attempt % 3 == 2:
                    numbers = self.version_numbers(model)
                    candidate = max(candidate, (numbers[-1] if numbers else 0) + 1)
        raise RegistryError(
            f"could not allocate a version number for model {model!r} in {self.uri} "
            f"after {MAX_VERSION_ATTEMPTS} attempts (too many concurrent writers?)"
        )

    # ---- idempotent registration ---------------------------------------------------------
    def register_once(
        self, model: str, job: str, build: Callable[[int, str], dict]
    ) -> tuple[ModelVersion, bool]:
        """Create one version for training job ``job``, or return the one that already exists.

        Args:
            build: ``build(version, registration_id) -> record dict``.

        Returns:
            ``(record, created)``; ``created`` is False when the job was already registered.
        """
        key = job_key(model, job)
        deadline = time.monotonic() + self.claim_wait
        attempt = 0
        while True:
            claim = self._new_claim(model, job)
            try:
                etag = self.create(key, dumps(claim))
            except RecordExists:
                pass
            else:
                return self._finish_claim(model, job, claim, etag, build)

            loaded = self._load(key)
            if loaded is None:  # vanished between our create and read: try to claim again
                continue
            pointer, etag = loaded
            where = self.key_uri(key)
            state = pointer.get("state")
            if state == "complete":
                version = pointer.get("version")
                if not isinstance(version, int):
                    raise RegistryError(f"{where}: complete pointer without an integer 'version'")
                return self.get_version(model, version), False
            if state not in ("pending", "abandoned"):
                raise RegistryError(f"{where}: unknown state {state!r}")

            found = self._find_registration(model, pointer)
            if found is not None:  # the claimer wrote its record but died before step 3
                self._complete_pointer(key, pointer, etag, found.version)
                return found, False

            if state == "abandoned" or _age_seconds(pointer.get("claimed_at", "")) > self.stale_after:
                claim = self._new_claim(model, job, taken_over_from=pointer.get("registration_id"))
                try:
                    etag = self.replace(key, dumps(claim), etag)
                except PreconditionFailed:
                    continue  # someone else took it over or finished it; look again
                return self._finish_claim(model, job, claim, etag, build)

            if time.monotonic() > deadline:
                raise RegistryError(
                    f"training job {job!r} of model {model!r} is being registered by another caller "
                    f"since {pointer.get('claimed_at')} ({where}); retry later"
                )
            _backoff(attempt, base=0.005, cap=0.2)
            attempt += 1

    @staticmethod
    def _new_claim(model: str, job: str, taken_over_from: str | None = None) -> dict:
        claim = {
            "model_name": model,
            "training_job_name": job,
            "state": "pending",
            "registration_id": uuid.uuid4().hex,
            "claimed_at": utc_now(),
        }
        if taken_over_from:
            claim["taken_over_from"] = taken_over_from
        return claim

    def _finish_claim(
        self, model: str, job: str, claim: dict, etag: str, build: Callable[[int, str], dict]
    ) -> tuple[ModelVersion, bool]:
        key = job_key(model, job)
        registration_id = claim["registration_id"]
        try:
            current = self._load(key)
            if current is None or current[0].get("registration_id") != registration_id:
                # Our claim was judged stale and taken over: let the new owner finish.
                return self.register_once(model, job, build)
            record = self._create_next_version(model, lambda n: build(n, registration_id))
        except BaseException:
            # Step 2 did not happen: release the claim so the next caller need not wait it out.
            try:
                self.replace(key, dumps({**claim, "state": "abandoned", "abandoned_at": utc_now()}), etag)
            except (PreconditionFailed, RegistryError, OSError):
                pass
            raise
        try:
            self._complete_pointer(key, claim, etag, record.version, strict=True)
        except PreconditionFailed:
            loaded = self._load(key)
            winner = loaded[0].get("version") if loaded else None
            if winner == record.version:  # a waiting caller completed our pointer for us
                return record, True
            self.append_event(
                "duplicate_registration",
                {"model_name": model, "training_job_name": job, "version": record.version, "kept_version": winner},
            )
            if isinstance(winner, int):
                return self.get_version(model, winner), False
            return self.register_once(model, job, build)
        return record, True

    def _complete_pointer(self, key: str, claim: dict, etag: str, version: int, strict: bool = False) -> None:
        done = {**claim, "state": "complete", "version": version, "completed_at": utc_now()}
        try:
            self.replace(key, dumps(done), etag)
        except PreconditionFailed:
            if strict:
                raise  # a concurrent helper completing the same claim is fine when not strict

    def _find_registration(self, model: str, claim: dict) -> ModelVersion | None:
        """The version record written under ``claim`` (newest first; none is older than the claim)."""
        registration_id = claim.get("registration_id")
        if not registration_id:
            return None
        claimed_at = _parse_iso(claim.get("claimed_at", ""))
        for number in reversed(self.version_numbers(model)):
            record = self.get_version(model, number)
            if record.registration_id == registration_id:
                return record
            created = _parse_iso(record.created_at)
            # Numbers grow with time, so stop well before the claim; the margin absorbs clock skew
            # between machines (the record under the claim is stamped by the claimer's own clock).
            if claimed_at and created and (claimed_at - created).total_seconds() > CLOCK_SKEW_MARGIN:
                break
        return None

    # ---- aliases -------------------------------------------------------------------------
    def read_alias(self, model: str, alias: str) -> AliasRecord | None:
        key = alias_key(model, alias)
        loaded = self._load(key)
        return None if loaded is None else AliasRecord.from_dict(loaded[0], where=self.key_uri(key))

    def list_aliases(self, model: str) -> dict[str, AliasRecord]:
        out = {}
        for key in self.list_keys(f"models/{model}/aliases/"):
            if key.endswith(".json"):
                record = self.read_alias(model, _stem(key))
                if record is not None:
                    out[record.alias] = record
        return out

    def move_alias(
        self, model: str, alias: str, version: int, expected_version: int | None, reason: str = ""
    ) -> AliasRecord:
        """Point ``alias`` at ``version`` with compare-and-swap.

        Args:
            expected_version: the version the caller believes the alias points at now (0: the
                alias must not exist yet); None moves it whatever it points at (still without
                losing a concurrent move: the swap retries on the fresh state).

        Raises:
            AliasConflict: ``expected_version`` is stale, or the swap lost a race.
        """
        key = alias_key(model, alias)
        for attempt in range(MAX_ALIAS_ATTEMPTS):
            loaded = self._load(key)
            current = None if loaded is None else AliasRecord.from_dict(loaded[0], where=self.key_uri(key))
            etag = None if loaded is None else loaded[1]
            current_version = current.version if current else 0
            if expected_version is not None and current_version != expected_version:
                raise AliasConflict(
                    f"alias {alias!r} of model {model!r} points at version {current_version or 'nothing'}, "
                    f"not the expected {expected_version or 'nothing'} ({self.key_uri(key)})"
                )
            record = AliasRecord(
                model_name=model,
                alias=alias,
                version=version,
                revision=(current.revision if current else 0) + 1,
                previous_version=current.version if current else None,
                updated_at=utc_now(),
                reason=reason,
            )
            try:
                self.replace(key, dumps(record.to_dict()), etag)
                return record
            except PreconditionFailed:
                if expected_version is not None:
                    raise AliasConflict(
                        f"alias {alias!r} of model {model!r} moved while setting it to version {version} "
                        f"({self.key_uri(key)}); re-read it and retry"
                    ) from None
                _backoff(attempt)
        raise AliasConflict(f"alias {alias!r} of model {model!r}: too many concurrent moves ({self.key_uri(key)})")

    # ---- events --------------------------------------------------------------------------
    def append_event(self, kind: str, payload: dict) -> str:
        """Write one event object; the id sorts by time (UTC timestamp, then a uuid)."""
        now = datetime.now(timezone.utc)
        event = Event(
            event_id=f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex}",
            kind=kind,
            created_at=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            payload=payload,
        )
        try:
            data = dumps(event.to_dict())
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"event {kind!r}: payload is not JSON-serializable ({exc})") from exc
        self.create(f"events/{event.event_id}.json", data)
        return event.event_id

    def list_events(self, kind: str | None = None) -> list[Event]:
        events = []
        for key in self.list_keys("events/"):
            if not key.endswith(".json"):
                continue
            loaded = self._load(key)
            if loaded is None:
                continue
            event = Event.from_dict(loaded[0], where=self.key_uri(key))
            if kind is None or event.kind == kind:
                events.append(event)
        return sorted(events, key=lambda e: e.event_id)
