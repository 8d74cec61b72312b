"""The last task of each DAG: what the run did, in the task log and as ``summary.json`` in the run folder."""

from __future__ import annotations

import json

from streamguard import storage
from streamguard.pipeline.records import run_uri


def summarize(key: str, results: list[dict]) -> dict:
    """Markdown summary for the task log plus a JSON artifact in the run folder."""
    lines = ["| model | version | status | val acc | test acc | test F1 | test FPR | gate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r:
            continue
        m = r.get("metrics", {})
        val, test = m.get("validation", {}), m.get("test", {})
        gate = r.get("gate", {})

        def f(x):
            return "-" if x is None else f"{x:.4f}"

        lines.append(
            f"| {r.get('model_name')} | {r.get('version')} | {r.get('status')} | {f(val.get('accuracy'))} | "
            f"{f(test.get('accuracy'))} | {f(test.get('f1'))} | {f(test.get('fpr'))} | "
            f"{'pass' if gate.get('passed') else 'fail: ' + '; '.join(gate.get('reasons', []))} |"
        )
    markdown = "\n".join(lines)
    uri = run_uri(key, "summary.json")
    storage.write_text(uri, json.dumps({"results": results, "markdown": markdown}, indent=2, default=str))
    return {"summary_uri": uri, "markdown": markdown}


def summarize_retraining(key: str, outcomes: list[dict]) -> dict:
    """One line per model saying what this run did (skipped and why, or the version it recorded),
    in the task log and as `summary.json` in the run folder."""
    lines = []
    for o in sorted(outcomes, key=lambda o: o.get("model_type", "")):
        model = o.get("model_type", "?")
        if "challenger_version" in o:
            what = "first model (bootstrap)" if o.get("mode") == "bootstrap" else "challenger"
            verdict = "promoted to champion" if o.get("promoted") else "not promoted"
            lines.append(f"{model}: {what} v{o['challenger_version']} {verdict}: " + "; ".join(o.get("reasons") or []))
        else:
            lines.append(f"{model}: skipped: {o.get('skipped_reason') or '; '.join(o.get('reasons') or [])}")
    text = "\n".join(["retraining summary:", *lines])
    uri = run_uri(key, "summary.json")
    storage.write_text(uri, json.dumps({"outcomes": outcomes, "text": text}, indent=2, default=str))
    return {"summary_uri": uri, "text": text}
