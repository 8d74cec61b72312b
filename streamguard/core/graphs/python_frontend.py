"""Python frontend: ``ast`` tree -> `GraphIR` with def-use, calls and dead branches.

Statements live here, control flow in `python_control_flow`, expressions in `python_expressions`,
what the module's top level proves in `python_module_constants`. Code that does not
parse is repaired line by line (`python_repair`); if even that fails the graph is a token chain
(`tokens`), and ``parse_ok`` is False in both cases.
"""

from __future__ import annotations

import ast

from . import ir as IR
from .consts import UNKNOWN
from .graph_ir import GraphIR
from .ir import FuncInfo
from .python_control_flow import PyControlFlow
from .python_expressions import PyExpressions, dotted, hashable, self_key
from .python_module_constants import module_collections, module_constants
from .rules import python_path_normaliser_methods, python_path_normalisers
from .python_repair import tolerant_parse
from .tokens import build_token_ir


# Expression kinds whose value may fold to a constant (worth trying when a local is bound).
_FOLDABLE = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name, ast.Subscript, ast.IfExp,
             ast.Call)


def build_python_ir(code: str, budget: int) -> tuple[GraphIR, bool]:
    """Build the graph IR of Python source. Returns (ir, parse_ok); never raises on bad code."""
    tree, clean, cut = tolerant_parse(code)
    if tree is None:
        graph = build_token_ir(code, "python", budget)
        if cut:
            graph.truncated = True
            graph.truncation.add("depth")
        return graph, False
    graph = GraphIR(budget)
    if cut:
        graph.truncated = True
        graph.truncation.add("depth")
    walker = _PyWalker(graph, module_constants(tree), module_collections(tree))
    if "class" in code:
        walker.file_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    try:
        walker.node(tree, -1)
    except IR.BudgetExceeded:
        pass
    except RecursionError:  # deeper than the statement-level recovery could catch
        graph.truncated = True
        graph.truncation.add("depth")
        graph.depth_errors += 1
    graph.finish()
    return graph, clean


class _PyWalker(PyExpressions, PyControlFlow):
    """One pass over a Python ``ast`` tree, in source order (expressions and control flow in the mixins)."""

    def __init__(self, graph: GraphIR, consts: dict[str, object], collections: dict[str, tuple] | None = None):
        self.g = graph
        self.consts = consts
        self.collections = collections or {}  # module names bound to constant collections
        self.normalised_defs: set[int] = set()  # definitions bound to realpath()/abspath()/normpath()
        self.watch: dict[int, int] = {}  # id() of condition sub-expressions -> node id (see guards)
        self.seq_elems: dict[int, list[int]] = {}            # list/tuple literal node -> element values
        self.dict_elems: dict[int, dict[object, int]] = {}   # dict literal node -> {literal key: value}
        self.class_depth = 0
        self.global_names: set[str] = set()  # names declared global/nonlocal in the current function
        self.statement_defs: set[int] = set()  # definitions bound to a string literal or built string
        self.file_classes: set[str] = set()    # classes defined anywhere in the file
        self.class_stack: list[str] = []
        self.local_types: dict[str, str] = {}  # local name -> class of the file it was bound to an instance of

    # -------------------------------------------------------------------------------- dispatch
    def node(self, n: ast.AST, parent: int) -> int:
        """Emit ``n``; returns the id of the node carrying its value."""
        handler = _BY_CLASS.get(type(n))
        g = self.g
        outer_line = g.line
        lineno = getattr(n, "lineno", None)
        if lineno is not None:
            g.line = lineno - 1
        nid = handler(self, n, parent) if handler is not None else self.generic(n, parent)
        g.line = outer_line
        if self.watch and id(n) in self.watch:
            self.watch[id(n)] = nid
        return nid

    def generic(self, n: ast.AST, parent: int) -> int:
        nid = self.g.add("py." + type(n).__name__, parent)
        for c in ast.iter_child_nodes(n):
            if isinstance(c, (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)):
                continue
            if isinstance(c, ast.stmt):
                self.statements([c], nid)
                continue
            v = self.node(c, nid)
            if isinstance(c, ast.expr):
                self.g.flow(v, nid)
        return nid

    def statements(self, stmts: list, parent: int, head: int = -1) -> None:
        """Walk a statement list; code after return/break/raise is unreachable and walked as dead."""
        self.g.walk_statements(stmts, self.node, parent, head)

    def branch(self, stmts: list, parent: int, env_in, dead: bool):
        """Walk a body from ``env_in``; returns the environment at its end (None when dead)."""
        g = self.g
        g.env = env_in.copy() if env_in is not None else None
        if dead:
            with g.dead_mode():
                self.statements(stmts, parent, parent)
            return None
        self.statements(stmts, parent, parent)
        return g.env

    def mark_condition(self, cid: int, truth: bool | None) -> None:
        if truth is True:
            self.g.mark(cid, IR.CONST_TRUE)
        elif truth is False:
            self.g.mark(cid, IR.CONST_FALSE)

    # ------------------------------------------------------------------------------ statements
    def Module(self, n: ast.Module, parent: int) -> int:
        nid = self.g.add("py.Module", parent)
        self.statements(n.body, nid)
        return nid

    def FunctionDef(self, n, parent: int) -> int:
        g = self.g
        nid = g.name(g.add("py." + type(n).__name__, parent), n.name)
        for d in n.decorator_list:
            self.node(d, nid)
        a = n.args
        for d in list(a.defaults) + [d for d in a.kw_defaults if d is not None]:
            self.node(d, nid)
        params = list(a.posonlyargs) + list(a.args) + ([a.vararg] if a.vararg else []) + list(a.kwonlyargs) + (
            [a.kwarg] if a.kwarg else [])
        is_method = self.class_depth > 0 or bool(params and params[0].arg in ("self", "cls"))
        static = any(dotted(d) in ("staticmethod", "functools.staticmethod") for d in n.decorator_list)
        info = FuncInfo(n.name, nid, is_method, owner=self.class_stack[-1] if self.class_depth > 0 else "",
                        static=static)
        saved_types, self.local_types = self.local_types, {}
        saved_depth, saved_globals = self.class_depth, self.global_names
        self.class_depth, self.global_names = 0, set()
        with g.function(info):
            aid = g.add("py.arguments", nid)
            for p in params:
                pid = g.name(g.add("py.arg", aid, IR.IDENT), p.arg,
                             p.annotation.id if isinstance(p.annotation, ast.Name) else "")
                g.define(p.arg, pid)
                # Annotations are not enforced at run time: every parameter but self/cls may be untrusted.
                info.params.append((p.arg, pid, p.arg not in ("self", "cls")))
            self.statements(n.body, nid, nid)
        self.class_depth, self.global_names = saved_depth, saved_globals
        self.local_types = saved_types
        return nid

    def Global(self, n, parent: int) -> int:
        """``global x`` / ``nonlocal x``: assignments to x in this function are seen by the others."""
        self.global_names.update(n.names)
        return self.g.add("py." + type(n).__name__, parent)

    Nonlocal = Global

    AsyncFunctionDef = FunctionDef

    def ClassDef(self, n: ast.ClassDef, parent: int) -> int:
        g = self.g
        nid = g.name(g.add("py.ClassDef", parent), n.name)
        for e in list(n.decorator_list) + list(n.bases) + [k.value for k in n.keywords]:
            self.node(e, nid)
        self.class_depth += 1
        self.class_stack.append(n.name)
        with g.function(None, scope_kind="class"):
            self.statements(n.body, nid, nid)
        self.class_stack.pop()
        self.class_depth -= 1
        return nid

    def Return(self, n: ast.Return, parent: int) -> int:
        nid = self.g.add("py.Return", parent)
        v = self.node(n.value, nid) if n.value is not None else -1
        self.g.flow(v, nid)
        self.g.returns(nid if v >= 0 else -1)
        return nid

    def Raise(self, n: ast.Raise, parent: int) -> int:
        nid = self.generic(n, parent)
        self.g.env = None
        return nid

    def Break(self, n, parent: int) -> int:
        nid = self.g.add("py.Break", parent)
        self.g.jump("break")
        return nid

    def Continue(self, n, parent: int) -> int:
        nid = self.g.add("py.Continue", parent)
        self.g.jump("continue")
        return nid

    def Leaf(self, n, parent: int) -> int:
        return self.g.add("py." + type(n).__name__, parent)

    def Expr(self, n: ast.Expr, parent: int) -> int:
        nid = self.g.add("py.Expr", parent)
        self.node(n.value, nid)
        return nid

    def Assign(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("py." + type(n).__name__, parent)
        value = n.value
        if value is None:  # bare annotation: binds nothing
            return nid
        cv = self.const(value) if isinstance(value, _FOLDABLE) else UNKNOWN
        v = self.node(value, nid)
        targets = n.targets if isinstance(n, ast.Assign) else [n.target]
        for t in targets:
            self.assign(t, nid, v, value, const_value=cv)
        return nid

    AnnAssign = Assign

    def AugAssign(self, n: ast.AugAssign, parent: int) -> int:
        g = self.g
        nid = g.add("py.AugAssign", parent)
        v = self.node(n.value, nid)
        key = self_key(n.target)
        if key is None:
            self.assign(n.target, nid, v, None, strong=False)
            return nid
        tid = g.add("py." + type(n.target).__name__, nid, IR.IDENT)
        g.use(key, tid)
        if isinstance(n.op, (ast.Add, ast.Mod)) and self.stringy(n.value, v):
            g.flags[tid] |= IR.CONCAT
        g.define(key, tid, v)
        return nid

    def assign(self, t: ast.AST, parent: int, v: int, value: ast.AST | None, *, strong: bool = True,
               const_value: object = UNKNOWN) -> None:
        """Bind target ``t`` to the value node ``v`` (``value`` is its syntax, when known;
        ``const_value`` its folded value, recorded for a plain local)."""
        g = self.g
        key = self_key(t)
        if key is not None:
            tid = g.add("py." + type(t).__name__, parent, IR.IDENT)
            g.define(key, tid, v, strong=strong, const=isinstance(value, ast.Constant))
            if const_value is not UNKNOWN and strong and isinstance(t, ast.Name):
                g.const_val[tid] = const_value
            if isinstance(t, ast.Name):
                made = value.func.id if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) else ""
                if made in self.file_classes:
                    self.local_types[t.id] = made
                else:
                    self.local_types.pop(t.id, None)
            if strong and _normalises_path(value):
                self.normalised_defs.add(tid)
            if key in self.global_names:
                g.define_global(key, tid)
            if v >= 0 and (g.flags[v] & (IR.CONCAT | IR.SQL_LITERAL) or (
                    isinstance(value, ast.Constant) and isinstance(value.value, str))):
                self.statement_defs.add(tid)
            if v in self.seq_elems:
                g.container_new(key, dict(enumerate(self.seq_elems[v])))
            elif v in self.dict_elems:
                g.container_new(key, self.dict_elems[v], sequence=False)
            return
        if isinstance(t, (ast.Tuple, ast.List)):
            tid = g.add("py." + type(t).__name__, parent)
            elems = self.seq_elems.get(v)
            exact = elems is not None and len(elems) == len(t.elts) and not any(
                isinstance(e, ast.Starred) for e in t.elts)
            for i, e in enumerate(t.elts):
                self.assign(e, tid, elems[i] if exact else v, None, strong=strong)
            return
        if isinstance(t, ast.Starred):
            self.assign(t.value, parent, v, None, strong=strong)
            return
        if isinstance(t, ast.Subscript):
            sid = g.add("py.Subscript", parent)
            self.node(t.value, sid)
            self.node(t.slice, sid)
            g.flow(v, sid)
            base = self_key(t.value)
            if base is not None:
                g.define(base, sid, -1, strong=False)
                index = self.const(t.slice)
                g.container_store(base, None if index is UNKNOWN else hashable(index), v)
            return
        if isinstance(t, ast.Attribute):  # obj.attr = v taints obj
            aid = g.add("py.Attribute", parent)
            self.node(t.value, aid)
            g.flow(v, aid)
            base = self_key(t.value)
            if base is not None:
                g.define(base, aid, -1, strong=False)
            return
        self.node(t, parent)

def _normalises_path(value: ast.AST | None) -> bool:
    """``os.path.realpath(...)``, ``abspath``, ``normpath``, ``Path(...).resolve()``: no ``..`` left."""
    if not isinstance(value, ast.Call):
        return False
    callee = dotted(value.func)
    return callee in python_path_normalisers() or (
        isinstance(value.func, ast.Attribute) and value.func.attr in python_path_normaliser_methods())


_LEAVES = ("Import", "ImportFrom", "Pass")
_HANDLERS = {name: getattr(_PyWalker, name) for name in (
    "Module", "Global", "Nonlocal", "FunctionDef", "AsyncFunctionDef", "ClassDef", "Return", "Raise", "Break",
    "Continue", "Expr",
    "Assign", "AnnAssign", "AugAssign", "If", "Match", "While", "For", "AsyncFor", "With", "AsyncWith", "Try", "TryStar",
    "Name", "Constant", "JoinedStr", "BinOp", "BoolOp", "UnaryOp", "IfExp", "Attribute", "Subscript", "List",
    "Tuple", "Set", "Dict", "Lambda", "ListComp", "SetComp", "GeneratorExp", "DictComp", "NamedExpr", "Call")}
_HANDLERS.update({name: _PyWalker.Leaf for name in _LEAVES})
# The same table keyed by the ast class itself (no name lookup per node).
_BY_CLASS = {getattr(ast, name): fn for name, fn in _HANDLERS.items() if isinstance(getattr(ast, name, None), type)}
