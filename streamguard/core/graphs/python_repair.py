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
"""

from __future__ import annotations

import ast
import textwrap
import warnings

_MAX_REPAIRS = 40


def tolerant_parse(code: str) -> tuple[ast.Module | None, bool]:
    """Parse with line repair (see module docstring). Returns (tree or None, parsed without repair).

    Normalising line ends, dropping NUL bytes and lone surrogates and dedenting do not count as
    repair; they only undo how the code was extracted or stored.
    """
    try:
        code.encode("utf-8")
    except UnicodeEncodeError:
        code = code.encode("utf-8", "replace").decode("utf-8")
    src = textwrap.dedent(code.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", ""))
    try:
        return _parse(src), True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    lines = src.split("\n")
    for _ in range(_MAX_REPAIRS):
        try:
            return _parse("\n".join(lines)), False
        except SyntaxError as e:
            if not _repair(lines, e):
                return None, False
        except (ValueError, RecursionError, MemoryError):
            return None, False
    return None, False


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
