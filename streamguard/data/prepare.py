"""`streamguard prepare`: raw JSON lines -> train/validation/test channels, quarantine and a report.

Steps: read every line (bad lines quarantined) -> normalise records (bad records quarantined)
-> remove duplicates (conflicting copies quarantined) -> group-aware stratified split ->
counterfactual augmentation within each split -> program graphs -> write.

Outputs under ``out`` (a local path or URI):
``{train,validation,test}/data.jsonl``, ``quarantine.jsonl`` (each rejected line or record with
file, line, reason and -- with ``keep_raw``, see ``streamguard.data.quarantine`` -- the raw
content), ``duplicates.jsonl`` (each removed copy with the id of
the kept one) and ``report.json``. The same inputs and seed give byte-identical files, whatever
the order of the input lines.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from streamguard.core.records import RecordError, normalize_language, normalize_record
from streamguard.data import io
from streamguard.data.augment import augment_splits
from streamguard.data.dedup import deduplicate
from streamguard.data.graph_worker import graph_chunk as _graph_chunk
from streamguard.data.graph_worker import gc_paused as _gc_paused
from streamguard.data.graph_worker import graph_or_error as _graph_or_error
from streamguard.data.quarantine import QuarantineEntry, Spool, from_line
from streamguard.data.sourced import Sourced
from streamguard.data.split import SPLITS, split_items, stable_hash, validate_ratios

# Field order of a prepared record (docs/architecture.md); extra provenance fields follow.
_RECORD_FIELDS = ("id", "code", "label", "language", "cwe", "group", "source", "origin")


class PrepareError(Exception):
    """Preparation cannot produce usable channels (unreadable input, nothing usable left...)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class PrepareReport:
    """What preparation read, kept, rejected, generated and wrote.

    ``splits`` maps each split to counts: ``total``, ``label_0``, ``label_1`` and per origin.
    ``data_hash`` is the sha256 over the three written split files. ``elapsed_s`` is not written
    to report.json (it would make reruns differ).
    """

    inputs: list[str]
    files: list[str]
    out: str
    seed: int
    ratios: list[float]
    lines_read: int = 0
    records_valid: int = 0
    kept: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantined_total: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    augmented: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    graphs: dict | None = None
    data_hash: str = ""
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("elapsed_s")
        return out


def prepare(inputs: Sequence[str], out: str, *, seed: int = 13,
            ratios: Sequence[float] = (0.8, 0.1, 0.1), max_code_bytes: int = 200_000,
            auto_counterfactuals: bool = True, with_graphs: bool = True,
            allowed_languages: Iterable[str] | None = None,
            progress: Callable[[str], None] | None = None, keep_raw: bool = False,
            max_line_bytes: int | None = None, max_gzip_ratio: int | None = None,
            graph_workers: int | None = None) -> PrepareReport:
    """Prepare training channels from JSON-lines inputs.

    Args:
        inputs: files, directories (searched recursively) or URIs (file://, s3://).
        out: output directory (local path or URI).
        seed: fixes the split (and so the augmentation and output order).
        ratios: (train, validation, test) fractions, summing to 1.
        max_code_bytes: records with larger ``code`` are quarantined.
        auto_counterfactuals: add automatic SQL twins (see ``streamguard.data.counterfactuals``).
        with_graphs: attach ``graph`` (``streamguard.core.graphs.build_graph``) to every record.
        allowed_languages: quarantine records in other languages (default: all supported).
        progress: called with one short line per stage.
        keep_raw: keep the raw text of lines that are not records in ``quarantine.jsonl`` (the
            command line, on the user's own files); False keeps their length and sha256 only.
        max_line_bytes: longer input lines are quarantined with their length, unread
            (None: ``streamguard.data.io.line_cap()``).
        max_gzip_ratio: refuse gzip inputs inflating more than this (0: no limit; None:
            ``streamguard.data.io.gzip_ratio_cap()``).

    Returns:
        The report (also written to ``out/report.json``).

    Raises:
        PrepareError: an input is unreadable, the options are invalid, or no usable record remains.
    """
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    ratios, allowed, files, report = _setup(inputs, out, seed, ratios, max_code_bytes, allowed_languages)
    say(f"reading {len(files)} file(s)")
    spool = Spool()  # read-time rejections, in (file, line) order; the later ones are few
    try:
        front = _front(files, out, report, spool, seed=seed, ratios=ratios, max_code_bytes=max_code_bytes,
                       auto_counterfactuals=auto_counterfactuals, allowed=allowed, say=say, started=started,
                       keep_raw=keep_raw, limits={"max_line_bytes": max_line_bytes, "max_gzip_ratio": max_gzip_ratio})
        if with_graphs:
            report.graphs = _add_graphs(front.splits, front.later, front.where, graph_workers, say)
        return _finish(front, say)
    finally:
        spool.close()


def _setup(inputs: Sequence[str], out: str, seed: int, ratios, max_code_bytes: int,
           allowed_languages: Iterable[str] | None) -> tuple[tuple, set[str] | None, list[str], PrepareReport]:
    """Checked options, the input files and an empty report (raises PrepareError)."""
    try:
        ratios = validate_ratios(ratios)
    except ValueError as exc:
        raise PrepareError(f"invalid split ratios: {exc}") from exc
    if max_code_bytes <= 0:
        raise PrepareError(f"max_code_bytes must be positive, got {max_code_bytes}")
    allowed = _allowed(allowed_languages)
    try:
        files = io.expand_inputs(list(inputs))
    except io.InputError as exc:
        raise PrepareError(f"unreadable input {exc}", "check the path or URI") from exc
    if not files:
        raise PrepareError("no inputs given", "pass at least one --input")
    return ratios, allowed, files, PrepareReport(inputs=list(inputs), files=files, out=out, seed=seed,
                                                 ratios=list(ratios))


@dataclass
class _Front:
    """Everything preparation decided before the graphs: the splits (augmented), what was rejected
    so far and where each record came from."""

    files: list[str]
    out: str
    report: PrepareReport
    spool: Spool
    later: list[QuarantineEntry]
    duplicates: list[dict]
    splits: dict[str, list[dict]]
    where: dict[str, tuple[str, int]]
    keep_raw: bool
    started: float


def _front(files: list[str], out: str, report: PrepareReport, spool: Spool, *, seed: int, ratios,
           max_code_bytes: int, auto_counterfactuals: bool, allowed: set[str] | None,
           say: Callable[[str], None], started: float, keep_raw: bool, limits: dict) -> _Front:
    """Read, validate, deduplicate, split and augment: the decisions that need every record at once."""
    items = _read_all(files, report, max_code_bytes, allowed, spool, keep_raw, limits)
    report.records_valid = len(items)
    report.languages = dict(sorted(Counter(i.record["language"] for i in items).items()))
    where = {it.id: (it.file, it.line) for it in items}

    say(f"removing duplicates among {len(items)} record(s)")
    dedup = deduplicate(items)
    later: list[QuarantineEntry] = list(dedup.conflicts)
    kept, id_clashes = _unique_ids(dedup.kept)
    later += id_clashes
    report.duplicates = {"exact": dedup.exact, "normalized": dedup.normalized}
    report.conflicts = dedup.conflict_sets
    report.kept = len(kept)

    def side_files(duplicates: list[dict]) -> None:
        _count_quarantine(report, spool, later)
        rows = _merged_quarantine(files, spool, later, keep_raw)
        _write_side_files(out, rows, duplicates, report, started)

    if not kept:
        side_files(dedup.duplicates)
        raise PrepareError(
            f"no usable records in {len(files)} input file(s): {report.quarantined_total} line(s) quarantined "
            f"({_reason_summary(report.quarantined)})",
            f"see {_join(out, 'quarantine.jsonl')} for each rejected line and why")

    say(f"splitting {len(kept)} record(s) (seed {seed})")
    splits = split_items([s.record for s in kept], ratios, seed,
                         group_of=lambda r: r["group"], label_of=lambda r: r["label"])
    for name in SPLITS:  # a seeded order that does not depend on input order
        splits[name].sort(key=lambda r: stable_hash(seed, r["id"]))

    say("adding counterfactuals")
    aug = augment_splits(splits, auto=auto_counterfactuals, max_code_bytes=max_code_bytes)
    report.augmented = aug.to_dict()
    for failure in aug.failures:
        file, line = where.get(failure["id"], ("", 0))
        later.append(QuarantineEntry(
            file, line, "auto_counterfactual_failed",
            f"automatic counterfactual of record {failure['id']!r} failed ({failure['error']}); "
            "the record is kept without one", extra={"id": failure["id"]}))
    return _Front(files, out, report, spool, later, dedup.duplicates + aug.skipped, splits, where, keep_raw,
                  started)


def _finish(front: _Front, say: Callable[[str], None]) -> PrepareReport:
    """Write the channels, the quarantine, the duplicates and the report (graphs already attached)."""
    report = front.report
    say(f"writing {front.out}")
    report.splits = _split_counts(front.splits)
    report.data_hash, sizes = _write_splits(front.out, front.splits)
    if report.graphs:
        say("writing the graph stores")
        report.graphs["stores"] = _write_graph_stores(front.out, front.splits, sizes)
    report.warnings = _warnings(report)
    _count_quarantine(report, front.spool, front.later)
    rows = _merged_quarantine(front.files, front.spool, front.later, front.keep_raw)
    _write_side_files(front.out, rows, front.duplicates, report, front.started)
    return report


def _count_quarantine(report: PrepareReport, spool: Spool, later: list[QuarantineEntry]) -> None:
    counts = Counter(spool.reasons)
    counts.update(e.reason for e in later)
    report.quarantined = dict(sorted(counts.items()))
    report.quarantined_total = sum(counts.values())


def _merged_quarantine(files: list[str], spool: Spool, later: list[QuarantineEntry], keep_raw: bool):
    """Every quarantine row ordered by (input file, line), read-time rejections first on ties."""
    index = {f: i for i, f in enumerate(files)}

    def key(row: dict) -> tuple[int, int]:
        return index.get(row["file"], len(files)), row["line"]

    if not later:  # the usual case: the spool is the file, byte for byte
        return spool.raw_lines()
    rest = sorted((e.to_dict(keep_raw) for e in later), key=key)
    return heapq.merge(spool, rest, key=key)


def _allowed(languages: Iterable[str] | None) -> set[str] | None:
    if languages is None:
        return None
    try:
        return {normalize_language(lang) for lang in languages}
    except RecordError as exc:
        raise PrepareError(f"allowed_languages: {exc}") from exc


def _read_all(files: list[str], report: PrepareReport, max_code_bytes: int, allowed: set[str] | None,
              spool: Spool, keep_raw: bool, limits: dict) -> list[Sourced]:
    items: list[Sourced] = []
    for file in files:
        try:
            for line in io.read_lines(file, **limits):
                report.lines_read += line.line > 0
                if line.record is None:
                    spool.append(from_line(line).to_dict(keep_raw))
                    continue
                try:
                    rec = normalize_record(line.record, max_code_bytes=max_code_bytes)
                    if allowed is not None and rec["language"] not in allowed:
                        raise RecordError("language_not_allowed",
                                          f"language {rec['language']!r} is not in the allowed "
                                          f"languages ({', '.join(sorted(allowed))})")
                except RecordError as exc:
                    spool.append(QuarantineEntry(file, line.line, exc.reason, str(exc),
                                                 record=line.record).to_dict(keep_raw))
                    continue
                except Exception as exc:  # noqa: BLE001 - one record's failure must not stop the run
                    spool.append(QuarantineEntry(file, line.line, "processing_error",
                                                 f"record could not be normalised: {type(exc).__name__}: {exc}",
                                                 record=line.record).to_dict(keep_raw))
                    continue
                rec["group"] = rec.get("group") or rec["id"]  # an ungrouped record is its own group
                rec["origin"] = "input"
                items.append(Sourced(rec, file, line.line))
        except io.InputError as exc:
            raise PrepareError(f"unreadable input {exc}",
                               "fix or remove this input and run again; nothing was written") from exc
    return items


def _unique_ids(items: list[Sourced]) -> tuple[list[Sourced], list[QuarantineEntry]]:
    """Quarantine records reusing another record's id with different code (ids key predictions)."""
    first: dict[str, Sourced] = {}
    for it in sorted(items, key=lambda i: (i.id, i.file, i.line)):
        first.setdefault(it.id, it)
    kept, clashes = [], []
    for it in items:
        owner = first[it.id]
        if owner is it:
            kept.append(it)
        else:
            clashes.append(QuarantineEntry(
                it.file, it.line, "duplicate_id",
                f"id {it.id!r} is already used by a different record ({owner.file}:{owner.line})",
                record=it.record))
    return kept, clashes


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
            file, line = where.get(rec["id"]) or where.get(rec.get("parent_id") or "", ("", 0))
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


def _output_record(rec: dict) -> dict:
    out = {k: rec.get(k) for k in _RECORD_FIELDS}
    for k in ("parent_id", "license", "graph"):
        if rec.get(k) is not None:
            out[k] = rec[k]
    return out


def _split_counts(splits: dict[str, list[dict]]) -> dict[str, dict[str, int]]:
    counts = {}
    for name in SPLITS:
        recs = splits[name]
        c = {"total": len(recs), "label_0": sum(r["label"] == 0 for r in recs),
             "label_1": sum(r["label"] == 1 for r in recs)}
        for origin in ("input", "counterfactual", "auto_counterfactual"):
            c[origin] = sum(r["origin"] == origin for r in recs)
        c["groups"] = len({r["group"] for r in recs})
        counts[name] = c
    return counts


def _warnings(report: PrepareReport) -> list[str]:
    out = []
    for name, c in report.splits.items():
        if c["total"] == 0:
            out.append(f"split {name!r} is empty: too few groups for the requested ratios")
        elif min(c["label_0"], c["label_1"]) == 0:
            out.append(f"split {name!r} has only one label ({c['label_0']} safe, {c['label_1']} vulnerable)")
    if report.graphs and report.graphs["parse_failures"]:
        out.append(f"{report.graphs['parse_failures']} record(s) did not parse cleanly; "
                   "their graphs come from an error-tolerant parse")
    for split, st in ((report.graphs or {}).get("stores") or {}).items():
        if "error" in st:
            out.append(f"no graph store for {split}: {st['error']} (training converts the channel itself)")
    cut = (report.graphs or {}).get("truncated") or {}
    if cut.get("depth"):
        out.append(f"{cut['depth']} graph(s) were cut at a statement nested too deeply to follow "
                   "(the statements after it are kept; see graph['truncated'])")
    return out


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_dumps = _ENCODER.encode  # one encoder for every row (json.dumps with options builds one per call)


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/")] + list(parts))


def _write_lines(path: str, rows: Iterable[object], digest=None) -> int:
    """Write rows as JSON lines; returns the number of bytes written."""
    size = 0
    with io.open_for_write(path) as fh:
        for row in rows:
            data = row if isinstance(row, bytes) else (_dumps(row) + "\n").encode("utf-8", "surrogatepass")
            fh.write(data)
            size += len(data)
            if digest is not None:
                digest.update(data)
    return size


def _write_splits(out: str, splits: dict[str, list[dict]]) -> tuple[str, dict[str, int]]:
    """Write the channels; returns sha256 over (split name, file bytes) of all three, and each file's size."""
    digest = hashlib.sha256()
    sizes = {}
    for name in SPLITS:
        digest.update(f"{name}\n".encode())
        sizes[name] = _write_lines(_join(out, name, "data.jsonl"), (_output_record(r) for r in splits[name]), digest)
    return digest.hexdigest(), sizes


def _write_graph_stores(out: str, splits: dict[str, list[dict]], sizes: dict[str, int]) -> dict:
    """Each channel's graphs, converted once into an on-disk store beside its data.jsonl
    (``<split>/graph_store/``, see ``streamguard.core.graph_store``): training reads graphs from it
    one at a time instead of decoding the JSON lines into memory."""
    from streamguard.core import graph_store as gstore
    from streamguard.core import graphs as g

    stats = {}
    for name in SPLITS:
        root = _join(out, name, gstore.STORE_DIRNAME)
        writer = gstore.StoreWriter(root, g.FEATURIZER_VERSION, subtokens=g.SUBTOKENS, feat_dim=g.NODE_FEAT_DIM,
                                    opener=io.open_for_write)
        try:
            for line, rec in enumerate(splits[name]):
                try:
                    arrays = gstore.graph_arrays(rec["graph"], g)
                except (ValueError, TypeError, AttributeError) as exc:
                    raise ValueError(f"{name}/data.jsonl:{line + 1} (record {rec['id']!r}): {exc}") from None
                writer.add(arrays, {"i": line, "where": f"data.jsonl:{line + 1}", "id": rec["id"],
                                    "label": rec.get("label"), "language": rec.get("language"),
                                    "cwe": rec.get("cwe"), "nodes": arrays.num_nodes,
                                    "code_length": len(rec["code"])})
        except ValueError as exc:
            # No index is written, so no reader uses the partial store: training converts the
            # channel itself and reports the same graph with its line.
            writer.abort()
            if io._local_path(root) is not None:  # noqa: SLF001
                gstore.remove_store(io._local_path(root))  # noqa: SLF001
            stats[name] = {"error": str(exc)}
            continue
        index = writer.close(lines=len(splits[name]), sources=[{"name": "data.jsonl", "bytes": sizes[name]}])
        stats[name] = {"graphs": index["count"], "shards": len(index["shards"])}
    return stats


def _write_side_files(out: str, quarantine: Iterable[dict], duplicates: list[dict],
                      report: PrepareReport, started: float) -> None:
    _write_lines(_join(out, "quarantine.jsonl"), quarantine)
    _write_lines(_join(out, "duplicates.jsonl"), duplicates)
    report.elapsed_s = round(time.monotonic() - started, 3)
    with io.open_for_write(_join(out, "report.json")) as fh:
        fh.write((json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str) + "\n").encode())


def _reason_summary(reasons: dict[str, int]) -> str:
    return ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"


# ---------------------------------------------------------------------- preparation in stages
# The same preparation cut where its costly part (the graphs) can run in parallel on other machines:
#   prepare_plan      read, validate, deduplicate, split, augment (decisions that need every record),
#                     then write the records in output order as `n` shards of (code, language);
#   build_graph_shard one shard's graphs (any number at once, anywhere: a mapped Airflow task,
#                     an instance of a SageMaker Processing job with ShardedByS3Key input);
#   prepare_finish    attach the graphs and write the channels, quarantine and report.
# The output is byte for byte what `prepare` writes for the same input and seed, except the graph
# timing fields of report.json (`graphs.workers/seconds/cpu_seconds/speedup`, and `graphs.shards`).
# Every stage reads and writes plain files in one work directory (copied to and from the artifact
# store by the caller).
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
                 max_line_bytes: int | None = None, max_gzip_ratio: int | None = None) -> dict:
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
                       keep_raw=keep_raw, limits={"max_line_bytes": max_line_bytes, "max_gzip_ratio": max_gzip_ratio})
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
