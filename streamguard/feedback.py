"""Production feedback: validation, deduplication, labelled records and production metrics.

A feedback record is one reviewer verdict on one model prediction, one JSON object per line
(JSONL, optionally gzipped):

| field | type | required | meaning |
|---|---|---|---|
| `code` | str | yes | the code the model scored |
| `prediction` / `score` | 0/1, bool, or float in [0, 1] | one of them | model output; a float is a score |
| `verdict` | str | yes | `confirmed`, `false_positive`, `missed` or `correct` |
| `model_version` | str or int | yes | the registry version that made the prediction |
| `timestamp` | ISO-8601 with a timezone (`Z` ok) | yes | when the verdict was given |
| `id`, `request_id`, `variant` | str | no | `variant` is the A/B arm (`champion`/`challenger`) |
| `language`, `cwe` | str (`cwe` may be an int) | no | normalised as in training data |

A missing `language` is detected from the code (`streamguard.core.records.detect_language`); when
that fails the training record carries `language: None`, which `streamguard prepare` quarantines
with its own reason while the verdict still counts in the production metrics. A 0/1 `prediction`
that contradicts the verdict (e.g. `missed` with prediction 1) is rejected.

Verdicts and what they mean, both for training labels and for the confusion matrix:

| verdict | the model said | truth | label | outcome |
|---|---|---|---|---|
| `confirmed` | vulnerable | vulnerable | 1 | TP |
| `false_positive` | vulnerable | safe | 0 | FP |
| `missed` | safe | vulnerable | 1 | FN |
| `correct` | safe | safe | 0 | TN (reviewer confirmed a safe prediction) |

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
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from streamguard.core.records import RecordError, detect_language, normalize_language
from streamguard.data import io as data_io
from streamguard.data.quarantine import Spool, fingerprint

VERDICT_LABELS: dict[str, int] = {"confirmed": 1, "false_positive": 0, "missed": 1, "correct": 0}
VERDICT_OUTCOMES: dict[str, str] = {"confirmed": "tp", "false_positive": "fp", "missed": "fn", "correct": "tn"}
# What the model must have predicted for a verdict to make sense (1 = flagged as vulnerable).
VERDICT_PREDICTIONS: dict[str, int] = {"confirmed": 1, "false_positive": 1, "missed": 0, "correct": 0}
REQUIRED_FIELDS = ("code", "verdict", "model_version", "timestamp")
_CWE_RE = re.compile(r"(?i)(?:cwe)?[-_ ]?(\d+)")


@dataclass(frozen=True)
class FeedbackRecord:
    """One validated feedback entry (the verdict plus what the model predicted)."""

    code: str
    verdict: str
    model_version: str
    timestamp: datetime
    score: float | None = None
    pred: int | None = None
    id: str | None = None
    request_id: str | None = None
    language: str | None = None
    cwe: str | None = None
    variant: str | None = None
    file: str = ""
    line: int = 0

    @property
    def label(self) -> int:
        """Ground-truth label implied by the verdict (1 = vulnerable)."""
        return VERDICT_LABELS[self.verdict]

    @property
    def flagged(self) -> bool:
        """Whether the model flagged the code as vulnerable."""
        return VERDICT_PREDICTIONS[self.verdict] == 1


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


class FeedbackError(ValueError):
    """A feedback entry failed validation; the message names the field and why."""


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def normalise_code(code: str) -> str:
    """Code normalised for duplicate detection: unified newlines, no trailing spaces or blank edges."""
    text = code.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise FeedbackError(f"field 'timestamp': not ISO-8601 ({value!r})") from exc
    else:
        raise FeedbackError(f"field 'timestamp': expected an ISO-8601 string, got {type(value).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        # A naive time is ambiguous across reviewers' machines; reject rather than guess UTC.
        raise FeedbackError(f"field 'timestamp': no timezone in {value!r} (use Z or +HH:MM)")
    return ts


def _parse_prediction(obj: Mapping[str, Any]) -> tuple[float | None, int | None]:
    """Return (score, pred) from `prediction` and/or `score`."""
    score: float | None = None
    pred: int | None = None
    for key in ("prediction", "score"):
        if key not in obj or obj[key] is None:
            continue
        value = obj[key]
        if isinstance(value, bool):
            pred = int(value)
        elif isinstance(value, int) and key == "prediction":
            if value not in (0, 1):
                raise FeedbackError(f"field 'prediction': integer must be 0 or 1, got {value}")
            pred = value
        elif isinstance(value, (int, float)):
            value = float(value)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise FeedbackError(f"field {key!r}: score must be in [0, 1], got {value}")
            score = value
        else:
            raise FeedbackError(f"field {key!r}: expected 0/1 or a float score, got {type(value).__name__}")
    if score is None and pred is None:
        raise FeedbackError("missing field 'prediction' (or 'score')")
    return score, pred


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FeedbackError(f"field {key!r}: expected a string, got {type(value).__name__}")
    text = str(value).strip()
    return text or None


def _normalise_cwe(value: Any) -> str | None:
    """89, "89", "cwe89", "CWE-89" -> "CWE-89"; other strings are kept as given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FeedbackError(f"field 'cwe': expected a string or int, got {type(value).__name__}")
    text = str(value).strip()
    match = _CWE_RE.fullmatch(text)
    return f"CWE-{int(match.group(1))}" if match else (text or None)


def _language(obj: Mapping[str, Any], code: str) -> str | None:
    """The record's language normalised like training data, else detected from the code (or None)."""
    given = obj.get("language")
    if given in (None, ""):
        return detect_language(code)
    try:
        return normalize_language(given)
    except RecordError as exc:
        raise FeedbackError(f"field 'language': {exc}") from exc


def parse_feedback(obj: Any, *, file: str = "", line: int = 0) -> FeedbackRecord:
    """Validate one decoded feedback object.

    Raises:
        FeedbackError: naming the field and the reason.
    """
    if not isinstance(obj, Mapping):
        raise FeedbackError(f"expected a JSON object, got {type(obj).__name__}")
    for key in REQUIRED_FIELDS:
        if obj.get(key) is None:
            raise FeedbackError(f"missing field {key!r}")
    code = obj["code"]
    if not isinstance(code, str) or not code.strip():
        raise FeedbackError("field 'code': expected a non-empty string")
    verdict = obj["verdict"]
    if not isinstance(verdict, str) or verdict.strip().lower() not in VERDICT_LABELS:
        raise FeedbackError(f"field 'verdict': {verdict!r} is not one of {sorted(VERDICT_LABELS)}")
    verdict = verdict.strip().lower()
    model_version = _opt_str(obj, "model_version")
    if model_version is None:
        raise FeedbackError("field 'model_version': empty")
    score, pred = _parse_prediction(obj)
    # A hard 0/1 that contradicts the verdict means the record was joined to the wrong prediction.
    # A float score is not checked: the serving threshold is not known here.
    if pred is not None and pred != VERDICT_PREDICTIONS[verdict]:
        raise FeedbackError(
            f"field 'prediction': verdict {verdict!r} implies the model predicted "
            f"{VERDICT_PREDICTIONS[verdict]}, record says {pred}")
    return FeedbackRecord(
        code=code,
        verdict=verdict,
        model_version=model_version,
        timestamp=_parse_timestamp(obj["timestamp"]),
        score=score,
        pred=pred,
        id=_opt_str(obj, "id"),
        request_id=_opt_str(obj, "request_id"),
        language=_language(obj, code),
        cwe=_normalise_cwe(obj.get("cwe")),
        variant=(_opt_str(obj, "variant") or "").lower() or None,
        file=file,
        line=line,
    )


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
            norm = normalise_code(fb.code)
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
    "normalise_code", "quarantine_lines",
]
