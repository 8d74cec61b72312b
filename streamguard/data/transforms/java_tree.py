"""The Java side of the program transformations: the tree-sitter tree, its sinks, and byte-span edits.

Sinks are found with the featurizer's call classifier (`streamguard.core.graphs.rules`), only to
know *where* data meets a dangerous call; no label is ever read from the rule's verdict. Edits are
(start, end, text) byte spans applied to the original text, so the rest of the code stays as written.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streamguard.data.counterfactuals.java_sql import _args, _parse, _text, _walk
from streamguard.data.transforms.base import NotApplicable, fresh_name

_BLOCKS = ("block", "constructor_body", "switch_block_statement_group")
_STRING_METHODS = frozenset({"toString", "substring", "trim", "toLowerCase", "toUpperCase", "format", "getParameter",
                             "getHeader", "getenv", "getProperty", "readLine", "nextLine", "getString", "getValue",
                             "replace", "replaceAll", "concat", "strip", "valueOf", "getQueryString", "getName"})


@dataclass
class Sink:
    call: object          # the method_invocation / object_creation_expression node
    sink_class: str
    args: list            # the dangerous argument nodes (constants left out)
    stmt: object          # the statement in a block that holds the call


class Program:
    """Parsed Java code and the pending edits; `code()` applies them."""

    def __init__(self, code: str, rng: random.Random):
        self.data = code.encode("utf-8")
        self.root = _parse(code)
        if self.root.has_error:
            raise NotApplicable("original_does_not_parse")
        self.rng = rng
        self.edits: list[tuple[int, int, int, str]] = []
        self.names = {_text(n) for n in _walk(self.root) if n.type in ("identifier", "type_identifier")}

    def text(self, node) -> str:
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def fresh(self, pool: tuple[str, ...]) -> str:
        name = fresh_name(pool, self.names, self.rng)
        self.names.add(name)
        return name

    def replace(self, node, new: str) -> None:
        self.edits.append((node.start_byte, node.end_byte, len(self.edits), new))

    def insert(self, at: int, new: str) -> None:
        self.edits.append((at, at, len(self.edits), new))

    def code(self) -> str:
        out = self.data
        last = None
        for start, end, _seq, new in sorted(self.edits, key=lambda e: (e[0], e[2]), reverse=True):
            if last is not None and end > last:
                raise NotApplicable("overlapping_edits")
            out = out[:start] + new.encode("utf-8") + out[end:]
            last = start
        return out.decode("utf-8")

    # ------------------------------------------------------------------ structure
    def indent(self, node) -> str:
        line_start = self.data.rfind(b"\n", 0, node.start_byte) + 1
        prefix = self.data[line_start:node.start_byte].decode("utf-8")
        return prefix if not prefix.strip() else " " * (len(prefix) - len(prefix.lstrip()))

    def statement_of(self, node):
        while node is not None and (node.parent is None or node.parent.type not in _BLOCKS):
            if node.type in ("lambda_expression", "class_body"):
                return None
            node = node.parent
        return node

    def insert_before(self, stmt, lines: list[str]) -> None:
        pad = self.indent(stmt)
        self.insert(stmt.start_byte, "".join(f"{line}\n{pad}" for line in lines))

    def ancestor(self, node, *types):
        node = node.parent
        while node is not None and node.type not in types:
            node = node.parent
        return node

    def add_to_class(self, node, member: str) -> None:
        body = self.ancestor(node, "class_body")
        if body is None:
            raise NotApplicable("no_enclosing_class")
        self.insert(body.end_byte - 1, f"\n    {member}\n")

    def declared_types(self, node) -> dict[str, str]:
        """Local variables and parameters of the method holding ``node``: name -> type text ("" when final)."""
        method = self.ancestor(node, "method_declaration", "constructor_declaration") or self.root
        types: dict[str, str] = {}
        for n in _walk(method):
            if n.type in ("local_variable_declaration", "formal_parameter", "catch_formal_parameter",
                          "enhanced_for_statement"):
                type_node = n.child_by_field_name("type")
                final = any(c.type == "modifiers" and "final" in self.text(c) for c in n.children)
                declarators = [c for c in n.named_children if c.type == "variable_declarator"] or [n]
                for d in declarators:
                    name = d.child_by_field_name("name")
                    if name is None or type_node is None:
                        continue
                    dims = d.child_by_field_name("dimensions")
                    types[self.text(name)] = "" if final or dims is not None else self.text(type_node)
        return types

    def is_string(self, expr, types: dict[str, str]) -> bool:
        if expr.type == "string_literal":
            return True
        if expr.type == "parenthesized_expression" and expr.named_child_count == 1:
            return self.is_string(expr.named_children[0], types)
        if expr.type == "binary_expression" and _text(expr.child_by_field_name("operator")) == "+":
            return self.is_string(expr.child_by_field_name("left"), types) or \
                self.is_string(expr.child_by_field_name("right"), types)
        if expr.type == "identifier":
            return types.get(self.text(expr)) == "String"
        if expr.type == "method_invocation":
            return self.text(expr.child_by_field_name("name")) in _STRING_METHODS
        return False

    # ------------------------------------------------------------------ sinks
    def sinks(self) -> list[Sink]:
        from streamguard.core.graphs.rules import classify_java_call, classify_java_constructor

        found = []
        for node in _walk(self.root):
            if node.type == "method_invocation":
                obj = node.child_by_field_name("object")
                rule = classify_java_call(self.text(node.child_by_field_name("name")),
                                          self.text(obj) if obj is not None else None)
            elif node.type == "object_creation_expression":
                rule = classify_java_constructor(self.text(node.child_by_field_name("type")))
            else:
                continue
            if not rule.sink:
                continue
            positions = rule.sink_positions
            args = [a for i, a in enumerate(_args(node)) if (positions is None or i in positions)
                    and any(n.type in ("identifier", "method_invocation", "field_access", "array_access")
                            for n in _walk(a))]
            stmt = self.statement_of(node)
            if args and stmt is not None:
                found.append(Sink(node, rule.sink_class or ("path" if rule.path_sink else "other"), args, stmt))
        return found

    def string_flows(self) -> list[tuple[Sink, object, dict]]:
        """(sink, dangerous String argument, declared types) triples."""
        out = []
        for sink in self.sinks():
            types = self.declared_types(sink.call)
            out += [(sink, a, types) for a in sink.args if self.is_string(a, types)]
        return out

    def one_string_flow(self):
        flows = self.string_flows()
        if not flows:
            raise NotApplicable("no_string_argument_at_sink" if self.sinks() else "no_sink")
        return self.rng.choice(flows)

    def all_sinks_string(self):
        """Every sink with all its dangerous arguments of type String (NotApplicable otherwise)."""
        sinks = self.sinks()
        if not sinks:
            raise NotApplicable("no_sink")
        out = []
        for sink in sinks:
            types = self.declared_types(sink.call)
            if not all(self.is_string(a, types) for a in sink.args):
                raise NotApplicable("argument_not_a_string")
            out.append((sink, types))
        return out


def concat_operands(node) -> list | None:
    """The operands of a ``+`` chain (parentheses kept as operands), or None if not one."""
    if node.type != "binary_expression" or _text(node.child_by_field_name("operator")) != "+":
        return None
    out = []

    def flat(n):
        if n.type == "binary_expression" and _text(n.child_by_field_name("operator")) == "+":
            flat(n.child_by_field_name("left"))
            flat(n.child_by_field_name("right"))
        else:
            out.append(n)
    flat(node)
    return out


def java_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["Program", "Sink", "concat_operands", "java_str", "_walk", "_text"]
