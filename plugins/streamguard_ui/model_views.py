"""Plain-dict views of registry records and training reports, shared by the JSON API and the pages.

Pure functions: registry objects and ``Report``s in, JSON-ready dicts out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamguard.pipeline.records import plain
from streamguard_ui.artifacts import Report
from streamguard_ui.plots import auc, roc_points

# Event kinds that record a decision about a model, shown next to its versions.
DECISION_KINDS = ("promotion", "challenger_rejected", "alias_moved", "deployment", "retrain_decision")


def as_dict(record: Any) -> dict:
    """A registry record (dataclass with ``to_dict``, dataclass, or mapping) as a plain dict
    (`streamguard.pipeline.records.plain`); None is an empty one."""
    return {} if record is None else dict(plain(record))


def model_summary(name: str, versions: Sequence[Mapping], champion: int | None, deployed: int | None,
                  unreadable: Sequence[Mapping] = ()) -> dict:
    """One line of the model list: counts, latest version and where the aliases point.

    ``unreadable``: ``{"version", "uri", "error"}`` for version records that could not be read;
    they are named, not counted among the versions.
    """
    registered = [v for v in versions if v.get("status") == "registered"]
    return {
        "name": name,
        "model_type": versions[-1].get("model_type") if versions else None,
        "versions": len(versions),
        "registered": len(registered),
        "rejected": len(versions) - len(registered),
        "latest_version": versions[-1].get("version") if versions else None,
        "champion": champion,
        "deployed": deployed,
        "unreadable_versions": [dict(u) for u in unreadable],
    }


def event_matches_model(event: Mapping, name: str, model_types: Iterable[str]) -> bool:
    """Whether an event concerns the model: by ``model_name``, else by ``model_type`` in its payload."""
    payload = event.get("payload") or {}
    if "model_name" in payload:
        return payload.get("model_name") == name
    return payload.get("model_type") in set(model_types)


def decisions_for_model(events: Sequence[Mapping], name: str, model_types: Iterable[str]) -> list[dict]:
    """Promotion, alias, deployment and retraining decisions about one model, newest first."""
    types = set(model_types)
    chosen = [e for e in events if e.get("kind") in DECISION_KINDS and event_matches_model(e, name, types)]
    return sorted(chosen, key=lambda e: str(e.get("created_at", "")), reverse=True)


def confusion_matrix(record: Mapping, report: Report | None) -> dict | None:
    """The test confusion matrix and where it came from.

    Order of preference: the registry record's test metrics (what the gate judged), the archive's
    metrics.json, then a count over the test predictions (``pred``, else ``score >= 0.5``).
    """
    candidates = [("registry record", (record.get("metrics") or {}).get("test") or {})]
    if report is not None:
        candidates.append(("metrics.json", (report.metrics or {}).get("test") or {}))
    for source, metrics in candidates:
        matrix = metrics.get("confusion_matrix") if isinstance(metrics, Mapping) else None
        if _is_2x2(matrix):
            return {"matrix": [[int(v) for v in row] for row in matrix], "source": source}
    if report is not None and report.predictions:
        counts, unscored = [[0, 0], [0, 0]], 0
        for row in report.predictions:
            pred = row.get("pred")
            if pred not in (0, 1):
                if row.get("score") is None:
                    unscored += 1
                    continue
                pred = 1 if float(row["score"]) >= 0.5 else 0
            counts[int(row["label"])][int(pred)] += 1
        return {"matrix": counts, "source": "test_predictions.jsonl", "unscored": unscored}
    return None


def _is_2x2(matrix: Any) -> bool:
    return (
        isinstance(matrix, list)
        and len(matrix) == 2
        and all(isinstance(row, list) and len(row) == 2 for row in matrix)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in matrix for v in row)
    )


def roc(report: Report | None) -> dict | None:
    """ROC points and AUC from the test predictions, or None when there are none.

    Rows without a score (records the model could not score) are left out and counted in
    ``unscored``; with one class only the curve is undefined and ``error`` says so.
    """
    if report is None or not report.predictions:
        return None
    scored = [row for row in report.predictions if row.get("score") is not None]
    labels = [int(row["label"]) for row in scored]
    scores = [float(row["score"]) for row in scored]
    unscored = len(report.predictions) - len(scored)
    try:
        points = roc_points(labels, scores)
    except ValueError as error:
        return {"points": [], "auc": None, "n": len(labels), "unscored": unscored, "error": str(error)}
    return {
        "points": [[round(x, 6), round(y, 6)] for x, y in points],
        "auc": auc(points),
        "n": len(labels),
        "unscored": unscored,
    }


def plot_data(record: Mapping, report: Report | None) -> dict:
    """Everything the three charts need, as JSON-ready data."""
    return {
        "source": report.source if report else None,
        "predictions_source": (report.predictions_source or report.source) if report else None,
        "missing_files": list(report.missing) if report else [],
        "history": list(report.history) if report else [],
        "confusion_matrix": confusion_matrix(record, report),
        "roc": roc(report),
    }
