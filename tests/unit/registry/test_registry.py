"""Model registry against the local store: API, idempotency, recovery, and concurrent writers.

The concurrency scenarios (``run_*``, in tests/support/registry_scenarios.py) are shared with
``test_registry_s3.py``, which runs them against a moto S3 server. Metrics here are small synthetic
inputs to exercise the registry.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamguard.registry import (
    AliasConflict,
    RecordExists,
    RegistryClient,
    RegistryError,
    VersionNotFound,
    code_version,
    file_sha256,
    store_for_uri,
)
from streamguard.registry.local import LocalStore
from streamguard.registry.store import dumps, job_key, version_key
from tests.support.registry_scenarios import (
    MODEL,
    check_distinct_versions,
    register_kwargs,
    run_concurrent_alias_moves,
    run_concurrent_registrations,
    run_same_job_registrations,
    run_threads,
)

TIMINGS: dict[str, float] = {}


# ---- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path) -> RegistryClient:
    return RegistryClient((tmp_path / "registry").as_uri())


# ---- basic API ------------------------------------------------------------------------------------
def test_register_get_list_latest(client):
    v1 = client.register(MODEL, **register_kwargs("job-a", val_acc=0.95, test_acc=0.93))
    v2 = client.register(MODEL, **register_kwargs("job-b", val_acc=0.97, test_acc=0.96))
    v3 = client.register(MODEL, **register_kwargs("job-c", val_acc=0.80, test_acc=0.79))
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert v3.status == "rejected" and not v3.passed_gate
    assert client.get_version(MODEL, 2) == v2
    assert [v.version for v in client.list_versions(MODEL)] == [1, 2, 3]
    assert client.list_models() == [MODEL]
    assert client.latest(MODEL).version == 2
    assert client.latest(MODEL, status="rejected").version == 3
    assert client.latest(MODEL, status=None).version == 3
    assert client.latest("other-model") is None
    record = json.loads((Path(client.store.root) / version_key(MODEL, 1)).read_text())
    assert record["created_at"].endswith("Z") and record["code_version"] == "git:test"
    assert record["gate"]["passed"] is True and record["gate"]["thresholds"]["min_val_accuracy"] == 0.92


def test_best_and_compare(client):
    client.register(MODEL, **register_kwargs("job-a", test_acc=0.93, fpr=0.02))
    client.register(MODEL, **register_kwargs("job-b", test_acc=0.96, fpr=0.025))
    client.register(MODEL, **register_kwargs("job-c", val_acc=0.5, test_acc=0.99))  # rejected
    assert client.best(MODEL).version == 2  # rejected v3 is ignored although its accuracy is higher
    assert client.best(MODEL, "test.accuracy", status=None).version == 3
    assert client.best(MODEL, "validation.fpr").version == 1  # fpr is minimised
    assert client.best(MODEL, "test.no_such_metric") is None
    diff = client.compare(MODEL, 1, 2)
    assert diff["metrics"]["test.accuracy"]["delta"] == pytest.approx(0.03)
    assert diff["metrics"]["validation.fpr"]["v1"] == 0.02
    assert diff["hyperparameters_changed"] == {}
    assert diff["data_hash_changed"] is False


def test_idempotent_by_job_name(client):
    first = client.register(MODEL, **register_kwargs("job-a"))
    again = client.register(MODEL, **register_kwargs("job-a", tag=99))
    assert again == first
    assert client.store.version_numbers(MODEL) == [1]
    assert len(client.list_events("version_created")) == 1


def test_records_are_immutable(client):
    client.register(MODEL, **register_kwargs("job-a"))
    path = Path(client.store.root) / version_key(MODEL, 1)
    before = path.read_bytes()
    with pytest.raises(RecordExists, match="immutable"):
        client.store.create(version_key(MODEL, 1), b"{}")
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # temp files cleaned up


def test_aliases_promote_and_deploy(client):
    for job in ("job-a", "job-b"):
        client.register(MODEL, **register_kwargs(job))
    assert client.get_alias(MODEL, "champion") is None
    moved = client.promote(MODEL, 1, expected_version=0)
    assert (moved.version, moved.revision, moved.previous_version) == (1, 1, None)
    with pytest.raises(AliasConflict, match="points at version 1, not the expected 2"):
        client.promote(MODEL, 2, expected_version=2)
    client.promote(MODEL, 2, expected_version=1)
    assert client.get_alias(MODEL, "champion").version == 2

    client.mark_deployed(MODEL, 1, target="endpoint-a")
    deployed = client.mark_deployed(MODEL, 2, target="endpoint-a")
    assert deployed.previous_version == 1  # the previous deployment is cleared: the alias moved
    assert client.get_alias(MODEL, "deployed").version == 2
    events = client.list_events("deployment")
    assert [(e.payload["version"], e.payload["previous_version"]) for e in events] == [(1, None), (2, 1)]
    assert {a: r.version for a, r in client.list_aliases(MODEL).items()} == {"champion": 2, "deployed": 2}


def test_rejected_versions_cannot_be_aliased(client):
    rejected = client.register(MODEL, **register_kwargs("job-bad", val_acc=0.5))
    assert rejected.status == "rejected"
    with pytest.raises(RegistryError, match=r"cannot point alias 'champion' .* version 1: it was rejected"):
        client.promote(MODEL, 1)
    with pytest.raises(RegistryError, match="rejected"):
        client.mark_deployed(MODEL, 1)
    assert client.get_alias(MODEL, "champion") is None


def test_gate_history_includes_rejections(client):
    client.register(MODEL, **register_kwargs("job-a"))
    client.register(MODEL, **register_kwargs("job-b", fpr=0.2))
    history = client.gate_history(MODEL)
    assert [(h["version"], h["status"], h["passed"]) for h in history] == [(1, "registered", True),
                                                                           (2, "rejected", False)]
    assert any("false-positive rate" in r for r in history[1]["reasons"])


def test_events_sorted_and_filtered(client):
    ids = [client.append_event("drift", {"i": i}) for i in range(3)]
    client.append_event("feedback", {"n": 1})
    assert [e.event_id for e in client.list_events("drift")] == ids
    assert [e.payload["i"] for e in client.list_events("drift")] == [0, 1, 2]
    assert len(client.list_events()) == 4
    assert len(list((Path(client.store.root) / "events").glob("*.json"))) == 4  # one object per event
    with pytest.raises(RegistryError, match="invalid event kind"):
        client.append_event("Bad Kind", {})
    with pytest.raises(RegistryError, match="not JSON-serializable"):
        client.append_event("drift", {"x": object()})


def test_validation_errors_are_clear(client):
    with pytest.raises(RegistryError, match="invalid model name"):
        client.register("bad/name", **register_kwargs("job-a"))
    kwargs = register_kwargs("job-a")
    with pytest.raises(RegistryError, match="artifact_sha256"):
        client.register(MODEL, **{**kwargs, "artifact_sha256": "abc"})
    failed = register_kwargs("job-a", val_acc=0.5)
    with pytest.raises(RegistryError, match="gate failed .*validation accuracy.*status='rejected'"):
        client.register(MODEL, **{**failed, "status": "registered"})
    with pytest.raises(RegistryError, match="NaN"):
        client.register(MODEL, **{**kwargs, "metrics": {"validation": {"accuracy": float("nan")}}})
    with pytest.raises(VersionNotFound, match=rf"'{MODEL}' has no version 7 in registry file://"):
        client.get_version(MODEL, 7)
    assert client.store.version_numbers(MODEL) == []  # nothing was written by the failures


def test_corrupt_record_names_the_file(client):
    client.register(MODEL, **register_kwargs("job-a"))
    path = Path(client.store.root) / version_key(MODEL, 1)
    os.chmod(path, 0o644)
    path.write_text('{"model_name": "taint-gnn"}')
    with pytest.raises(RegistryError, match=r"000001\.json: field 'version' is missing"):
        client.get_version(MODEL, 1)


def test_store_for_uri(tmp_path):
    assert isinstance(store_for_uri(str(tmp_path)), LocalStore)
    assert store_for_uri(tmp_path.as_uri()).root == tmp_path
    with pytest.raises(RegistryError, match="unsupported scheme 'gs'"):
        store_for_uri("gs://bucket/x")


def test_provenance_helpers(tmp_path, monkeypatch):
    blob = tmp_path / "model.tar.gz"
    blob.write_bytes(os.urandom(3 << 20))
    assert file_sha256(blob) == hashlib.sha256(blob.read_bytes()).hexdigest()
    code_version.cache_clear()
    monkeypatch.setenv("STREAMGUARD_CODE_VERSION", "release-7")
    assert code_version() == "release-7"
    code_version.cache_clear()
    monkeypatch.delenv("STREAMGUARD_CODE_VERSION")
    assert code_version().startswith(("git:", "pkg:"))
    code_version.cache_clear()


def test_registry_import_stays_light():
    code = ("import sys, streamguard.registry, streamguard.registry.cli, streamguard.gate, streamguard.storage;"
            "heavy = [m for m in ('boto3', 'botocore', 's3fs', 'torch', 'fsspec') if m in sys.modules];"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---- partial failures and recovery ---------------------------------------------------------------
def _claim(store, job: str, state: str = "pending", claimed_at: str | None = None, rid: str = "r" * 32) -> None:
    from streamguard.registry.records import utc_now

    store.create(job_key(MODEL, job), dumps({
        "model_name": MODEL, "training_job_name": job, "state": state,
        "registration_id": rid, "claimed_at": claimed_at or utc_now(),
    }))


def test_recovers_claim_whose_record_was_written(client):
    """The claimer died after writing its version but before completing the pointer."""
    from streamguard.registry.records import ModelVersion, utc_now

    store = client.store
    _claim(store, "job-a", rid="a" * 32)
    kwargs = register_kwargs("job-a")
    record = ModelVersion(model_name=MODEL, version=1, created_at=utc_now(), registration_id="a" * 32,
                          **{k: (v.to_dict() if k == "gate" else v) for k, v in kwargs.items()})
    store.create(version_key(MODEL, 1), dumps(record.to_dict()))
    again = client.register(MODEL, **kwargs)
    assert again.version == 1 and store.version_numbers(MODEL) == [1]
    assert json.loads(store.read(job_key(MODEL, "job-a")).data)["state"] == "complete"


def test_takes_over_abandoned_and_stale_claims(client):
    store = client.store
    _claim(store, "job-a", state="abandoned")
    _claim(store, "job-b", claimed_at="2000-01-01T00:00:00.000000Z")
    assert client.register(MODEL, **register_kwargs("job-a")).version == 1
    assert client.register(MODEL, **register_kwargs("job-b")).version == 2
    pointer = json.loads(store.read(job_key(MODEL, "job-b")).data)
    assert pointer["state"] == "complete" and pointer["taken_over_from"] == "r" * 32


def test_fresh_claim_of_another_caller_times_out_clearly(client):
    client.store.claim_wait = 0.2
    _claim(client.store, "job-a")
    with pytest.raises(RegistryError, match="'job-a' of model 'taint-gnn' is being registered by another caller"):
        client.register(MODEL, **register_kwargs("job-a"))
    assert client.store.version_numbers(MODEL) == []


def test_failed_write_releases_the_claim(client, monkeypatch):
    store = client.store

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "_create_next_version", broken)
    with pytest.raises(OSError, match="disk full"):
        client.register(MODEL, **register_kwargs("job-a"))
    assert json.loads(store.read(job_key(MODEL, "job-a")).data)["state"] == "abandoned"
    monkeypatch.undo()
    assert client.register(MODEL, **register_kwargs("job-a")).version == 1  # no wait for staleness


# ---- under load ---------------------------------------------------------------------------------
def test_concurrent_registrations_threads(client):
    TIMINGS["local 50 threads register"] = run_concurrent_registrations(client, 50)
    print(f"\nlocal: 50 concurrent registrations (threads) took {TIMINGS['local 50 threads register']:.2f}s")


def _process_worker(uri: str, start: int, count: int, barrier, queue, same_job: bool) -> None:
    """Child process: register ``count`` models from ``count`` threads once all processes are ready."""
    client = RegistryClient(uri)
    barrier.wait()
    jobs = [("job-same" if same_job else f"job-{start + k}", start + k) for k in range(count)]
    results = run_threads(count, lambda k: client.register(MODEL, **register_kwargs(jobs[k][0], tag=jobs[k][1])))
    queue.put([r.version if not isinstance(r, Exception) else repr(r) for r in results])


def _run_processes(uri: str, processes: int, threads: int, same_job: bool) -> tuple[list, float]:
    ctx = multiprocessing.get_context("spawn")  # fork with live threads is unsafe
    barrier, queue = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(uri, p * threads, threads, barrier, queue, same_job))
             for p in range(processes)]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)  # all children imported and ready: start the clock
    start = time.perf_counter()
    results = [v for _ in procs for v in queue.get(timeout=300)]
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return results, elapsed


def test_concurrent_registrations_processes(client):
    """10 processes x 5 threads = 50 concurrent registrations through the file system."""
    results, elapsed = _run_processes(client.uri, 10, 5, same_job=False)
    assert sorted(results) == list(range(1, 51)), results
    check_distinct_versions(client, MODEL, 50)
    TIMINGS["local 50 process+thread register"] = elapsed
    print(f"\nlocal: 50 concurrent registrations (10 processes x 5 threads) took {elapsed:.2f}s")


def test_same_job_concurrently_threads(client):
    elapsed = run_same_job_registrations(client, 10)
    print(f"\nlocal: 10 concurrent registrations of one job (threads) took {elapsed:.2f}s")


def test_same_job_concurrently_processes(client):
    results, elapsed = _run_processes(client.uri, 5, 2, same_job=True)
    assert results == [1] * 10, results
    assert client.store.version_numbers(MODEL) == [1]
    print(f"\nlocal: 10 concurrent registrations of one job (5 processes x 2 threads) took {elapsed:.2f}s")


def test_concurrent_alias_moves(client):
    elapsed, wins = run_concurrent_alias_moves(client, 20)
    print(f"\nlocal: 20 threads x 3 champion moves took {elapsed:.2f}s ({wins} won, {60 - wins} AliasConflict)")


# ---- command line -------------------------------------------------------------------------------
def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from streamguard.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli(client, capsys):
    uri = client.uri
    client.register(MODEL, **register_kwargs("job-a", test_acc=0.93))
    client.register(MODEL, **register_kwargs("job-b", test_acc=0.96))
    client.register(MODEL, **register_kwargs("job-c", val_acc=0.5))
    client.promote(MODEL, 1)

    code, out, _ = _cli(capsys, "registry", "list", "--uri", uri)
    assert code == 0
    assert out.splitlines()[1].split("\t") == [MODEL, "3", "1", "3", "champion=1"]

    code, out, _ = _cli(capsys, "registry", "list", MODEL, "--uri", uri, "--json")
    rows = json.loads(out)
    assert [(r["version"], r["status"], r["aliases"]) for r in rows] == [
        (1, "registered", ["champion"]), (2, "registered", []), (3, "rejected", [])]

    code, out, _ = _cli(capsys, "registry", "show", MODEL, "champion", "--uri", uri, "--json")
    assert code == 0 and json.loads(out)["version"] == 1
    code, out, _ = _cli(capsys, "registry", "show", MODEL, "v2", "--uri", uri)
    assert code == 0 and "training_job_name\tjob-b" in out

    code, out, _ = _cli(capsys, "registry", "best", MODEL, "--uri", uri)
    assert code == 0 and out.startswith(f"{MODEL} version 2: test.accuracy = 0.9600")

    code, out, _ = _cli(capsys, "registry", "compare", MODEL, "1", "2", "--uri", uri, "--json")
    assert json.loads(out)["metrics"]["test.accuracy"]["delta"] == pytest.approx(0.03)
    code, out, _ = _cli(capsys, "registry", "compare", MODEL, "champion", "2", "--uri", uri)
    assert code == 0 and "test.accuracy\t0.9300\t0.9600\t+0.0300" in out

    code, out, _ = _cli(capsys, "registry", "promote", MODEL, "2", "--expected-version", "1", "--uri", uri)
    assert code == 0 and "champion is now version 2 (was version 1; revision 2)" in out
    code, _, err = _cli(capsys, "registry", "promote", MODEL, "1", "--expected-version", "1", "--uri", uri)
    assert code == 2 and "not the expected 1" in err and "hint: check" in err
    code, _, err = _cli(capsys, "registry", "promote", MODEL, "3", "--uri", uri)
    assert code == 2 and "rejected by the gate" in err
    code, _, err = _cli(capsys, "registry", "show", MODEL, "9", "--uri", uri)
    assert code == 2 and "has no version 9" in err
    code, _, err = _cli(capsys, "registry", "list", "no-model", "--uri", uri)
    assert code == 2 and "'no-model' has no versions" in err


def test_cli_uri_from_environment(client, capsys, monkeypatch):
    client.register(MODEL, **register_kwargs("job-a"))
    monkeypatch.setenv("STREAMGUARD_REGISTRY_URI", client.uri)
    code, out, _ = _cli(capsys, "registry", "list", "--json")
    assert code == 0 and json.loads(out)[0]["model"] == MODEL
    with pytest.raises(SystemExit):
        _cli(capsys, "registry", "--help")
    assert "examples:" in capsys.readouterr().out
