"""From served predictions to retraining feedback: verdict logs, SageMaker data capture, reviewers' confirmations.

A *verdict log* line is what the model said about one instance (`streamguard serve` writes them;
`from_capture` makes the same lines from SageMaker's data capture files)::

    {"timestamp", "request_id", "id", "code", "language", "score", "prediction", "model_version",
     "model_type", "variant", "shadow", ["sink_line"], ["error"]}

A *confirmation* is what a reviewer found: ``{"id", "vulnerable": true|false, ["request_id"],
["timestamp"], ["cwe"]}`` (matched on ``request_id`` + ``id`` when it has a request id, else on
``id``). `join_confirmations` turns each confirmed prediction into a feedback record in the
format the retraining DAG ingests (`streamguard.feedback`): the verdict follows from what the
model predicted and what the reviewer found (confirmed / false_positive / missed / correct), with
the variant that served it, so A/B analysis and retraining read the same lines.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

# prediction, truth -> verdict
VERDICTS = {(1, 1): "confirmed", (1, 0): "false_positive", (0, 1): "missed", (0, 0): "correct"}


@dataclass
class JoinResult:
    feedback: list[dict] = field(default_factory=list)
    unmatched_confirmations: list[dict] = field(default_factory=list)  # {"line", "reason", "raw"}
    unscored: int = 0          # verdict-log lines with an error (nothing to confirm)
    unconfirmed: int = 0       # predictions no reviewer has looked at yet
    bad_lines: list[dict] = field(default_factory=list)                # {"file", "line", "reason"}

    def summary(self) -> dict:
        return {"feedback": len(self.feedback), "unmatched_confirmations": len(self.unmatched_confirmations),
                "unscored": self.unscored, "unconfirmed": self.unconfirmed, "bad_lines": len(self.bad_lines)}


def read_jsonl(uri: str) -> Iterable[tuple[int, Any]]:
    """``(line number, decoded object or the error text)`` for every non-blank line of a file or URI."""
    from streamguard import storage

    data = storage.read_bytes(uri)
    if data[:2] == b"\x1f\x8b":
        import gzip

        data = gzip.decompress(data)
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, f"invalid JSON: {exc}"


def _truth(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if value in (0, 1) and not isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "vulnerable", "safe"):
        return int(value.strip().lower() in ("true", "vulnerable"))
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def join_confirmations(verdict_lines: Iterable[dict], confirmations: Iterable[tuple[int, Any]]) -> JoinResult:
    """Feedback records for the predictions reviewers confirmed (see the module docstring)."""
    out = JoinResult()
    by_request: dict[tuple[str, str], list[dict]] = {}
    by_id: dict[str, list[dict]] = {}
    for row in verdict_lines:
        if row.get("error") or row.get("prediction") not in (0, 1):
            out.unscored += 1
            continue
        key = (str(row.get("request_id")), str(row.get("id")))
        by_request.setdefault(key, []).append(row)
        by_id.setdefault(str(row.get("id")), []).append(row)
    used: set[int] = set()
    for lineno, conf in confirmations:
        if not isinstance(conf, dict):
            out.unmatched_confirmations.append({"line": lineno, "reason": conf if isinstance(conf, str)
                                                else "not a JSON object", "raw": conf})
            continue
        truth = _truth(conf.get("vulnerable"))
        if truth is None or conf.get("id") is None:
            out.unmatched_confirmations.append({"line": lineno, "raw": conf,
                                                "reason": "needs 'id' and 'vulnerable': true|false"})
            continue
        rows = (by_request.get((str(conf["request_id"]), str(conf["id"])), []) if conf.get("request_id")
                else by_id.get(str(conf["id"]), []))
        if not rows:
            out.unmatched_confirmations.append({"line": lineno, "raw": conf,
                                                "reason": f"no served prediction with id {conf['id']!r}"
                                                          + (f" in request {conf['request_id']}" if conf.get("request_id") else "")})
            continue
        for row in rows:
            used.add(id(row))
            record = {
                "id": f"{str(row.get('request_id'))[:16]}-{row.get('id')}-{row.get('variant') or 'default'}",
                "request_id": row.get("request_id"), "code": row["code"], "prediction": row["prediction"],
                "score": row.get("score"), "verdict": VERDICTS[(row["prediction"], truth)],
                "model_version": row.get("model_version"), "timestamp": conf.get("timestamp") or _now(),
                "variant": row.get("variant"), "language": row.get("language"),
            }
            if conf.get("cwe") is not None:
                record["cwe"] = conf["cwe"]
            out.feedback.append(record)
    out.unconfirmed = sum(len(rows) for rows in by_request.values()) - len(used)
    return out


# -------------------------------------------------------------------------------- data capture
def _decode_capture(part: dict) -> Any:
    data = part.get("data", "")
    if str(part.get("encoding", "")).upper() == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    return json.loads(data)


def from_capture(lines: Iterable[tuple[int, Any]], *, variant: str | None = None,
                 where: str = "") -> tuple[list[dict], list[dict]]:
    """Verdict-log lines from SageMaker data capture records (input and output captured).

    Args:
        lines: ``(line number, decoded JSON)`` of a capture file.
        variant: the production variant, from the capture path
            (``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``).

    Returns:
        (verdict-log lines, problems as ``{"file", "line", "reason"}``).
    """
    import hashlib

    rows, problems = [], []
    for lineno, obj in lines:
        try:
            if not isinstance(obj, dict):
                raise ValueError(obj if isinstance(obj, str) else "not a JSON object")
            capture = obj["captureData"]
            request = _decode_capture(capture["endpointInput"])
            response = _decode_capture(capture["endpointOutput"])
            raw_in = capture["endpointInput"].get("data", "")
            request_id = hashlib.sha256(str(raw_in).encode("utf-8")).hexdigest()
            instances = request.get("instances", [request]) if isinstance(request, dict) else request
            predictions = response["predictions"]
            if len(instances) != len(predictions):
                raise ValueError(f"{len(instances)} instances but {len(predictions)} predictions")
            stamp = obj.get("eventMetadata", {}).get("inferenceTime") or _now()
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            problems.append({"file": where, "line": lineno, "reason": f"not a usable capture record: {exc}"})
            continue
        for inst, pred in zip(instances, predictions):
            row = {"timestamp": stamp, "request_id": request_id, "id": pred.get("id"),
                   "code": inst.get("code") if isinstance(inst, dict) else None, "language": pred.get("language"),
                   "score": pred.get("score"), "prediction": pred.get("pred"),
                   "model_version": pred.get("model_version"), "model_type": pred.get("model_type"),
                   "variant": variant, "shadow": False}
            if pred.get("error"):
                row["error"] = pred["error"]
            rows.append(row)
    return rows, problems


def variant_from_capture_uri(uri: str, destination: str) -> str | None:
    """``<destination>/<endpoint>/<variant>/...`` -> variant."""
    rest = uri[len(destination.rstrip("/")) + 1:] if uri.startswith(destination.rstrip("/") + "/") else ""
    parts = rest.split("/")
    return parts[1] if len(parts) > 2 else None
