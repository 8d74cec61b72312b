"""SQL counterfactuals for Python: string-built queries <-> parameterized ``execute`` calls.

``make_parameterized`` rewrites every query that is built by concatenation, %-formatting,
``str.format`` or an f-string and passed to ``<obj>.execute(query)`` — directly or through one
variable assigned once — into ``<obj>.execute("... = %s", (value,))``. If any string-built
query is left that it cannot rewrite, it returns None: the result would still be vulnerable.

``make_concatenated`` goes the other way for ``<obj>.execute("... = %s", (value,))`` calls whose
bound values are not constants (a constant bound value would not make a vulnerable variant).

Both edit the source text at the AST node positions, so the rest of the code stays as written.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import string

SINKS = frozenset({"execute"})
SQL_HINT = re.compile(r"(?i)\b(select|insert|update|delete|replace|where|values|from|into|set)\b")
_PERCENT_SPEC = re.compile(r"%(\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?([sdifrxXeEgGcaou%])")
_PARAM_MARK = re.compile(r"%s|%d|\?")

Part = str | ast.expr   # a literal piece of the query or a value spliced into it


def parses(code: str) -> bool:
    """True when ``code`` is valid Python."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


class _Source:
    """Byte-offset view of the code (ast columns are UTF-8 byte offsets)."""

    def __init__(self, code: str):
        self.data = code.encode("utf-8")
        self.line_start = [0]
        for i, b in enumerate(self.data):
            if b == 0x0A:
                self.line_start.append(i + 1)

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (self.line_start[node.lineno - 1] + node.col_offset,
                self.line_start[node.end_lineno - 1] + node.end_col_offset)

    def text(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.data[a:b].decode("utf-8")

    def apply(self, edits: list[tuple[tuple[int, int], str]]) -> str:
        out = self.data
        for (a, b), new in sorted(edits, key=lambda e: e[0][0], reverse=True):
            out = out[:a] + new.encode("utf-8") + out[b:]
        return out.decode("utf-8")


def _parts(node: ast.expr) -> list[Part] | None:
    """Split a string-building expression into literal pieces and spliced values; None if not one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts: list[Part] = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(v.value)
            elif isinstance(v, ast.FormattedValue) and v.conversion == -1 and v.format_spec is None:
                parts.append(v.value)
            else:
                return None
        return parts
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _parts(node.left), _parts(node.right)
        if left is None and right is None:
            return None
        return (left if left is not None else [_unwrap_str(node.left)]) + \
               (right if right is not None else [_unwrap_str(node.right)])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _is_str(node.left):
        values = list(node.right.elts) if isinstance(node.right, ast.Tuple) else [node.right]
        return _percent_parts(node.left.value, values)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and _is_str(node.func.value)):
        return _format_parts(node.func.value.value, node.args, node.keywords)
    return None


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _unwrap_str(node: ast.expr) -> ast.expr:
    """``str(x)`` spliced into a query binds ``x``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str"
            and len(node.args) == 1 and not node.keywords):
        return node.args[0]
    return node


def _percent_parts(template: str, values: list[ast.expr]) -> list[Part] | None:
    parts: list[Part] = []
    pos, used = 0, 0
    buf = ""
    for m in _PERCENT_SPEC.finditer(template):
        buf += template[pos:m.start()]
        pos = m.end()
        if m.group(2) == "%":
            buf += "%"
            continue
        if m.group(1) or used >= len(values):
            return None  # named placeholders / too few values: not a simple case
        parts += [buf, values[used]]
        buf = ""
        used += 1
    if used != len(values) or any(isinstance(v, ast.Starred) for v in values):
        return None
    return parts + [buf + template[pos:]]


def _format_parts(template: str, args: list[ast.expr], keywords: list[ast.keyword]) -> list[Part] | None:
    kw = {k.arg: k.value for k in keywords if k.arg}
    if len(kw) != len(keywords) or any(isinstance(a, ast.Starred) for a in args):
        return None
    parts: list[Part] = []
    auto = 0
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, name, spec, conv in pieces:
        parts.append(literal)
        if name is None:
            continue
        if spec or conv:
            return None
        if name == "":
            if auto >= len(args):
                return None
            parts.append(args[auto])
            auto += 1
        elif name.isdigit() and int(name) < len(args):
            parts.append(args[int(name)])
        elif name in kw:
            parts.append(kw[name])
        else:
            return None
    return parts


def _to_template(parts: list[Part], mark: str, src: _Source) -> tuple[str, list[str]] | None:
    """Join literal pieces with bind markers; strip quotes around spliced values.

    Returns (template, value sources), or None when a value sits inside a larger quoted literal
    (``LIKE '%x` + v + `%'``), which has no one-to-one parameterized form.
    """
    merged: list[Part] = []
    for p in parts:  # merge adjacent literals
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    if not any(isinstance(p, str) and SQL_HINT.search(p) for p in merged):
        return None
    values = [p for p in merged if not isinstance(p, str)]
    if not values:
        return None
    out = ""
    for i, p in enumerate(merged):
        if isinstance(p, str):
            out += p.replace("%", "%%") if mark == "%s" else p
            continue
        nxt = merged[i + 1] if i + 1 < len(merged) and isinstance(merged[i + 1], str) else ""
        if out and out[-1] in "'\"" and nxt[:1] == out[-1]:
            out = out[:-1]
            merged[i + 1] = nxt[1:]
        elif out.count("'") % 2 or (nxt[:1].isalnum() or nxt[:1] == "%") or (out[-1:].isalnum()):
            return None
        out += mark
    return out, [src.text(v) for v in values]


def _bind_mark(code: str) -> str:
    return "?" if re.search(r"sqlite|execute\(\s*[rbuRBU]?['\"][^'\"]*\?", code) else "%s"


def _sink_calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in SINKS and n.args]


def _assignments(tree: ast.AST) -> dict[str, list[ast.AST]]:
    out: dict[str, list[ast.AST]] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append(n)
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)) and isinstance(n.target, ast.Name):
            out.setdefault(n.target.id, []).append(n)
    return out


def make_parameterized(code: str) -> str | None:
    """Rewrite every string-built query passed to ``.execute`` into a parameterized call."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    src, mark, assigns = _Source(code), _bind_mark(code), _assignments(tree)
    edits: list[tuple[tuple[int, int], str]] = []
    for call in _sink_calls(tree):
        if len(call.args) != 1 or call.keywords:
            continue  # already has parameters (or keyword arguments we do not model)
        arg = call.args[0]
        func = src.text(call.func)
        built = _parts(arg)
        if built is not None:
            t = _to_template(built, mark, src)
            if t is None:
                if len(built) > 1:
                    return None  # a string-built query we cannot rewrite: stays vulnerable
                continue
            edits.append((src.span(call), f"{func}({json.dumps(t[0], ensure_ascii=False)}, {_tuple(t[1])})"))
            continue
        if isinstance(arg, ast.Name):
            defs = assigns.get(arg.id, [])
            value = defs[0].value if len(defs) == 1 and isinstance(defs[0], ast.Assign) else None
            built = _parts(value) if value is not None else None
            if built is None or len(built) == 1:
                if any(isinstance(d, ast.AugAssign) for d in defs):
                    return None  # query grown with += : not modelled
                continue
            t = _to_template(built, mark, src)
            if t is None or defs[0].lineno > call.lineno:
                return None
            edits.append((src.span(value), json.dumps(t[0], ensure_ascii=False)))
            edits.append((src.span(call), f"{func}({arg.id}, {_tuple(t[1])})"))
    if not edits or _overlapping(edits):
        return None
    return src.apply(edits)


def _tuple(values: list[str]) -> str:
    return f"({values[0]},)" if len(values) == 1 else f"({', '.join(values)})"


def _overlapping(edits: list[tuple[tuple[int, int], str]]) -> bool:
    spans = sorted(e[0] for e in edits)
    return any(spans[i][1] > spans[i + 1][0] for i in range(len(spans) - 1))


def _constant_names(assigns: dict[str, list[ast.AST]]) -> set[str]:
    """Names only ever assigned literals: binding them does not carry outside input."""
    return {name for name, defs in assigns.items()
            if all(isinstance(getattr(d, "value", None), ast.Constant) for d in defs)}


def make_concatenated(code: str) -> str | None:
    """Rewrite ``.execute("... %s", (v,))`` calls into string-built queries (a vulnerable variant)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    src, assigns = _Source(code), _assignments(tree)
    constants = _constant_names(assigns)
    style = int(hashlib.sha256(code.encode("utf-8")).hexdigest(), 16) % 3
    edits = []
    for call in _sink_calls(tree):
        if len(call.args) != 2 or call.keywords or not _is_str(call.args[0]):
            continue
        params = call.args[1]
        if not isinstance(params, (ast.Tuple, ast.List)) or not params.elts:
            continue
        values = params.elts
        if any(isinstance(v, (ast.Constant, ast.Starred)) or (isinstance(v, ast.Name) and v.id in constants)
               for v in values):
            continue
        pieces = _PARAM_MARK.split(call.args[0].value)
        if len(pieces) - 1 != len(values) or not SQL_HINT.search(call.args[0].value):
            continue
        if _PARAM_MARK.search(call.args[0].value).group() != "?":
            pieces = [p.replace("%%", "%") for p in pieces]
        query = _render_built(pieces, [src.text(v) for v in values], style)
        edits.append((src.span(call), f"{src.text(call.func)}({query})"))
    if not edits:
        return None
    return src.apply(edits)


def _render_built(pieces: list[str], values: list[str], style: int) -> str:
    """A string-building expression: quoted values via concatenation, % or f-string."""
    last = len(pieces) - 1
    quoted = [("'" if i else "") + p + ("'" if i < last else "") for i, p in enumerate(pieces)]
    if style == 1:
        template = "%s".join(q.replace("%", "%%") for q in quoted)
        tup = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
        return f"{json.dumps(template, ensure_ascii=False)} % {tup}"
    if style == 2 and not any(re.search(r"[\"'\\{}]", v) for v in values):
        body = "".join(json.dumps(q, ensure_ascii=False)[1:-1].replace("{", "{{").replace("}", "}}") + ("{" + v + "}" if i < len(values) else "")
                       for i, (q, v) in enumerate(zip(quoted, values + [""])))
        return f'f"{body}"'
    out = json.dumps(quoted[0], ensure_ascii=False)
    for v, q in zip(values, quoted[1:]):
        out += f" + str({v}) + {json.dumps(q, ensure_ascii=False)}"
    return out
