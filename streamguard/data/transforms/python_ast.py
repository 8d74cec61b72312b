"""The Python side of the program transformations: the parsed module, its sinks, and edits on the tree.

Sinks are found with the featurizer's call classifier (`streamguard.core.graphs.rules`), only to
know *where* data meets a dangerous call; no label is ever read from the rule's verdict. The edited
tree is written back with ``ast.unparse`` (comments and layout are not kept).
"""

from __future__ import annotations

import ast
import copy
import random
from dataclasses import dataclass

from streamguard.data.transforms.base import NotApplicable, const_for, fresh_name

# Sanitizers per sink class: (expression template with {x}, module to import or "").
SANITIZERS = {
    "sql": ("str(int({x}))", ""),
    "command": ("shlex.quote({x})", "shlex"),
    "path": ("os.path.basename({x})", "os"),
    "html": ("html.escape({x})", "html"),
    "header": ("urllib.parse.quote({x})", "urllib.parse"),
    "redirect": ("urllib.parse.quote({x})", "urllib.parse"),
    "url": ("urllib.parse.quote({x})", "urllib.parse"),
}
DEFAULT_SANITIZER = ("str(int({x}))", "")  # a number is safe in every sink


@dataclass
class Sink:
    call: ast.Call
    sink_class: str
    slots: list[tuple[object, str, int | None]]  # (owner node, field, index) of each dangerous argument
    stmt: ast.stmt



def get_slot(slot) -> ast.expr:
    owner, fieldname, index = slot
    value = getattr(owner, fieldname)
    return value if index is None else value[index]


def put_slot(slot, new: ast.expr) -> None:
    owner, fieldname, index = slot
    if index is None:
        setattr(owner, fieldname, new)
    else:
        getattr(owner, fieldname)[index] = new


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


class Program:
    """A parsed Python module with the helpers every transformation uses."""

    def __init__(self, code: str, rng: random.Random):
        try:
            self.tree = ast.parse(code)
        except (SyntaxError, ValueError) as exc:
            raise NotApplicable("original_does_not_parse") from exc
        self.rng = rng
        self.parent: dict[int, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
        self.names = {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)} | {
            a.arg for a in ast.walk(self.tree) if isinstance(a, ast.arg)} | {
            f.name for f in ast.walk(self.tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}

    def code(self) -> str:
        return ast.unparse(ast.fix_missing_locations(self.tree)) + "\n"

    def fresh(self, pool: tuple[str, ...]) -> str:
        name = fresh_name(pool, self.names, self.rng)
        self.names.add(name)
        return name

    # ------------------------------------------------------------------ sinks
    def sinks(self) -> list[Sink]:
        from streamguard.core.graphs.rules import classify_python_call

        found = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            dotted = _dotted(func) if isinstance(func, (ast.Name, ast.Attribute)) else "?"
            if dotted.startswith("?") and isinstance(func, ast.Attribute):
                dotted = f"?.{func.attr}"
            is_str = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Constant) \
                and isinstance(func.value.value, str)
            rule = classify_python_call(dotted, len(node.args), tuple(k.arg or "" for k in node.keywords),
                                        is_str, receiver)
            if not rule.sink:
                continue
            positions = rule.sink_positions
            slots = [(node, "args", i) for i, a in enumerate(node.args)
                     if not isinstance(a, ast.Starred) and (positions is None or i in positions)]
            slots += [(k, "value", None) for k in node.keywords if k.arg and k.arg in rule.sink_keywords]
            slots = [s for s in slots if not _constant(get_slot(s))]
            stmt = self.statement_of(node)
            if slots and stmt is not None:
                found.append(Sink(node, rule.sink_class or ("path" if rule.path_sink else "other"), slots, stmt))
        return found

    def required_sinks(self) -> list[Sink]:
        """`sinks`, or NotApplicable("no_sink") when there is none."""
        sinks = self.sinks()
        if not sinks:
            raise NotApplicable("no_sink")
        return sinks

    def sink_slots(self) -> list[tuple[Sink, tuple]]:
        """(sink, slot) for every dangerous argument of every sink (NotApplicable("no_sink") when none)."""
        return [(sink, slot) for sink in self.required_sinks() for slot in sink.slots]

    def one_flow(self) -> tuple[Sink, tuple]:
        """A seeded (sink, dangerous argument) pair: the flow the label-preserving moves reroute."""
        sinks = self.sinks()
        if not sinks:
            raise NotApplicable("no_sink")
        sink = self.rng.choice(sinks)
        return sink, self.rng.choice(sink.slots)

    def statement_of(self, node: ast.AST) -> ast.stmt | None:
        while node is not None and not isinstance(node, ast.stmt):
            node = self.parent.get(id(node))
        return node

    def insert_before(self, stmt: ast.stmt, new: list[ast.stmt]) -> None:
        owner = self.parent.get(id(stmt))
        for fieldname in ("body", "orelse", "finalbody"):
            block = getattr(owner, fieldname, None)
            if isinstance(block, list) and any(s is stmt for s in block):
                i = next(i for i, s in enumerate(block) if s is stmt)
                block[i:i] = new
                return
        raise NotApplicable("no_enclosing_block")

    def enclosing_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        while node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node = self.parent.get(id(node))
        return node

    def top_level_of(self, node: ast.AST) -> int:
        """Index in the module body of the top-level statement holding ``node``."""
        while self.parent.get(id(node)) is not self.tree:
            node = self.parent[id(node)]
        return next(i for i, s in enumerate(self.tree.body) if s is node)

    def import_in_function(self, node: ast.AST, module: str) -> None:
        if not module:
            return
        func = self.enclosing_function(node)
        target = func.body if func is not None else self.tree.body
        target.insert(0, ast.Import(names=[ast.alias(name=module)]))


def _constant(expr: ast.expr) -> bool:
    return all(isinstance(n, (ast.Constant, ast.Tuple, ast.List, ast.expr_context, ast.BinOp, ast.operator))
               for n in ast.walk(expr))


def expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def stmts(text: str) -> list[ast.stmt]:
    return ast.parse(text).body


def free_names(e: ast.expr) -> list[str]:
    """The variables an argument reads (callee names left out); NotApplicable when it reads attributes or
    calls anything but a builtin on them (the taint could come from elsewhere than a local)."""
    callees = {id(n.func) for n in ast.walk(e) if isinstance(n, ast.Call)}
    names = []
    for n in ast.walk(e):
        if isinstance(n, ast.Attribute) and not (isinstance(n.value, ast.Constant) and id(n) in callees):
            raise NotApplicable("sink_argument_reads_an_attribute")
        if isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name) and n.func.id in ("str", "repr", "format")) \
                and not isinstance(n.func, ast.Attribute):
            raise NotApplicable("sink_argument_calls_a_function")
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in callees:
            names.append(n.id)
    return sorted(set(names))


def holes(e: ast.expr) -> list[tuple[object, str, int | None]]:
    """The values spliced into a string built in place (concatenation, %, format, f-string), as slots."""
    out: list = []

    def visit(node, owner, fieldname, index):
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            visit(node.left, node, "left", None)
            visit(node.right, node, "right", None)
        elif isinstance(node, ast.Tuple) and owner is not None and isinstance(owner, ast.BinOp):
            for i, el in enumerate(node.elts):
                visit(el, node, "elts", i)
        elif isinstance(node, ast.JoinedStr):
            for v in node.values:
                if isinstance(v, ast.FormattedValue):
                    visit(v.value, v, "value", None)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Constant) and node.func.attr == "format"):
            for i, a in enumerate(node.args):
                visit(a, node, "args", i)
            for k in node.keywords:
                visit(k.value, k, "value", None)
        else:
            out.append((owner, fieldname, index))

    visit(e, None, "", None)
    if (None, "", None) in out:
        raise NotApplicable("sink_argument_not_built_in_place")
    if not out:
        raise NotApplicable("sink_argument_is_constant")
    return out


def copy_expr(e: ast.expr) -> ast.expr:
    return copy.deepcopy(e)


__all__ = ["Program", "Sink", "SANITIZERS", "DEFAULT_SANITIZER", "expr", "stmts", "free_names", "holes",
           "copy_expr", "const_for", "get_slot", "put_slot"]
