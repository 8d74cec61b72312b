"""`streamguard prepare`: raw JSON lines -> train/validation/test channels, quarantine and a report.

Steps: read every line (bad lines quarantined) -> normalise records (bad records quarantined)
-> remove duplicates (conflicting copies quarantined) -> group-aware stratified split ->
counterfactual augmentation (and, when asked, program-transformation variants) within each split
-> program graphs -> write.

Outputs under ``out`` (a local path or URI):
``{train,validation,test}/data.jsonl``, ``quarantine.jsonl`` (each rejected line or record with
file, line, reason and -- with ``keep_raw``, see ``streamguard.data.quarantine`` -- the raw
content), ``duplicates.jsonl`` (each removed copy with the id of
the kept one) and ``report.json``. The same inputs and seed give byte-identical files, whatever
the order of the input lines.

Modules: this one (reading, validation, deduplication, split, augmentation), `prepare_graphs`
(the graphs), `prepare_output` (writing), `prepare_report` (the report and error) and
`prepare_stages` (the same preparation in stages; its names are importable from here too).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from streamguard.core.records import RecordError, normalize_language, normalize_record
from streamguard.data import io
from streamguard.data.augment import augment_splits, transform_splits
from streamguard.data.dedup import deduplicate
from streamguard.data.prepare_graphs import _add_graphs
from streamguard.data.prepare_output import (_join, _reason_summary, _split_counts, _warnings, _write_graph_stores,
                                             _write_side_files, _write_splits)
from streamguard.data.prepare_report import PrepareError, PrepareReport
from streamguard.data.quarantine import QuarantineEntry, Spool, from_line
from streamguard.data.sourced import Sourced
from streamguard.data.split import SPLITS, split_items, stable_hash, validate_ratios

__all__ = ["PrepareError", "PrepareReport", "prepare", "_add_graphs"]

def prepare(inputs: Sequence[str], out: str, *, seed: int = 13,
            ratios: Sequence[float] = (0.8, 0.1, 0.1), max_code_bytes: int = 200_000,
            auto_counterfactuals: bool = True, with_graphs: bool = True,
            allowed_languages: Iterable[str] | None = None,
            progress: Callable[[str], None] | None = None, keep_raw: bool = False,
            max_line_bytes: int | None = None, max_gzip_ratio: int | None = None,
            graph_workers: int | None = None, transforms: int = 0,
            transform_in: Sequence[str] | None = ("train",),
            transform_names: Sequence[str] | None = None) -> PrepareReport:
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
        transforms: up to this many program-transformation variants per input record, within its
            split (``streamguard.data.transforms``; 0, the default: none).
        transform_in: the splits that get those variants (default the training split only, so that
            validation and test figures compare with and without; None: every split).
        transform_names: only these transformations (None: all of them).

    Returns:
        The report (also written to ``out/report.json``).

    Raises:
        PrepareError: an input is unreadable, the options are invalid, or no usable record remains.
    """
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    if transform_names is not None:
        from streamguard.data.transforms import check_names

        try:
            transform_names = check_names(transform_names)
        except ValueError as exc:
            raise PrepareError(str(exc)) from exc
    ratios, allowed, files, report = _setup(inputs, out, seed, ratios, max_code_bytes, allowed_languages)
    say(f"reading {len(files)} file(s)")
    spool = Spool()  # read-time rejections, in (file, line) order; the later ones are few
    try:
        front = _front(files, out, report, spool, seed=seed, ratios=ratios, max_code_bytes=max_code_bytes,
                       auto_counterfactuals=auto_counterfactuals, allowed=allowed, say=say, started=started,
                       transforms=transforms, transform_in=transform_in, transform_names=transform_names, keep_raw=keep_raw, limits={"max_line_bytes": max_line_bytes, "max_gzip_ratio": max_gzip_ratio})
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
           say: Callable[[str], None], started: float, keep_raw: bool, limits: dict,
           transforms: int = 0, transform_in: Sequence[str] | None = ("train",),
           transform_names: Sequence[str] | None = None) -> _Front:
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
    skipped = aug.skipped
    if transforms > 0:
        say(f"adding up to {transforms} program-transformation variant(s) per record")
        made = transform_splits(splits, seed=seed, per_record=transforms, max_code_bytes=max_code_bytes,
                                only=None if transform_in is None else tuple(transform_in),
                                names=None if transform_names is None else tuple(transform_names))
        skipped = skipped + made.pop("skipped")
        report.augmented["transformations"] = made
    return _Front(files, out, report, spool, later, dedup.duplicates + skipped, splits, where, keep_raw,
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



_STAGED = ("SHARD_RECORDS", "MAX_SHARDS", "shard_name", "graphs_name", "auto_shards", "prepare_plan",
           "build_graph_shard", "prepare_finish", "ensure_channel_store")


def __getattr__(name: str):
    """The staged preparation lives in `streamguard.data.prepare_stages` (which imports this module);
    its names stay importable from here."""
    if name in _STAGED:
        from streamguard.data import prepare_stages

        return getattr(prepare_stages, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

