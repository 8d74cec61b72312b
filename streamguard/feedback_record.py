"""One production feedback record: the verdicts, the schema and its validation (`parse_feedback`).

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamguard.core.records import RecordError, detect_language, normalize_cwe, normalize_language

VERDICT_LABELS: dict[str, int] = {"confirmed": 1, "false_positive": 0, "missed": 1, "correct": 0}
VERDICT_OUTCOMES: dict[str, str] = {"confirmed": "tp", "false_positive": "fp", "missed": "fn", "correct": "tn"}
# What the model must have predicted for a verdict to make sense (1 = flagged as vulnerable).
VERDICT_PREDICTIONS: dict[str, int] = {"confirmed": 1, "false_positive": 1, "missed": 0, "correct": 0}
REQUIRED_FIELDS = ("code", "verdict", "model_version", "timestamp")


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


class FeedbackError(ValueError):
    """A feedback entry failed validation; the message names the field and why."""


def normalize_line_endings(code: str) -> str:
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


def _normalize_cwe_field(value: Any) -> str | None:
    """89, "89", "cwe89", "CWE-89" -> "CWE-89"; other strings are kept as given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FeedbackError(f"field 'cwe': expected a string or int, got {type(value).__name__}")
    return normalize_cwe(str(value).strip()) or None


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
        cwe=_normalize_cwe_field(obj.get("cwe")),
        variant=(_opt_str(obj, "variant") or "").lower() or None,
        file=file,
        line=line,
    )
