"""Duplicate removal: exact and whitespace/comment-normalised copies, and conflicting labels.

Copies that agree on the label collapse to one kept record; each removed copy is reported with
the id of the kept one. Copies that disagree (same normalised code, both labels) cannot be
trusted either way: all of them go to quarantine as ``conflicting_labels``.

The kept copy is chosen by (id, file, line) so that the result does not depend on input order.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field

from streamguard.data.quarantine import QuarantineEntry
from streamguard.data.sourced import Sourced

# Tokens that matter for normalisation; everything else is copied through. String literals are
# matched first so that comment markers inside strings are left alone.
_PY_SCAN = re.compile(
    r'''(?P<str>[rRbBuUfF]{0,2}(?:"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))'''
    r'''|(?P<comment>\#[^\n]*)'''
    r'''|(?P<space>\s+)''')
_JAVA_SCAN = re.compile(
    r'''(?P<str>"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')'''
    r'''|(?P<comment>//[^\n]*|/\*[\s\S]*?\*/)'''
    r'''|(?P<space>\s+)''')
_WORD = re.compile(r"\w")


def normalize_code(code: str, language: str) -> str:
    """Drop comments and collapse whitespace outside string literals.

    A separating space is kept only between two word characters, so ``a+b`` and ``a + b``
    normalise alike while ``return x`` does not become ``returnx``.
    """
    scanner = _JAVA_SCAN if language == "java" else _PY_SCAN
    parts: list[str] = []
    pending_space = False
    pos = 0

    def emit(text: str) -> None:
        nonlocal pending_space
        if not text:
            return
        if pending_space and parts and _WORD.match(parts[-1][-1]) and _WORD.match(text[0]):
            parts.append(" ")
        pending_space = False
        parts.append(text)

    for m in scanner.finditer(code):
        emit(code[pos:m.start()])
        pos = m.end()
        if m.lastgroup == "str":
            emit(m.group())
        else:
            pending_space = True
    emit(code[pos:])
    return "".join(parts)


def dedup_key(record: dict) -> str:
    """Key under which two records count as the same code."""
    norm = normalize_code(record["code"], record["language"])
    return hashlib.sha256(f"{record['language']}\0{norm}".encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class DedupResult:
    """Outcome of :func:`deduplicate`."""

    kept: list[Sourced]
    duplicates: list[dict] = field(default_factory=list)   # rows for duplicates.jsonl
    conflicts: list[QuarantineEntry] = field(default_factory=list)
    exact: int = 0
    normalized: int = 0
    conflict_sets: int = 0


def _order(item: Sourced) -> tuple:
    return (item.id, item.file, item.line)


def deduplicate(items: list[Sourced]) -> DedupResult:
    """Remove duplicate records; quarantine every copy of code seen with both labels.

    Returns:
        kept records in input order, one row per removed copy (``kind`` exact or normalized,
        ``kept_id``), and quarantine entries for conflicting copies.
    """
    by_key: dict[str, list[Sourced]] = defaultdict(list)
    for item in items:
        by_key[dedup_key(item.record)].append(item)
    result = DedupResult(kept=[])
    kept_ids = set()
    for key, copies in by_key.items():
        if len(copies) == 1:
            kept_ids.add(id(copies[0]))
            continue
        labels = {c.record["label"] for c in copies}
        if len(labels) > 1:
            result.conflict_sets += 1
            ids = sorted({c.id for c in copies})
            for c in sorted(copies, key=_order):
                result.conflicts.append(QuarantineEntry(
                    c.file, c.line, "conflicting_labels",
                    f"conflicting labels: the same code (after normalising whitespace and comments) "
                    f"appears with labels 0 and 1 ({len(copies)} copies: {', '.join(ids[:5])}"
                    f"{', ...' if len(ids) > 5 else ''})",
                    record=c.record, extra={"duplicate_key": key[:16]}))
            continue
        ordered = sorted(copies, key=_order)
        keeper = ordered[0]
        kept_ids.add(id(keeper))
        for c in ordered[1:]:
            exact = c.record["code"] == keeper.record["code"]
            if exact:
                result.exact += 1
            else:
                result.normalized += 1
            result.duplicates.append({"file": c.file, "line": c.line, "id": c.id, "kept_id": keeper.id,
                                      "kind": "exact" if exact else "normalized",
                                      "kept_file": keeper.file, "kept_line": keeper.line,
                                      "record": c.record})
    result.kept = [item for item in items if id(item) in kept_ids]
    result.duplicates.sort(key=lambda d: (d["file"], d["line"]))
    result.conflicts.sort(key=lambda e: (e.file, e.line))
    return result
