"""Registry test helpers and concurrency scenarios, shared by the local-store and S3 registry tests.

``register_kwargs`` builds `register` arguments with a real gate decision; the ``run_*`` scenarios
drive one client from many threads and check that every record is whole and every version distinct.
Metrics here are small synthetic inputs to exercise the registry.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

from streamguard.gate import evaluate_gate
from streamguard.registry import AliasConflict, RegistryClient
from streamguard.registry.store import job_key, version_key

MODEL = "taint-gnn"


def metrics_for(val_acc: float, test_acc: float, fpr: float = 0.01) -> dict:
    return {
        "validation": {"n": 200, "accuracy": val_acc, "fpr": fpr, "f1": val_acc - 0.01},
        "test": {"n": 200, "accuracy": test_acc, "fpr": fpr, "f1": test_acc - 0.01},
    }


def register_kwargs(job: str, *, val_acc: float = 0.95, test_acc: float = 0.94, fpr: float = 0.01,
                    model_bytes: int = 1000, tag: int = 0) -> dict:
    """Arguments for `register` with a real gate decision computed from the given metrics."""
    metrics = metrics_for(val_acc, test_acc, fpr)
    gate = evaluate_gate("gnn", metrics, model_bytes)
    return dict(
        model_type="gnn",
        artifact_uri=f"file:///artifacts/{job}/model.tar.gz",
        artifact_sha256=hashlib.sha256(job.encode()).hexdigest(),
        metrics=metrics,
        training_job_name=job,
        backend="local",
        data_hash=hashlib.sha256(b"data").hexdigest(),
        code_version="git:test",
        hyperparameters={"epochs": 2, "tag": tag},
        gate=gate,
        status="registered" if gate.passed else "rejected",
        extra={"tag": tag, "payload": "x" * 2000},  # big enough that a torn write would show
    )


def run_threads(n: int, target) -> list:
    """Run ``target(i)`` in ``n`` threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def body(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - collected and asserted by the caller
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a registration thread hung"
    return results


def check_distinct_versions(client: RegistryClient, model: str, n: int) -> None:
    """n registrations (tags 0..n-1) -> versions 1..n, each record whole and matching its payload."""
    store = client.store
    assert store.version_numbers(model) == list(range(1, n + 1))
    seen = set()
    for number in range(1, n + 1):
        raw = store.read(version_key(model, number)).data
        record = json.loads(raw)  # a torn record would fail to parse here
        tag = record["extra"]["tag"]
        expected = register_kwargs(f"job-{tag}", tag=tag)
        assert record["version"] == number
        assert record["training_job_name"] == f"job-{tag}"
        assert record["artifact_sha256"] == expected["artifact_sha256"]
        assert record["hyperparameters"] == {"epochs": 2, "tag": tag}
        assert record["extra"]["payload"] == "x" * 2000
        pointer = json.loads(store.read(job_key(model, f"job-{tag}")).data)
        assert pointer["state"] == "complete" and pointer["version"] == number
        seen.add(tag)
    assert seen == set(range(n))
    created = [e for e in client.list_events("version_created") if e.payload["model_name"] == model]
    assert sorted(e.payload["version"] for e in created) == list(range(1, n + 1))


def run_concurrent_registrations(client: RegistryClient, n: int = 50) -> float:
    start = time.perf_counter()
    results = run_threads(n, lambda i: client.register(MODEL, **register_kwargs(f"job-{i}", tag=i)))
    elapsed = time.perf_counter() - start
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    assert sorted(r.version for r in results) == list(range(1, n + 1))
    check_distinct_versions(client, MODEL, n)
    return elapsed


def run_same_job_registrations(client: RegistryClient, n: int = 10) -> float:
    start = time.perf_counter()
    results = run_threads(n, lambda i: client.register(MODEL, **register_kwargs("job-same", tag=i)))
    elapsed = time.perf_counter() - start
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    assert {r.version for r in results} == {1}
    assert client.store.version_numbers(MODEL) == [1]
    assert len(client.list_events("version_created")) == 1
    return elapsed


def run_concurrent_alias_moves(client: RegistryClient, n: int = 20, versions: int = 5) -> tuple[float, int]:
    """n threads each read the champion and move it with CAS, 3 times; every attempt is accounted for."""
    for i in range(versions):
        client.register(MODEL, **register_kwargs(f"job-{i}", tag=i))
    client.promote(MODEL, 1, expected_version=0)

    def move(i: int) -> list:
        """Three read-then-swap attempts; each attempt's outcome (a record or the error) is kept."""
        outcomes = []
        for attempt in range(3):
            current = client.alias_record(MODEL, "champion")
            target = (i + attempt) % versions + 1
            try:
                outcomes.append(client.promote(MODEL, target, expected_version=current.version))
            except Exception as exc:  # noqa: BLE001 - every outcome is checked below
                outcomes.append(exc)
        return outcomes

    start = time.perf_counter()
    results = [o for outcomes in run_threads(n, move) for o in outcomes]
    elapsed = time.perf_counter() - start
    wins = [r for r in results if not isinstance(r, Exception)]
    conflicts = [r for r in results if isinstance(r, AliasConflict)]
    assert len(wins) + len(conflicts) == 3 * n, [r for r in results if isinstance(r, Exception)
                                                 and not isinstance(r, AliasConflict)]
    assert wins, "at least one compare-and-swap must win"
    final = client.alias_record(MODEL, "champion")
    # Revisions: 1 for the initial promote, then one per win, no gaps, no duplicates.
    assert sorted(w.revision for w in wins) == list(range(2, 2 + len(wins)))
    assert final.revision == 1 + len(wins)
    assert final.version == max(wins, key=lambda w: w.revision).version
    assert client.get_alias(MODEL, "champion").version == final.version  # points at a real version
    # The history chains: each move's previous_version is what the move before it set.
    moves = sorted([e.payload for e in client.list_events("alias_moved")], key=lambda p: p["revision"])
    assert [m["revision"] for m in moves] == list(range(1, 2 + len(wins)))
    for before, after in zip(moves, moves[1:]):
        assert after["previous_version"] == before["version"]

    # Unconditional moves never lose one: all n succeed with distinct consecutive revisions.
    results = run_threads(n, lambda i: client.set_alias(MODEL, "staging", i % versions + 1))
    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(r.revision for r in results) == list(range(1, n + 1))
    assert client.alias_record(MODEL, "staging").revision == n
    return elapsed, len(wins)
