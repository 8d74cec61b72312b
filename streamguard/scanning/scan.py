"""Scan files: extract functions with the featurizer's parsers, score them with the models, collect findings."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from streamguard.core import locate
from streamguard.scanning.discover import discover
from streamguard.scanning.rules import RULES, cwe_for_sink, sql_call_line

LEVELS = ("note", "warning", "error")   # SARIF result levels, least to most severe
ERROR_SCORE = 0.9                       # findings scoring at least this are `error`, the rest `warning`
BATCH = 64


@dataclass
class Unit:
    """One function (or a whole file without functions) to score."""

    path: Path
    language: str
    name: str
    start: int      # first line in the file
    end: int
    code: str

    @property
    def key(self) -> str:
        return f"{self.path.as_posix()}:{self.start}:{self.name}"


@dataclass
class Finding:
    unit: Unit
    rule_id: str
    level: str
    score: float
    line: int
    model: str                # model type that raised it ("gnn" / "transformer")
    model_version: str
    scores: dict[str, float]  # every model's score for this function
    flow: list[dict] = field(default_factory=list)  # [{"line", "kind", "role", "text"}], source -> sink

    def to_dict(self) -> dict:
        return {"file": self.unit.path.as_posix(), "line": self.line, "function": self.unit.name,
                "function_lines": [self.unit.start, self.unit.end], "rule": self.rule_id, "level": self.level,
                "score": self.score, "model": self.model, "model_version": self.model_version,
                "scores": self.scores, "taint_path": self.flow, "fingerprint": self.fingerprint}

    @property
    def fingerprint(self) -> str:
        """Stable across line shifts: file, function name, rule and the function's code."""
        text = "\0".join([self.unit.path.as_posix(), self.unit.name, self.rule_id, self.unit.code])
        return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)      # {"file", "reason"}: unreadable, or unscorable
    notes: list[dict] = field(default_factory=list)       # {"file", "reason"}: scanned, with a caveat
    files: int = 0
    functions: int = 0
    ignored: int = 0
    vendored: int = 0
    seconds: float = 0.0
    models: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        by_level = {lvl: sum(f.level == lvl for f in self.findings) for lvl in LEVELS}
        return {"files": self.files, "functions": self.functions, "findings": len(self.findings),
                "by_level": by_level, "errors": len(self.errors), "ignored_files": self.ignored,
                "vendored_dirs": self.vendored, "seconds": round(self.seconds, 3),
                "functions_per_second": round(self.functions / self.seconds, 1) if self.seconds else None}


def read_units(path: Path, language: str) -> tuple[list[Unit], str | None]:
    """The functions of one file, and a note when the file was scanned whole (no functions / no parse)."""
    raw = path.read_bytes()
    code = raw.decode("utf-8")  # UnicodeDecodeError: reported by the caller as unreadable
    note = None
    try:
        funcs = list(locate.iter_functions(code, language))
    except SyntaxError as exc:
        funcs, note = [], f"does not parse as Python (line {exc.lineno}: {exc.msg}); scanned as one unit"
    if not funcs:
        if code.strip():
            note = note or "no functions found; scanned as one unit"
            return [Unit(path, language, "<module>", 1, max(1, code.count("\n") + 1), code)], note
        return [], None
    return [Unit(path, language, name, start, end, text) for name, start, end, text in funcs], note


def _level(score: float) -> str:
    return "error" if score >= ERROR_SCORE else "warning"


def _gnn_finding(unit: Unit, pred: dict, scores: dict, lines: list[str]) -> Finding:
    flow = []
    rule = "CWE-20"
    line = unit.start
    if pred.get("taint_paths"):
        path = pred["taint_paths"][0]
        for step in path:
            if step["line"] is None:
                continue
            file_line = unit.start + step["line"] - 1
            text = lines[step["line"] - 1].strip() if 0 < step["line"] <= len(lines) else ""
            if flow and flow[-1]["line"] == file_line:
                if step["role"] != "step":
                    flow[-1]["role"] = step["role"]
                continue
            flow.append({"line": file_line, "role": step["role"], "kind": step["kind"], "text": text})
        sink = path[-1]
        if sink["line"] is not None:
            line = unit.start + sink["line"] - 1
            rule = cwe_for_sink(lines[sink["line"] - 1] if sink["line"] <= len(lines) else "")
    return Finding(unit, rule, _level(pred["score"]), pred["score"], line, "gnn", pred["model_version"], scores, flow)


def _transformer_finding(unit: Unit, pred: dict, scores: dict, lines: list[str]) -> Finding:
    # The SQL Intent Transformer is a CWE-89 model; it has no path, so point at the first query call.
    line = sql_call_line(lines, unit.start)
    return Finding(unit, "CWE-89", _level(pred["score"]), pred["score"], line, "transformer",
                   pred["model_version"], scores)


def scan_paths(paths: list[str | Path], handlers: list[Any], *,
               progress: Callable[[int, int], None] | None = None) -> ScanResult:
    """Scan files and directories with one or two loaded models (`streamguard.serving.models.Handler`)."""
    t0 = time.perf_counter()
    result = ScanResult(models=[{"name": h.name, "model_type": h.model_type, "model_version": h.version,
                                 "threshold": h.model.threshold,
                                 "artifact_sha256": (h.record or {}).get("artifact_sha256")} for h in handlers])
    found = discover(paths)
    result.ignored, result.vendored = len(found.ignored), len(found.vendored)
    for path, reason in found.missing:
        result.errors.append({"file": path.as_posix(), "reason": reason})
    units: list[Unit] = []
    for path, language in found.files:
        try:
            file_units, note = read_units(path, language)
        except (OSError, UnicodeDecodeError) as exc:
            reason = f"cannot read: {exc.strerror}" if isinstance(exc, OSError) else f"not UTF-8 text: {exc.reason}"
            result.errors.append({"file": path.as_posix(), "reason": reason})
            continue
        result.files += 1
        if note:
            result.notes.append({"file": path.as_posix(), "reason": note})
        units.extend(file_units)
    result.functions = len(units)
    preds: dict[str, list[dict]] = {h.model_type: [] for h in handlers}
    for start in range(0, len(units), BATCH):
        chunk = units[start:start + BATCH]
        instances = [{"id": u.key, "code": u.code, "language": u.language} for u in chunk]
        for h in handlers:
            preds[h.model_type].extend(h.predict(instances))
        if progress:
            progress(min(start + BATCH, len(units)), len(units))
    for i, unit in enumerate(units):
        per_model = {mt: rows[i] for mt, rows in preds.items()}
        for mt, p in per_model.items():
            if p.get("error"):
                result.errors.append({"file": unit.path.as_posix(), "reason": f"{unit.name} (line {unit.start}): "
                                                                              f"{mt}: {p['error']}"})
        scores = {mt: p["score"] for mt, p in per_model.items() if p.get("score") is not None}
        lines = unit.code.splitlines()
        gnn, tr = per_model.get("gnn"), per_model.get("transformer")
        # One finding per function: the GNN's (it knows the path and the sink) when it flags it.
        if gnn is not None and gnn.get("pred") == 1:
            result.findings.append(_gnn_finding(unit, gnn, scores, lines))
        elif tr is not None and tr.get("pred") == 1:
            result.findings.append(_transformer_finding(unit, tr, scores, lines))
    result.findings.sort(key=lambda f: (f.unit.path.as_posix(), f.line))
    result.seconds = time.perf_counter() - t0
    return result


def exit_code(result: ScanResult, fail_on: str) -> int:
    """0: nothing at or above ``fail_on``; 1: findings at or above it; 2: files that could not be scanned."""
    if result.errors:
        return 2
    if fail_on == "none":
        return 0
    floor = LEVELS.index(fail_on)
    return 1 if any(LEVELS.index(f.level) >= floor for f in result.findings) else 0


__all__ = ["RULES", "Finding", "ScanResult", "Unit", "exit_code", "scan_paths"]
