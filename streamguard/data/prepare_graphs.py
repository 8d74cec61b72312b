"""Program graphs for prepared records: built in a process pool for large inputs, attached, failures quarantined."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable

from streamguard.data.graph_worker import gc_paused as _gc_paused
from streamguard.data.graph_worker import graph_chunk as _graph_chunk
from streamguard.data.graph_worker import graph_or_error as _graph_or_error
from streamguard.data.prepare_output import _output_record
from streamguard.data.prepare_report import PrepareError
from streamguard.data.quarantine import QuarantineEntry
from streamguard.data.split import SPLITS

# Below this many records the graphs are built in this process: starting workers costs more.
_POOL_MIN_RECORDS = 400
_CHUNK = 64


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _add_graphs(splits: dict[str, list[dict]], quarantine: list[QuarantineEntry],
                where: dict[str, tuple[str, int]], workers: int | None = None,
                say: Callable[[str], None] = lambda _msg: None) -> dict:
    """Attach a graph to every record: in a process pool over the available cores for large inputs.

    A record whose graph cannot be built (an exception in the featurizer) is quarantined with the
    reason and left out of its split; the others are unaffected.

    Graphs are deterministic and come back in input order, so the output does not depend on the
    number of workers. The report carries the wall time, the summed CPU time of the builds and
    their ratio ``speedup``: the speed-up over building on one fully available core (on a machine
    busy with other work it is lower than the number of workers; `benchmarks/bench_prepare_graphs.py`
    times one worker against several on the same records).
    """
    # Imported here: the featurizer is heavy-ish (tree-sitter) and only needed with graphs.
    try:
        import streamguard.core.graphs  # noqa: F401
    except ImportError as exc:
        raise PrepareError(f"the graph featurizer cannot be imported ({exc})",
                           "prepare without graphs (--no-graphs / with_graphs=False)") from exc

    records = [rec for name in SPLITS for rec in splits[name]]
    say(f"building graphs for {len(records)} record(s)")
    graphs, cpu_total, wall, n_workers = _build_graphs(records, workers, say)
    return _attach_graphs(splits, records, graphs, quarantine, where,
                          {"workers": n_workers, "seconds": wall, "cpu_seconds": cpu_total}, say)


def _build_graphs(records: list[dict], workers: int | None,
                  say: Callable[[str], None]) -> tuple[list[dict], float, float, int]:
    """(graph or ``{"error"}`` per record in order, CPU seconds, wall seconds, workers used)."""
    from streamguard.core.graphs import build_graph

    n_workers = _default_workers() if workers is None else max(1, int(workers))
    if len(records) < _POOL_MIN_RECORDS:
        n_workers = 1
    wall0, cpu_total = time.monotonic(), 0.0
    graphs: list[dict] | None = None
    if n_workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        chunks = [[(r["code"], r["language"]) for r in records[i:i + _CHUNK]]
                  for i in range(0, len(records), _CHUNK)]
        try:
            # spawn: workers never inherit the threads or locks of the calling process (Airflow tasks).
            with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool, _gc_paused():
                graphs = []
                for part, cpu in pool.map(_graph_chunk, chunks):
                    graphs += part
                    cpu_total += cpu
        except (OSError, RuntimeError, ImportError) as exc:  # BrokenProcessPool is a RuntimeError
            say(f"graph workers unavailable ({type(exc).__name__}: {exc}); building graphs in this process")
            graphs, cpu_total, n_workers = None, 0.0, 1
    if graphs is None:
        t0 = time.process_time()
        with _gc_paused():
            graphs = [_graph_or_error(build_graph, r["code"], r["language"]) for r in records]
        cpu_total = time.process_time() - t0
    return graphs, cpu_total, time.monotonic() - wall0, n_workers


def _attach_graphs(splits: dict[str, list[dict]], records: list[dict], graphs: list[dict],
                   quarantine: list[QuarantineEntry], where: dict[str, tuple[str, int]], timing: dict,
                   say: Callable[[str], None]) -> dict:
    """Attach each graph to its record; quarantine the records whose graph failed; the report's graph counts.

    ``timing``: ``workers``, ``seconds`` (wall) and ``cpu_seconds`` of the builds, reported as measured.
    """
    from streamguard.core.graphs import FEATURIZER_VERSION

    n_workers, wall, cpu_total = timing["workers"], timing["seconds"], timing["cpu_seconds"]
    built = failures = errors = 0
    failed_by_language: Counter = Counter()
    truncated: Counter = Counter()  # graphs cut, by reason: depth (deep nesting), budget, size (max_nodes)
    broken: set[int] = set()
    for rec, graph in zip(records, graphs):
        if "error" in graph:
            errors += 1
            broken.add(id(rec))
            file, line = where.get(rec["id"]) or where.get(rec.get("parent_id") or rec.get("augmented_from") or "", ("", 0))
            quarantine.append(QuarantineEntry(
                file, line, "graph_failed", f"graph of record {rec['id']!r} could not be built: {graph['error']}",
                record=_output_record(rec)))
            continue
        rec["graph"] = graph
        built += 1
        if not graph.get("parse_ok", False):
            failures += 1
            failed_by_language[rec["language"]] += 1
        for reason in graph.get("truncated") or ():
            truncated[reason] += 1
    if broken:
        for name in SPLITS:
            splits[name][:] = [rec for rec in splits[name] if id(rec) not in broken]
    speedup = cpu_total / wall if wall > 0 else 1.0
    if built:
        say(f"graphs: {built} in {wall:.1f} s with {n_workers} worker(s), {built / max(wall, 1e-9):.0f} functions/s; "
            f"{cpu_total:.1f} CPU-s of building, so {speedup:.2f}x the rate of one fully available core")
    out = {"featurizer_version": FEATURIZER_VERSION, "built": built, "parse_failures": failures,
           "parse_failures_by_language": dict(sorted(failed_by_language.items())),
           "truncated": dict(sorted(truncated.items())), "errors": errors,
           "workers": n_workers, "seconds": round(wall, 3), "cpu_seconds": round(cpu_total, 3),
           "speedup": round(speedup, 2)}
    if "shards" in timing:
        out["shards"] = timing["shards"]
    return out

