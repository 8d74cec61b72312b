"""SARIF 2.1.0 for `streamguard scan`: what GitHub code scanning and IDE SARIF viewers read.

One `result` per finding: the CWE as `ruleId` (rules carry `security-severity` and CWE tags), the
sink line as the location, the function as a logical location, the taint path as a `codeFlow`
(source -> steps -> sink, one thread-flow location per line), the score as `rank` (0-100) and in
`properties`. The models (name, registry version, threshold, artifact sha256) are in the
driver's `properties`; unreadable files are `toolExecutionNotifications` of the invocation.
"""

from __future__ import annotations

from pathlib import Path

import streamguard
from streamguard.scanning.rules import RULES
from streamguard.scanning.scan import ScanResult

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
BASE_ID = "SRCROOT"


def _artifact(path: str) -> dict:
    p = Path(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    return {"uri": p.as_posix(), "uriBaseId": BASE_ID}


def _location(path: str, line: int, text: str | None = None) -> dict:
    region: dict = {"startLine": max(1, int(line))}
    if text:
        region["snippet"] = {"text": text}
    return {"physicalLocation": {"artifactLocation": _artifact(path), "region": region}}


def to_sarif(result: ScanResult, *, base_dir: str | Path | None = None) -> dict:
    """The SARIF log of a scan."""
    used = sorted({f.rule_id for f in result.findings})
    rules = []
    for rule_id in used:
        rule = RULES[rule_id]
        number = rule_id.split("-", 1)[1]
        rules.append({
            "id": rule_id, "name": rule.name,
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": f"{rule.title} ({rule_id}). Found by StreamGuard's learned models; "
                                        "the path shown is the taint flow from source to sink."},
            "helpUri": f"https://cwe.mitre.org/data/definitions/{number}.html",
            "defaultConfiguration": {"level": "error"},
            "properties": {"tags": ["security", f"external/cwe/cwe-{number}"], "security-severity": rule.severity,
                           "precision": "medium"},
        })
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = []
    for f in result.findings:
        path = f.unit.path.as_posix()
        lines = f.unit.code.splitlines()
        rel = f.line - f.unit.start
        sink_text = lines[rel].strip() if 0 <= rel < len(lines) else None
        how = (f"taint flows from line {f.flow[0]['line']} to the sink at line {f.line}" if f.flow
               else f"the {f.model} model flags the function")
        entry = {
            "ruleId": f.rule_id, "ruleIndex": index[f.rule_id], "level": f.level,
            "message": {"text": f"{RULES[f.rule_id].title} in {f.unit.name}(): {how} "
                                f"(P(vulnerable) {f.score:.2f}, {f.model_version})."},
            "locations": [{**_location(path, f.line, sink_text),
                           "logicalLocations": [{"name": f.unit.name, "kind": "function"}]}],
            "rank": round(100.0 * f.score, 2),
            "partialFingerprints": {"streamguardFunction/v1": f.fingerprint},
            "properties": {"score": f.score, "model": f.model, "model_version": f.model_version,
                           "scores": f.scores, "function": f.unit.name,
                           "function_lines": [f.unit.start, f.unit.end]},
        }
        if f.flow:
            entry["codeFlows"] = [{
                "message": {"text": f"source (line {f.flow[0]['line']}) to sink (line {f.flow[-1]['line']})"},
                "threadFlows": [{"locations": [
                    {"location": {**_location(path, step["line"], step["text"] or None),
                                  "message": {"text": f"{step['role']}: {step['text'] or step['kind']}"}},
                     "kinds": [{"source": "source", "sink": "sink"}.get(step["role"], "taint")],
                     "executionOrder": i}
                    for i, step in enumerate(f.flow)]}],
            }]
        results.append(entry)
    notifications = [{"level": "error", "message": {"text": e["reason"]},
                      "locations": [{"physicalLocation": {"artifactLocation": _artifact(e["file"])}}]}
                     for e in result.errors]
    notifications += [{"level": "note", "message": {"text": n["reason"]},
                       "locations": [{"physicalLocation": {"artifactLocation": _artifact(n["file"])}}]}
                      for n in result.notes]
    run = {
        "tool": {"driver": {
            "name": "StreamGuard", "version": streamguard.__version__, "semanticVersion": streamguard.__version__,
            "informationUri": "https://cwe.mitre.org/",
            "rules": rules,
            "properties": {"models": result.models},
        }},
        "invocations": [{"executionSuccessful": not result.errors, "toolExecutionNotifications": notifications,
                         "properties": result.summary()}],
        "results": results,
        "columnKind": "utf16CodeUnits",
    }
    if base_dir is not None:
        run["originalUriBaseIds"] = {BASE_ID: {"uri": Path(base_dir).resolve().as_uri() + "/"}}
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
