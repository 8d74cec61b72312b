"""SQL counterfactuals for Java: concatenated JDBC queries <-> ``PreparedStatement`` with bound values.

``make_parameterized`` handles the two shapes of string-built JDBC queries:

* ``stmt.executeQuery("... '" + v + "'")`` (also ``executeUpdate``/``execute``) where
  ``stmt = conn.createStatement()``: a ``PreparedStatement`` on ``conn`` is declared before the
  statement, its values bound with ``setString``/``setObject``, and the call becomes
  ``ps.executeQuery()``;
* ``ps = conn.prepareStatement("... '" + v + "'")``: the query becomes ``"... ?"`` and
  ``ps.setString(1, v)`` follows the statement.

If any string-built query is left that it cannot rewrite, it returns None.

``make_concatenated`` goes the other way: ``conn.prepareStatement("... ?")`` with ``ps.setX(i, v)``
statements in the same block becomes ``conn.prepareStatement("... '" + v + "'")`` with the setters
removed — a prepared statement built from a concatenated string, which is still injectable. It
skips bound values that are literals or variables assigned a literal.
"""

from __future__ import annotations

import re
from functools import lru_cache

EXEC_SINKS = frozenset({"executeQuery", "executeUpdate", "execute", "executeLargeUpdate"})
SQL_HINT = re.compile(r"(?i)\b(select|insert|update|delete|replace|where|values|from|into|set)\b")
_STATEMENTS = frozenset({"expression_statement", "local_variable_declaration", "return_statement"})
_NUMERIC_SETTERS = frozenset({"setInt", "setLong", "setShort", "setByte", "setDouble", "setFloat",
                              "setBigDecimal", "setBoolean"})


@lru_cache(maxsize=1)
def _parser():
    import tree_sitter_java
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_java.language()))


def _parse(code: str):
    return _parser().parse(code.encode("utf-8")).root_node


def parses(code: str) -> bool:
    """True when tree-sitter parses ``code`` as Java without ERROR or MISSING nodes."""
    return not _parse(code).has_error


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _text(node) -> str:
    return node.text.decode("utf-8")


def _args(invocation) -> list:
    args = invocation.child_by_field_name("arguments")
    return [c for c in args.named_children if c.type not in ("comment", "line_comment", "block_comment")] \
        if args is not None else []


def _concat_parts(node) -> list | None:
    """Flatten a ``+`` chain into raw literal texts (str) and value nodes; None if not a string chain."""
    if node.type == "parenthesized_expression" and node.named_child_count == 1:
        return _concat_parts(node.named_children[0])
    if node.type == "string_literal":
        raw = _text(node)
        return [raw[1:-1]] if not raw.startswith('"""') else None
    if node.type == "binary_expression" and _text(node.child_by_field_name("operator")) == "+":
        left = _concat_parts(node.child_by_field_name("left"))
        right = _concat_parts(node.child_by_field_name("right"))
        if left is None and right is None:
            return None
        return (left or [node.child_by_field_name("left")]) + (right or [node.child_by_field_name("right")])
    return None


def _template(parts: list) -> tuple[str, list[tuple[str, bool]]] | None:
    """(template with ``?``, [(value source, was quoted)]) or None when not one-to-one."""
    merged: list = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    if not any(isinstance(p, str) and SQL_HINT.search(p) for p in merged):
        return None
    values: list[tuple[str, bool]] = []
    out = ""
    for i, p in enumerate(merged):
        if isinstance(p, str):
            out += p
            continue
        nxt = merged[i + 1] if i + 1 < len(merged) and isinstance(merged[i + 1], str) else ""
        quoted = out.endswith("'") and nxt.startswith("'")
        if quoted:
            out = out[:-1]
            merged[i + 1] = nxt[1:]
        elif out.count("'") % 2 or nxt[:1].isalnum() or out[-1:].isalnum():
            return None
        out += "?"
        values.append((_text(p), quoted))
    return (out, values) if values else None


def _statement_of(node):
    """The statement holding ``node`` when it sits directly in a block; else None."""
    while node is not None and node.type not in _STATEMENTS:
        node = node.parent
    if node is None or node.parent is None or node.parent.type not in ("block", "switch_block_statement_group"):
        return None
    return node


def _indent(code_bytes: bytes, start: int) -> str:
    line_start = code_bytes.rfind(b"\n", 0, start) + 1
    prefix = code_bytes[line_start:start].decode("utf-8")
    return prefix if not prefix.strip() else " " * (len(prefix) - len(prefix.lstrip()))


def _setters(var: str, values: list[tuple[str, bool]], indent: str) -> str:
    return "".join(f"\n{indent}{var}.{'setString' if quoted else 'setObject'}({i}, {src});"
                   for i, (src, quoted) in enumerate(values, start=1))


def _fresh_name(code: str, taken: set[str]) -> str:
    n = 1
    while f"sgPrepared{n}" in code or f"sgPrepared{n}" in taken:
        n += 1
    taken.add(f"sgPrepared{n}")
    return f"sgPrepared{n}"


def _assigned_var(stmt) -> str | None:
    """The variable a statement assigns or declares (``x = ...`` / ``T x = ...``)."""
    if stmt.type == "local_variable_declaration":
        decl = stmt.child_by_field_name("declarator")
        name = decl.child_by_field_name("name") if decl is not None else None
        return _text(name) if name is not None else None
    expr = stmt.named_children[0] if stmt.named_children else None
    if expr is not None and expr.type == "assignment_expression":
        left = expr.child_by_field_name("left")
        if left is not None and left.type == "identifier":
            return _text(left)
    return None


def make_parameterized(code: str) -> str | None:
    """Rewrite every concatenated JDBC query into a bound ``PreparedStatement``; None if not possible."""
    root = _parse(code)
    if root.has_error:
        return None
    data = code.encode("utf-8")
    edits: dict[int, tuple[int, str]] = {}   # statement start -> (statement end, replacement)
    taken: set[str] = set()
    for inv in _walk(root):
        if inv.type != "method_invocation":
            continue
        name = _text(inv.child_by_field_name("name"))
        args = _args(inv)
        if name not in EXEC_SINKS | {"prepareStatement", "addBatch"} or len(args) != 1:
            continue
        parts = _concat_parts(args[0])
        if parts is None or len(parts) == 1:
            continue  # a constant query
        tmpl = _template(parts)
        stmt = _statement_of(inv)
        obj = inv.child_by_field_name("object")
        if tmpl is None or stmt is None or obj is None or stmt.start_byte in edits or name == "addBatch":
            return None
        query, values = tmpl
        indent = _indent(data, stmt.start_byte)
        a0, a1 = args[0].start_byte - stmt.start_byte, args[0].end_byte - stmt.start_byte
        s_bytes = data[stmt.start_byte:stmt.end_byte]
        literal = f'"{query}"'
        if name == "prepareStatement":
            var = _assigned_var(stmt)
            if var is None:
                return None
            new = (s_bytes[:a0] + literal.encode() + s_bytes[a1:]).decode("utf-8") + _setters(var, values, indent)
        else:
            recv = _text(obj)
            m = re.search(rf"\b{re.escape(recv)}\s*=\s*([\w.]+(?:\(\))?)\s*\.\s*createStatement\s*\(\s*\)", code)
            if m is None:
                return None
            ps = _fresh_name(code, taken)
            call0, call1 = inv.start_byte - stmt.start_byte, inv.end_byte - stmt.start_byte
            rewritten = (s_bytes[:call0] + f"{ps}.{name}()".encode() + s_bytes[call1:]).decode("utf-8")
            new = (f"PreparedStatement {ps} = {m.group(1)}.prepareStatement({literal});"
                   + _setters(ps, values, indent) + f"\n{indent}" + rewritten)
        edits[stmt.start_byte] = (stmt.end_byte, new)
    if not edits:
        return None
    out = data
    for start in sorted(edits, reverse=True):
        end, new = edits[start]
        out = out[:start] + new.encode("utf-8") + out[end:]
    return out.decode("utf-8")


_LITERAL_TYPES = frozenset({"string_literal", "decimal_integer_literal", "decimal_floating_point_literal",
                            "true", "false", "null_literal", "character_literal", "hex_integer_literal"})


def _literal_names(root) -> set[str]:
    """Variables only ever assigned literals (binding them carries no outside input)."""
    kinds: dict[str, set[bool]] = {}
    for n in _walk(root):
        if n.type == "assignment_expression":
            left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
        elif n.type == "variable_declarator":
            left, right = n.child_by_field_name("name"), n.child_by_field_name("value")
        else:
            continue
        if left is None or left.type != "identifier" or right is None:
            continue
        kinds.setdefault(_text(left), set()).add(right.type in _LITERAL_TYPES)
    return {name for name, k in kinds.items() if k == {True}}


def make_concatenated(code: str) -> str | None:
    """Rewrite ``prepareStatement("... ?")`` + setters into a concatenated query; None if not possible."""
    root = _parse(code)
    if root.has_error:
        return None
    data = code.encode("utf-8")
    literals = _literal_names(root)
    edits: list[tuple[int, int, str]] = []
    for inv in _walk(root):
        if inv.type != "method_invocation" or _text(inv.child_by_field_name("name")) != "prepareStatement":
            continue
        args = _args(inv)
        if len(args) != 1 or args[0].type != "string_literal" or _text(args[0]).startswith('"""'):
            continue
        raw = _text(args[0])[1:-1]
        stmt = _statement_of(inv)
        var = _assigned_var(stmt) if stmt is not None else None
        if var is None or "?" not in raw or not SQL_HINT.search(raw):
            continue
        setters = _bound_setters(stmt, var)
        marks = raw.count("?")
        if setters is None or sorted(setters) != list(range(1, marks + 1)):
            continue
        if any(src in literals or re.fullmatch(r"\"[^\"]*\"|-?\d[\w.]*|null|true|false", src)
               for _, src, _ in setters.values()):
            continue
        pieces = raw.split("?")
        new_lit = '"' + pieces[0]
        for i, piece in enumerate(pieces[1:], start=1):
            setter, src, _ = setters[i]
            q = "" if setter in _NUMERIC_SETTERS else "'"
            new_lit += f'{q}" + {src} + "{q}{piece}'
        new_lit += '"'
        edits.append((args[0].start_byte, args[0].end_byte, new_lit))
        for _, _, node in setters.values():
            line_start = data.rfind(b"\n", 0, node.start_byte)
            edits.append((line_start if line_start >= 0 else node.start_byte, node.end_byte, ""))
    if not edits:
        return None
    out = data
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new.encode("utf-8") + out[end:]
    return out.decode("utf-8")


def _bound_setters(stmt, var: str) -> dict[int, tuple[str, str, object]] | None:
    """``var.setX(i, v);`` statements following ``stmt`` in its block: {i: (setter, v source, node)}."""
    found: dict[int, tuple[str, str, object]] = {}
    sibling = stmt.next_named_sibling
    while sibling is not None:
        if sibling.type == "expression_statement" and sibling.named_children:
            inv = sibling.named_children[0]
            if (inv.type == "method_invocation" and inv.child_by_field_name("object") is not None
                    and _text(inv.child_by_field_name("object")) == var):
                name = _text(inv.child_by_field_name("name"))
                args = _args(inv)
                if name.startswith("set") and len(args) == 2 and args[0].type == "decimal_integer_literal":
                    idx = int(_text(args[0]))
                    if idx in found:
                        return None
                    found[idx] = (name, _text(args[1]), sibling)
        sibling = sibling.next_named_sibling
    return found or None
