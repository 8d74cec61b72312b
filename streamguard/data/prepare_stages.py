"""`streamguard prepare` in stages: plan (global decisions, then shards), graphs per shard, finish.

The same preparation cut where its costly part (the graphs) can run in parallel on other machines:
  prepare_plan      read, validate, deduplicate, split, augment (decisions that need every record),
                    then write the records in output order as `n` shards of (code, language);
  build_graph_shard one shard's graphs (any number at once, anywhere: a mapped Airflow task,
                    an instance of a SageMaker Processing job with ShardedByS3Key input);
  prepare_finish    attach the graphs and write the channels, quarantine and report.
The output is byte for byte what `prepare` writes for the same input and seed, except the graph
timing fields of report.json (`graphs.workers/seconds/cpu_seconds/speedup`, and `graphs.shards`).
Every stage reads and writes plain files in one work directory (copied to and from the artifact
store by the caller).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict

from streamguard.data.prepare import _finish, _Front, _front, _setup
from streamguard.data.prepare_graphs import _attach_graphs
from streamguard.data.prepare_output import _write_lines
from streamguard.data.prepare_report import PrepareError, PrepareReport
from streamguard.data.quarantine import QuarantineEntry, Spool
from streamguard.data.split import SPLITS

SHARD_RECORDS = 2000  # records per shard when the number of shards is left to `prepare_plan`
MAX_SHARDS = 64
_STATE, _READ_QUARANTINE, _RECORDS = "state.json", "quarantine-read.jsonl", "records.jsonl"
_SHARDS, _GRAPHS = "shards", "graphs"  # sub-directories of the work directory: only shard / graph files


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.jsonl"


def graphs_name(shard: str) -> str:
    """The graphs file of a shard file name (``shard-00003.jsonl`` -> ``graphs-00003.jsonl``)."""
    from streamguard.core.graph_shards import ShardError, graphs_name as name

    try:
        return name(shard)
    except ShardError as exc:
        raise PrepareError(str(exc)) from exc


def auto_shards(n_records: int) -> int:
    return max(1, min(MAX_SHARDS, -(-n_records // SHARD_RECORDS)))


def prepare_plan(inputs: Sequence[str], out: str, work: str, *, shards: int | None = None, seed: int = 13,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1), max_code_bytes: int = 200_000,
                 auto_counterfactuals: bool = True, allowed_languages: Iterable[str] | None = None,
                 progress: Callable[[str], None] | None = None, keep_raw: bool = False,
                 max_line_bytes: int | None = None, max_gzip_ratio: int | None = None, transforms: int = 0) -> dict:
    """Stage 1 of `prepare` (same options; graphs always built): the global decisions, then shards.

    Args:
        out: where `prepare_finish` will write (recorded in the report; nothing is written there
            unless no usable record remains, when the quarantine and report are, as `prepare` does).
        work: a local directory for the state, ``shards/`` and (stage 2) ``graphs/``.
        shards: how many shards (None or 0: one per `SHARD_RECORDS` records, at most `MAX_SHARDS`);
            never more than there are records.

    Returns:
        ``{"work", "shards": [shard file paths], "records": n}``.

    Raises:
        PrepareError: as `prepare`.
    """
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    ratios, allowed, files, report = _setup(inputs, out, seed, ratios, max_code_bytes, allowed_languages)
    if shards is not None and not 0 <= int(shards) <= MAX_SHARDS:
        raise PrepareError(f"shards must be between 0 (automatic) and {MAX_SHARDS}, got {shards}")
    say(f"reading {len(files)} file(s)")
    spool = Spool()
    try:
        front = _front(files, out, report, spool, seed=seed, ratios=ratios, max_code_bytes=max_code_bytes,
                       auto_counterfactuals=auto_counterfactuals, allowed=allowed, say=say, started=started,
                       transforms=transforms, keep_raw=keep_raw, limits={"max_line_bytes": max_line_bytes, "max_gzip_ratio": max_gzip_ratio})
        records = [(name, rec) for name in SPLITS for rec in front.splits[name]]
        n = max(1, min(int(shards or 0) or auto_shards(len(records)), len(records)))
        os.makedirs(work, exist_ok=True)
        _write_lines(os.path.join(work, _READ_QUARANTINE), spool.raw_lines())
        _write_lines(os.path.join(work, _RECORDS), ({"split": name, "record": rec} for name, rec in records))
        paths = []
        size = -(-len(records) // n)
        os.makedirs(os.path.join(work, _SHARDS), exist_ok=True)
        for index in range(n):
            path = os.path.join(work, _SHARDS, shard_name(index))
            _write_lines(path, ([rec["code"], rec["language"]] for _name, rec in records[index * size:(index + 1) * size]))
            paths.append(path)
        state = {"files": front.files, "out": out, "keep_raw": keep_raw, "report": asdict(report),
                 "later": [asdict(e) for e in front.later], "duplicates": front.duplicates,
                 "where": front.where, "shards": [os.path.basename(p) for p in paths],
                 "quarantine_rows": len(spool)}
        _write_lines(os.path.join(work, _STATE), [state])
        say(f"planned {len(records)} record(s) in {n} shard(s) under {work}")
        return {"work": work, "shards": paths, "records": len(records)}
    finally:
        spool.close()


def build_graph_shard(shard: str, graphs: str | None = None) -> dict:
    """Stage 2: the graphs of one shard file, in order, one JSON line each (``{"error"}`` where one fails),
    written to ``graphs`` (default ``<work>/graphs/graphs-NNNNN.jsonl``) whole or not at all.

    Returns ``{"graphs": path, "records": n, "cpu_seconds", "seconds"}``.
    """
    from streamguard.core.graph_shards import ShardError, build_shard

    target = graphs or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(shard))), _GRAPHS,
                                    graphs_name(shard))
    try:
        return build_shard(shard, target)
    except ShardError as exc:
        raise PrepareError(str(exc)) from exc


def _read_json_lines(path: str) -> Iterable[dict]:
    with open(path, "rb") as fh:
        for raw in fh:
            yield json.loads(raw.decode("utf-8", "surrogatepass"))


def prepare_finish(work: str, shard_results: Sequence[dict] | None = None,
                   progress: Callable[[str], None] | None = None) -> PrepareReport:
    """Stage 3: attach every shard's graphs and write what `prepare` writes to the planned ``out``.

    Args:
        work: the directory `prepare_plan` wrote, with each shard's ``graphs/graphs-NNNNN.jsonl``.
        shard_results: what `build_graph_shard` returned for each shard (its timing goes to the
            report); None reports no timing.

    Raises:
        PrepareError: a shard's graphs are missing or do not match its records.
    """
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    (state,) = list(_read_json_lines(os.path.join(work, _STATE)))
    report = PrepareReport(**state["report"])
    spool = Spool()
    try:
        for raw in open(os.path.join(work, _READ_QUARANTINE), "rb"):
            spool.append_raw(raw)
        if len(spool) != state["quarantine_rows"]:
            raise PrepareError(f"{work}/{_READ_QUARANTINE}: {len(spool)} rows, the plan wrote {state['quarantine_rows']}")
        splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
        records = []
        for row in _read_json_lines(os.path.join(work, _RECORDS)):
            splits[row["split"]].append(row["record"])
            records.append(row["record"])
        graphs: list[dict] = []
        for shard in state["shards"]:
            path = os.path.join(work, _GRAPHS, graphs_name(shard))
            if not os.path.exists(path):
                raise PrepareError(f"the graphs of {shard} are missing ({path})",
                                   "run build_graph_shard on every shard before prepare_finish")
            graphs += _read_json_lines(path)
        if len(graphs) != len(records):
            raise PrepareError(f"{len(graphs)} graph(s) for {len(records)} record(s) in {work}")
        results = list(shard_results or [])
        timing = {"workers": len(state["shards"]), "shards": len(state["shards"]),
                  "seconds": max((r.get("seconds", 0.0) for r in results), default=0.0),
                  "cpu_seconds": sum(r.get("cpu_seconds", 0.0) for r in results)}
        later = [QuarantineEntry(**e) for e in state["later"]]
        where = {k: tuple(v) for k, v in state["where"].items()}
        report.graphs = _attach_graphs(splits, records, graphs, later, where, timing, say)
        front = _Front(state["files"], state["out"], report, spool, later, state["duplicates"], splits, where,
                       state["keep_raw"], started)
        return _finish(front, say)
    finally:
        spool.close()


def ensure_channel_store(channel: str) -> bool:
    """Give a local prepared channel (``<dir>/data.jsonl`` with graphs) a current graph store.

    Nothing happens when its store already describes ``data.jsonl`` with the shipped featurizer;
    otherwise the store is rebuilt from the JSON lines, one line at a time (a channel prepared by
    an older version, or edited). Returns True when a store was written.
    """
    import json as _json
    from pathlib import Path

    from streamguard.core import graph_store as gstore
    from streamguard.core import graphs as g

    root = Path(channel)
    data = root / "data.jsonl"
    sources = [{"name": "data.jsonl", "bytes": data.stat().st_size}]
    try:
        store = gstore.GraphStore(root / gstore.STORE_DIRNAME)
        if (store.version == g.FEATURIZER_VERSION and store.index.get("subtokens") == g.SUBTOKENS
                and store.index.get("sources") == sources):
            return False
    except gstore.StoreError:
        pass
    gstore.remove_store(root / gstore.STORE_DIRNAME)
    writer = gstore.StoreWriter(root / gstore.STORE_DIRNAME, g.FEATURIZER_VERSION, subtokens=g.SUBTOKENS,
                                feat_dim=g.NODE_FEAT_DIM)
    lines = 0
    with open(data, encoding="utf-8") as fh:
        for lines, line in enumerate(fh, 1):
            rec = _json.loads(line)
            graph = rec.get("graph")
            if not isinstance(graph, dict) or graph.get("v") != g.FEATURIZER_VERSION:
                graph = g.build_graph(rec["code"], rec["language"])
            arrays = gstore.graph_arrays(graph, g)
            writer.add(arrays, {"i": lines - 1, "where": f"data.jsonl:{lines}", "id": rec["id"],
                                "label": rec.get("label"), "language": rec.get("language"), "cwe": rec.get("cwe"),
                                "nodes": arrays.num_nodes, "code_length": len(rec["code"])})
    writer.close(lines=lines, sources=sources)
    return True

