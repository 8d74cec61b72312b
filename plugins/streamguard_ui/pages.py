"""HTML pages of the "StreamGuard Models" view: the model overview and one version's details.

Pure string rendering from the dicts in ``model_views``. Every value from the registry or an
artifact goes through ``esc`` (``html.escape``); links are relative, so the pages work under any
URL prefix, behind a proxy and inside the Airflow UI's iframe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from streamguard_ui.plots import confusion_matrix_svg, learning_curves_svg, roc_curve_svg

METRIC_COLUMNS = ("accuracy", "precision", "recall", "f1", "fpr", "roc_auc", "n")
OVERVIEW_METRICS = (("validation", "accuracy"), ("validation", "f1"), ("test", "accuracy"),
                    ("test", "f1"), ("test", "fpr"), ("test", "roc_auc"))
SPLIT_LABELS = {"validation": "val", "test": "test"}
MAX_EVENTS_SHOWN = 100

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:.6rem;padding:0 .5rem;font-size:.75rem;margin-left:.3rem}
.champion{background:#0072B2;color:#fff}.deployed{background:#009E73;color:#fff}
.registered{background:#e6f2fa;color:#004d7a}.rejected{background:#fbe9e0;color:#8a3300}
.passed{color:#006b4f}.failed{color:#a33b00}.muted{color:#666}.error{color:#a33b00;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
pre{background:#f7f7f7;padding:.5rem;overflow:auto;font-size:.8rem;max-width:70rem}
ul.reasons{margin:.2rem 0;padding-left:1.2rem}
"""


def esc(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def fmt(value: Any) -> str:
    """A metric for display: floats to 4 decimals, integers as they are, absent as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _badges(version: Mapping, champion: int | None, deployed: int | None) -> str:
    number = version.get("version")
    out = f"<span class='badge {esc(version.get('status'))}'>{esc(version.get('status'))}</span>"
    if champion is not None and number == champion:
        out += "<span class='badge champion'>champion</span>"
    if deployed is not None and number == deployed:
        out += "<span class='badge deployed'>deployed</span>"
    return out


def _reasons(reasons: Any) -> str:
    if not reasons:
        return "<span class='muted'>no reasons recorded</span>"
    if isinstance(reasons, str):
        reasons = [reasons]
    return "<ul class='reasons'>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"


def _gate_cell(gate: Mapping) -> str:
    passed = gate.get("passed")
    label = "passed" if passed else "failed"
    # A failed gate always says why (or that nothing was recorded); a pass only when it has notes.
    reasons = _reasons(gate.get("reasons")) if gate.get("reasons") or not passed else ""
    return f"<span class='{label}'>{label}</span>{reasons}"


def version_href(name: str, version: Any) -> str:
    """Relative link from the overview page to a version page."""
    return f"models/{quote(str(name), safe='')}/versions/{quote(str(version), safe='')}"


def overview_page(registry_uri: str, models: Sequence[Mapping], events: Sequence[Mapping]) -> str:
    """The overview: per model its versions with metrics, status, aliases, gate and decisions.

    Args:
        models: dicts with ``summary``, ``versions``, ``gate_history`` and ``decisions``.
        events: every registry event, oldest first.
    """
    body = [
        "<h1>StreamGuard Models</h1>",
        f"<p class='muted'>Registry: <code>{esc(registry_uri)}</code></p>",
    ]
    if not models:
        body.append("<p>No models registered yet. Run the <code>streamguard_training</code> DAG.</p>")
    for model in models:
        body.append(_model_section(model))
    body.append(_events_section(events))
    return _page("StreamGuard Models", "".join(body))


def _model_section(model: Mapping) -> str:
    summary = model["summary"]
    name, champion, deployed = summary["name"], summary.get("champion"), summary.get("deployed")
    head = (
        f"<h2 id='model-{esc(name)}'>{esc(name)} <span class='muted'>({esc(summary.get('model_type'))})</span>"
        + (f"<span class='badge champion'>champion v{esc(champion)}</span>" if champion is not None else "")
        + (f"<span class='badge deployed'>deployed v{esc(deployed)}</span>" if deployed is not None else "")
        + "</h2>"
        f"<p class='muted'>{summary['versions']} versions: {summary['registered']} registered, "
        f"{summary['rejected']} rejected by the gate.</p>"
    )
    header = "".join(
        f"<th>{esc(SPLIT_LABELS.get(split, split))} {esc(metric)}</th>" for split, metric in OVERVIEW_METRICS
    )
    rows = []
    for version in reversed(model["versions"]):
        metrics = version.get("metrics") or {}
        cells = "".join(
            f"<td class='num'>{esc(fmt((metrics.get(split) or {}).get(metric)))}</td>"
            for split, metric in OVERVIEW_METRICS
        )
        rows.append(
            "<tr>"
            f"<td><a href='{esc(version_href(name, version.get('version')))}'>v{esc(version.get('version'))}</a>"
            f"{_badges(version, champion, deployed)}</td>"
            f"<td>{esc(version.get('created_at'))}</td><td>{esc(version.get('training_job_name'))}</td>"
            f"<td>{esc(version.get('backend'))}</td>{cells}<td>{_gate_cell(version.get('gate') or {})}</td>"
            "</tr>"
        )
    table = (
        "<table class='versions'><thead><tr><th>version</th><th>created</th><th>training job</th><th>backend</th>"
        f"{header}<th>gate</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return head + _unreadable(model.get("unreadable_versions") or []) + table + _decisions_table(
        model.get("decisions") or [])


def _unreadable(broken: Sequence[Mapping]) -> str:
    """A warning naming each version record that could not be read (the rest are shown)."""
    if not broken:
        return ""
    items = "".join(f"<li>v{esc(b.get('version'))}: <code>{esc(b.get('uri'))}</code>: {esc(b.get('error'))}</li>"
                    for b in broken)
    return f"<div class='error unreadable'><p>Unreadable version records (not shown):</p><ul>{items}</ul></div>"


def _event_rows(events: Sequence[Mapping]) -> str:
    return "".join(
        f"<tr><td>{esc(e.get('created_at'))}</td><td>{esc(e.get('kind'))}</td>"
        f"<td>{_event_summary(e.get('payload') or {})}</td>"
        f"<td>{_reasons(_event_reasons(e.get('payload') or {}))}</td></tr>"
        for e in events
    )


_EVENT_HEAD = "<thead><tr><th>when</th><th>kind</th><th>what</th><th>reasons</th></tr></thead>"


def _decisions_table(decisions: Sequence[Mapping]) -> str:
    if not decisions:
        return "<h3>Promotion decisions</h3><p class='muted'>None recorded yet.</p>"
    return (
        "<h3>Promotion decisions</h3>"
        f"<table class='decisions'>{_EVENT_HEAD}<tbody>{_event_rows(decisions)}</tbody></table>"
    )


def _event_reasons(payload: Mapping) -> Any:
    """An event's reasons: ``reasons`` (decisions) or the single ``reason`` of an alias move."""
    return payload.get("reasons") or payload.get("reason")


def _event_summary(payload: Mapping) -> str:
    """The scalar fields of an event payload as ``key: value`` pairs (nested data is left to the API)."""
    keep = [
        f"{esc(k)}: {esc(fmt(v))}"
        for k, v in payload.items()
        if k not in ("reasons", "reason") and (v is None or isinstance(v, (str, int, float, bool)))
    ]
    return "<br>".join(keep) or "<span class='muted'>–</span>"


def _events_section(events: Sequence[Mapping]) -> str:
    if not events:
        return "<h2>Registry events</h2><p class='muted'>No events yet.</p>"
    shown = list(reversed(events))[:MAX_EVENTS_SHOWN]
    note = ""
    if len(events) > len(shown):
        note = f" (latest {MAX_EVENTS_SHOWN} of {len(events)}; all at <code>api/events</code>)"
    return (
        f"<h2>Registry events</h2><p class='muted'>Newest first{note}.</p>"
        f"<table class='events'>{_EVENT_HEAD}<tbody>{_event_rows(shown)}</tbody></table>"
    )


def version_page(
    version: Mapping,
    *,
    champion: int | None,
    deployed: int | None,
    plots: Mapping | None,
    report_error: str | None,
) -> str:
    """One version: record, metrics, gate decision, hyperparameters and the three charts."""
    name, number = version.get("model_name"), version.get("version")
    title = f"{name} v{number}"
    body = [
        "<p><a href='../../../'>&larr; all models</a></p>",
        f"<h1>{esc(title)}{_badges(version, champion, deployed)}</h1>",
        _record_table(version),
        "<h2>Metrics</h2>",
        _metrics_table(version.get("metrics") or {}),
        "<h2>Gate decision</h2>",
        _gate_section(version.get("gate") or {}),
    ]
    extra = version.get("extra") or {}
    if extra.get("promotion_reasons"):
        body.append("<h2>Champion/challenger decision</h2>" + _reasons(extra["promotion_reasons"]))
    body.append("<h2>Training report</h2>")
    body.append(_plots_section(plots, report_error))
    body.append("<h2>Hyperparameters</h2>" + _key_value_table(version.get("hyperparameters") or {}))
    if extra:
        body.append("<h2>Extra</h2><pre>" + esc(json.dumps(extra, indent=2, sort_keys=True)) + "</pre>")
    return _page(title, "".join(body))


def _record_table(version: Mapping) -> str:
    fields = ("model_type", "status", "created_at", "training_job_name", "backend", "artifact_uri",
              "artifact_sha256", "data_hash", "code_version")
    return _key_value_table({f: version.get(f) for f in fields})


def _key_value_table(values: Mapping) -> str:
    if not values:
        return "<p class='muted'>None.</p>"
    rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v if isinstance(v, str) else json.dumps(v, sort_keys=True))}</td></tr>"
        for k, v in values.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _metrics_table(metrics: Mapping) -> str:
    splits = [s for s in ("validation", "test") if isinstance(metrics.get(s), Mapping)]
    splits += sorted(s for s, v in metrics.items() if s not in splits and isinstance(v, Mapping))
    if not splits:
        return "<p class='muted'>No metrics recorded.</p>"
    header = "".join(f"<th>{esc(c)}</th>" for c in METRIC_COLUMNS)
    rows = "".join(
        f"<tr><th>{esc(s)}</th>"
        + "".join(f"<td class='num'>{esc(fmt(metrics[s].get(c)))}</td>" for c in METRIC_COLUMNS)
        + "</tr>"
        for s in splits
    )
    return f"<table class='metrics'><thead><tr><th>split</th>{header}</tr></thead><tbody>{rows}</tbody></table>"


def _gate_section(gate: Mapping) -> str:
    thresholds = gate.get("thresholds") or {}
    return (
        f"<p>{_gate_cell(gate)}</p>"
        + ("<h3>Thresholds</h3>" + _key_value_table(thresholds) if thresholds else "")
    )


def _plots_section(plots: Mapping | None, report_error: str | None) -> str:
    if report_error:
        return f"<p class='error'>Training report unavailable: {esc(report_error)}</p>"
    if not plots:
        return "<p class='muted'>No training report.</p>"
    charts = []
    if plots.get("history"):
        charts.append(learning_curves_svg(plots["history"]))
    else:
        charts.append("<p class='muted'>No history.json: no learning curves.</p>")
    matrix = plots.get("confusion_matrix")
    if matrix:
        charts.append(
            "<figure>" + confusion_matrix_svg(matrix["matrix"])
            + f"<figcaption class='muted'>from the {esc(matrix['source'])}</figcaption></figure>"
        )
    else:
        charts.append("<p class='muted'>No test confusion matrix recorded.</p>")
    roc = plots.get("roc")
    if roc and roc.get("points"):
        charts.append(
            "<figure>" + roc_curve_svg([tuple(p) for p in roc["points"]])
            + f"<figcaption class='muted'>{esc(roc['n'])} scored test predictions"
            + (f", {esc(roc['unscored'])} unscored left out" if roc.get("unscored") else "")
            + (f" from <code>{esc(plots['predictions_source'])}</code>"
               if plots.get("predictions_source") and plots.get("predictions_source") != plots.get("source") else "")
            + "</figcaption></figure>"
        )
    elif roc and roc.get("error"):
        charts.append(f"<p class='muted'>No ROC curve: {esc(roc['error'])}.</p>")
    else:
        charts.append("<p class='muted'>No test_predictions.jsonl: no ROC curve.</p>")
    missing = plots.get("missing_files") or []
    note = f"<p class='muted'>Source: <code>{esc(plots.get('source'))}</code>"
    note += f"; missing: {esc(', '.join(missing))}</p>" if missing else "</p>"
    return note + "<div class='plots'>" + "".join(charts) + "</div>"


def error_page(status_code: int, message: str, home: str = "./") -> str:
    """A small HTML page for 404 and other errors, with a relative link back to the overview."""
    return _page(
        f"{status_code} - StreamGuard Models",
        f"<h1>{status_code}</h1><p class='error'>{esc(message)}</p><p><a href='{esc(home)}'>all models</a></p>",
    )
