"""Automatic SQL-injection counterfactuals for Python and Java, validated by re-parsing.

A vulnerable record (label 1) whose string-built queries can all be rewritten into parameterized
ones yields a safe twin (label 0); a safe record with parameterized queries over non-constant
values yields a vulnerable twin (label 1). Only records about SQL injection (``cwe`` CWE-89 or
no cwe) are considered: rewriting the query of a record labelled for another weakness would not
change what makes it vulnerable.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamguard.data.counterfactuals import java_sql, python_sql

SQL_CWES = (None, "", "CWE-89")

_REWRITERS = {
    "python": (python_sql.make_parameterized, python_sql.make_concatenated, python_sql.parses),
    "java": (java_sql.make_parameterized, java_sql.make_concatenated, java_sql.parses),
}


@dataclass(frozen=True)
class AutoCounterfactual:
    """A generated twin: ``code`` with ``label``; ``valid`` False when it failed to re-parse."""

    code: str
    label: int
    valid: bool


def parses(code: str, language: str) -> bool:
    """Re-parse check: ``ast.parse`` for Python, tree-sitter (no ERROR/MISSING node) for Java."""
    return _REWRITERS[language][2](code)


def auto_counterfactual(code: str, language: str, label: int, cwe: str | None = None) -> AutoCounterfactual | None:
    """The opposite-label SQL twin of one record, or None when no simple rewrite applies."""
    if language not in _REWRITERS or cwe not in SQL_CWES:
        return None
    to_safe, to_vulnerable, check = _REWRITERS[language]
    new = to_safe(code) if label == 1 else to_vulnerable(code)
    if new is None or new.strip() == code.strip():
        return None
    return AutoCounterfactual(new, 1 - label, check(new))
