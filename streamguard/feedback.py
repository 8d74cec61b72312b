"""Production feedback batches: ingestion, deduplication, labelled records and production metrics.

One record's schema, the verdicts and their validation: `streamguard.feedback_record`.

Nothing is dropped silently: every rejected line lands in `FeedbackBatch.quarantined` with its file,
line and reason, duplicates and records older than `since` are counted. One record that cannot
be processed at all (whatever the error) is quarantined with the error; it never stops the batch.
The quarantine is spooled to a temporary file, not held in memory. A line that is not a JSON
record, or an object without `code`, keeps its `length` and `sha256` but not its text unless
`keep_raw` (see `streamguard.data.quarantine`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from streamguard.data import io as data_io
from streamguard.data.quarantine import Spool, fingerprint
from streamguard.feedback_record import (VERDICT_OUTCOMES, FeedbackError, FeedbackRecord, normalize_line_endings,
                                         parse_feedback)


@dataclass
class FeedbackBatch:
    """The result of ingesting feedback.

    Attributes:
        records: labelled records in the training schema (`id, code, label, language, cwe, group,
            source, origin`), ready for `streamguard prepare`.
        feedback: the validated entries behind `records`, same order (verdicts, versions, scores).
        quarantined: `{"file", "line", "reason", "raw"}` (or `"length"`, `"sha256"` in place of
            `"raw"`, see `ingest_feedback`'s `keep_raw`) for every rejected line or record; a
            list-like :class:`~streamguard.data.quarantine.Spool` on disk.
        duplicates: entries dropped as repeats of an earlier one (same id, or same normalised code,
            verdict and model version).
        skipped_before_since: valid entries older than `since` (already consumed by an earlier run).
        counts: kept entries per verdict.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[FeedbackRecord] = field(default_factory=list)
    quarantined: Spool = field(default_factory=Spool)
    duplicates: int = 0
    skipped_before_since: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able summary (for logs and XCom)."""
        return {
            "kept": len(self.records),
            "quarantined": len(self.quarantined),
            "duplicates": self.duplicates,
            "skipped_before_since": self.skipped_before_since,
            "counts": dict(self.counts),
        }


@dataclass(frozen=True)
class ConfusionCounts:
    """TP/FP/FN/TN with the derived rates (None where the denominator is zero)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.n)

    @property
    def fpr(self) -> float | None:
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "accuracy": self.accuracy, "fpr": self.fpr, "precision": self.precision,
                "recall": self.recall}


@dataclass
class ProductionMetrics:
    """Metrics of the deployed model, estimated from reviewer verdicts.

    Feedback is biased toward flagged items: reviewers see most of what the model flags and only a
    sample of what it passes. `precision` is therefore well estimated, while `fpr` (FP / (FP + TN))
    and `accuracy` are estimated among *reviewed* items only and usually look worse than on a random
    sample. Compare them with the same estimate over time, or with a threshold that allows for it.

    Attributes:
        n: reviewed predictions; `None` rates mean an empty denominator.
        by_model_version: `{version: ConfusionCounts.as_dict()}`.
        scores: the model scores carried by the feedback (for drift on the score distribution).
    """

    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    accuracy: float | None
    fpr: float | None
    precision: float | None
    recall: float | None
    by_model_version: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


class LineError(str):
    """A line that could not be decoded; the string is the reason."""


def _iter_sources(sources: Any) -> Iterator[tuple[str, int, Any, str, dict]]:
    """Flatten paths, decoded objects and `(file, line, obj)` tuples into `(file, line, obj, raw, ident)`.

    Paths (files, directories, `file://` or `s3://` URIs; JSONL, gzip detected) are read with
    `streamguard.data.io`, the reader `streamguard prepare` uses; an unreadable file raises its
    `InputError` rather than silently shrinking the batch. `ident` is `{"length", "sha256"}` of a
    line that did not decode (empty when unknown).
    """
    if isinstance(sources, (str, os.PathLike, Mapping)):
        sources = [sources]
    for index, item in enumerate(sources, start=1):
        if isinstance(item, (str, os.PathLike)):
            for file in data_io.expand_inputs([os.fspath(item)]):
                for ln in data_io.read_lines(file):
                    if ln.record is not None:
                        yield ln.file, ln.line, ln.record, "", {}
                        continue
                    ident = {k: v for k, v in (("length", ln.length), ("sha256", ln.sha256)) if v is not None}
                    yield ln.file, ln.line, LineError(ln.error or "unreadable line"), ln.raw or "", ident
        elif isinstance(item, Mapping):
            yield "<records>", index, item, "", {}
        elif isinstance(item, tuple) and len(item) == 3:
            file, line, obj = item
            if isinstance(obj, BaseException):
                obj = LineError(str(obj))
            yield str(file), int(line), obj, "", {}
        else:
            yield "<records>", index, LineError(f"unsupported input item of type {type(item).__name__}"), "", {}


def _raw_text(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, default=str)[:2000]
    except (TypeError, ValueError, RecursionError):
        return repr(obj)[:2000] if not isinstance(obj, (dict, list)) else "<unprintable value>"


def _training_record(fb: FeedbackRecord, norm_code: str) -> dict[str, Any]:
    digest = hashlib.sha256(norm_code.encode("utf-8")).hexdigest()
    if fb.id is not None:
        record_id = fb.id
    else:
        key = f"{digest}|{fb.verdict}|{fb.model_version}".encode("utf-8")
        record_id = "fb-" + hashlib.sha256(key).hexdigest()[:16]
    return {
        "id": record_id,
        "code": fb.code,
        "label": fb.label,
        "language": fb.language,
        "cwe": fb.cwe,
        # Same code from several verdicts/versions must stay in one split.
        "group": "fb-" + digest[:16],
        "source": "feedback",
        "origin": "feedback",
    }


def ingest_feedback(paths_or_records: Any, *, since: datetime | None = None,
                    keep_raw: bool = False) -> FeedbackBatch:
    """Validate, deduplicate and label feedback.

    Args:
        paths_or_records: a path, a decoded object, or an iterable of paths (JSONL or JSONL.gz files,
            directories, URIs), decoded objects and `(file, line, object_or_exception)` tuples.
        since: tz-aware; valid entries with an earlier timestamp are counted in
            `skipped_before_since` and not kept.
        keep_raw: quarantine the text of lines that are not feedback records (False: their
            `length` and `sha256` only; records with `code` keep their text either way).

    Returns:
        FeedbackBatch. Records whose normalised code received contradicting labels (e.g.
        `confirmed` and `false_positive`) are all quarantined: reviewers disagree, so neither
        label is trustworthy for training.
    """
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise ValueError("since must be timezone-aware")
    batch = FeedbackBatch()
    seen_ids: set[str] = set()
    seen_keys: set[tuple[str, str, str]] = set()
    kept: list[tuple[FeedbackRecord, str]] = []

    def reject(file: str, line: int, reason: str, raw: str, ident: dict, record_like: bool) -> None:
        entry: dict[str, Any] = {"file": file, "line": line, "reason": reason}
        if keep_raw or record_like or not raw:
            entry["raw"] = raw
        else:  # not a feedback record at all: identify the line, do not copy its text
            entry.update(ident or fingerprint(raw))
        batch.quarantined.append(entry)

    for file, line, obj, raw, ident in _iter_sources(paths_or_records):
        if isinstance(obj, LineError):
            reject(file, line, str(obj), raw, ident, record_like=False)
            continue
        try:
            fb = parse_feedback(obj, file=file, line=line)
            if since is not None and fb.timestamp < since:
                batch.skipped_before_since += 1
                continue
            norm = normalize_line_endings(fb.code)
        except FeedbackError as exc:
            reject(file, line, str(exc), raw or _raw_text(obj), ident,
                   record_like=isinstance(obj, Mapping) and "code" in obj)
            continue
        except Exception as exc:  # noqa: BLE001 - one record's failure must not stop the batch
            reject(file, line, f"cannot process record: {type(exc).__name__}: {exc}", raw or _raw_text(obj), ident,
                   record_like=isinstance(obj, Mapping) and "code" in obj)
            continue
        key = (norm, fb.verdict, fb.model_version)
        if (fb.id is not None and fb.id in seen_ids) or key in seen_keys:
            batch.duplicates += 1
            continue
        if fb.id is not None:
            seen_ids.add(fb.id)
        seen_keys.add(key)
        kept.append((fb, norm))

    labels_by_code: dict[str, set[int]] = {}
    for fb, norm in kept:
        labels_by_code.setdefault(norm, set()).add(fb.label)
    for fb, norm in kept:
        if len(labels_by_code[norm]) > 1:
            batch.quarantined.append({
                "file": fb.file, "line": fb.line,
                "reason": f"conflicting verdicts for the same code (this one: {fb.verdict!r}); "
                          "label is ambiguous",
                "raw": ""})
            continue
        batch.feedback.append(fb)
        batch.records.append(_training_record(fb, norm))
    batch.counts = dict(Counter(fb.verdict for fb in batch.feedback))
    return batch


def _confusion(entries: Iterable[FeedbackRecord]) -> ConfusionCounts:
    outcomes = Counter(VERDICT_OUTCOMES[fb.verdict] for fb in entries)
    return ConfusionCounts(tp=outcomes["tp"], fp=outcomes["fp"], fn=outcomes["fn"], tn=outcomes["tn"])


def production_metrics(batch: FeedbackBatch | Iterable[FeedbackRecord], *,
                       model_version: str | None = None) -> ProductionMetrics:
    """Confusion counts and rates of the deployed model(s) from reviewer verdicts.

    Args:
        batch: an ingested batch, or validated entries.
        model_version: restrict the headline numbers to one version (e.g. the champion);
            `by_model_version` always covers every version present.
    """
    entries = list(batch.feedback if isinstance(batch, FeedbackBatch) else batch)
    by_version: dict[str, list[FeedbackRecord]] = {}
    for fb in entries:
        by_version.setdefault(fb.model_version, []).append(fb)
    selected = entries if model_version is None else by_version.get(str(model_version), [])
    counts = _confusion(selected)
    return ProductionMetrics(
        n=counts.n, tp=counts.tp, fp=counts.fp, fn=counts.fn, tn=counts.tn,
        accuracy=counts.accuracy, fpr=counts.fpr, precision=counts.precision, recall=counts.recall,
        by_model_version={v: _confusion(items).as_dict() for v, items in sorted(by_version.items())},
        scores=[fb.score for fb in selected if fb.score is not None],
    )


def quarantine_lines(batch: FeedbackBatch) -> Iterator[str]:
    """The quarantine as JSONL lines (same shape as `streamguard prepare`'s quarantine.jsonl)."""
    for item in batch.quarantined:
        yield json.dumps(item, ensure_ascii=False)


__all__ = [
    "VERDICT_LABELS", "FeedbackRecord", "FeedbackBatch", "ProductionMetrics", "ConfusionCounts",
    "FeedbackError", "ingest_feedback", "parse_feedback", "production_metrics",
    "normalize_line_endings", "quarantine_lines",
]
