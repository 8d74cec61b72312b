"""Error-tolerant parsing of Python source with ``ast``.

In this order (the result reports whether anything beyond step 1 was needed):
1. line ends are normalised and the code is dedented (functions cut out of a class body keep
   their indentation);
2. line repair, at most 40 rounds: the line a ``SyntaxError`` points at is re-indented to its
   predecessor's level ("unexpected indent"), or replaced by ``pass`` at its own indentation
   (anything else, e.g. Python 2 ``print "x"``); when that line is already neutral the culprit is
   earlier (an unclosed bracket) and the nearest non-neutral line above is replaced instead.
   Parsing is retried after each change; the graph then covers every line that survived.
If repair fails too, the caller falls back to a token chain (`tokens.py`).

Nesting deeper than CPython's own parser accepts (100 indentation levels, 200 nested brackets)
is cut: the too-deep block (or line) becomes ``pass`` and the code after it is kept; the caller
records the cut as a ``depth`` truncation. A ``RecursionError`` while building the syntax tree
(a 3,000-term expression at the default recursion limit) is raised to the caller, which retries
on a thread with a deep stack.
"""

from __future__ import annotations

import ast
import textwrap
import warnings

_MAX_REPAIRS = 40


def tolerant_parse(code: str) -> tuple[ast.Module | None, bool, bool]:
    """Parse with line repair (see module docstring).

    Returns (tree or None, parsed without repair, a too-deep part was cut). Normalising line
    ends, dropping NUL bytes and lone surrogates and dedenting do not count as repair; they only
    undo how the code was extracted or stored.

    Raises:
        RecursionError: the clean source is nested too deeply for the current recursion limit.
    """
    try:
        code.encode("utf-8")
    except UnicodeEncodeError:
        code = code.encode("utf-8", "replace").decode("utf-8")
    src = textwrap.dedent(code.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", ""))
    try:
        return _parse(src), True, False
    except (SyntaxError, ValueError, MemoryError):
        pass
    lines = src.split("\n")
    cut = False
    for _ in range(_MAX_REPAIRS):
        try:
            return _parse("\n".join(lines)), False, cut
        except SyntaxError as e:
            if _too_deep(e):
                if not _cut_deep(lines, e):
                    return None, False, True
                cut = True
            elif not _repair(lines, e):
                return None, False, cut
        except (ValueError, RecursionError, MemoryError):
            return None, False, cut
    return None, False, cut


def _too_deep(err: SyntaxError) -> bool:
    msg = err.msg or ""
    return "too many levels of indentation" in msg or "too many nested parentheses" in msg


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _cut_deep(lines: list[str], err: SyntaxError) -> bool:
    """Replace the block (or bracketed line) nested too deeply for CPython by ``pass``."""
    ln = err.lineno if err.lineno and 1 <= err.lineno <= len(lines) else 0
    if ln < 1:
        return False
    i = ln - 1
    if "parentheses" in (err.msg or ""):
        if lines[i].strip() == "pass":
            return False
        lines[i] = lines[i][: _indent(lines[i])] + "pass"
        return True
    # Indentation: cut from the outermost opener that is already 50 levels deep, so that what
    # is left stays well inside the limit; everything indented below it goes.
    deep = _indent(lines[i])
    k = i - 1
    while k > 0 and (not lines[k].strip() or _indent(lines[k]) > deep // 2):
        k -= 1
    if k < 0 or not lines[k].strip() or _indent(lines[k]) >= deep:
        return False
    base = _indent(lines[k])
    j = k + 1
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
        lines[j] = ""
        j += 1
    lines[k] = lines[k][:base] + "pass"
    return True


def _parse(src: str) -> ast.Module:
    with warnings.catch_warnings():  # e.g. SyntaxWarning for "invalid escape sequence" in old code
        warnings.simplefilter("ignore")
        return ast.parse(src)


def _repair(lines: list[str], err: SyntaxError) -> bool:
    """Change one line to get past ``err``; False when there is nothing left to change."""
    ln = err.lineno if err.lineno and 1 <= err.lineno <= len(lines) else len(lines)
    if ln < 1:
        return False
    i = ln - 1
    line = lines[i]
    indent = line[: len(line) - len(line.lstrip())]
    prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
    prev_indent = prev[: len(prev) - len(prev.lstrip())]
    msg = err.msg or ""
    if "unexpected indent" in msg or "unindent does not match" in msg:
        new = prev_indent + line.lstrip()
    elif "expected an indented block" in msg:
        new = prev_indent + "    pass"
    else:
        new = indent + "pass"
    if new == line:
        if line.strip() in ("pass", ""):
            # Already neutralised: the real culprit is earlier (e.g. an unclosed bracket).
            j = next((j for j in range(i - 1, -1, -1) if lines[j].strip() not in ("pass", "")), None)
            if j is None:
                return False
            lj = lines[j]
            lines[j] = lj[: len(lj) - len(lj.lstrip())] + "pass"
            return True
        new = indent + "pass"
    lines[i] = new
    return True
