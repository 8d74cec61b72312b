"""Python frontend: ``ast`` tree -> `GraphIR` with def-use, calls and dead branches.

Statements and control flow live here, expressions in `python_expressions`. Code that does not
parse is repaired line by line (`python_repair`); if even that fails the graph is a token chain
(`tokens`), and ``parse_ok`` is False in both cases.
"""

from __future__ import annotations

import ast

from . import ir as IR
from .consts import UNKNOWN
from .ir import FuncInfo, GraphIR
from .python_expressions import PyExpressions, hashable, self_key
from .python_repair import tolerant_parse
from .tokens import build_token_ir


def build_python_ir(code: str, budget: int) -> tuple[GraphIR, bool]:
    """Build the graph IR of Python source. Returns (ir, parse_ok); never raises on bad code."""
    tree, clean = tolerant_parse(code)
    if tree is None:
        return build_token_ir(code, "python", budget), False
    graph = GraphIR(budget)
    walker = _PyWalker(graph, _module_constants(tree))
    try:
        walker.node(tree, -1)
    except IR.BudgetExceeded:
        pass
    except RecursionError:
        graph.truncated = True
    graph.finish()
    return graph, clean


def _module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level names bound exactly once, to a literal: usable to fold branch conditions."""
    cands = {}
    for st in tree.body:
        if (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)
                and isinstance(st.value, ast.Constant)):
            cands[st.targets[0].id] = st.value.value
    if not cands:
        return {}
    counts: dict[str, int] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and n.id in cands:
            counts[n.id] = counts.get(n.id, 0) + 1
    return {k: v for k, v in cands.items() if counts.get(k, 0) == 1}


class _PyWalker(PyExpressions):
    """One pass over a Python ``ast`` tree, in source order (expressions in the mixin)."""

    def __init__(self, graph: GraphIR, consts: dict[str, object]):
        self.g = graph
        self.consts = consts
        self.seq_elems: dict[int, list[int]] = {}            # list/tuple literal node -> element values
        self.dict_elems: dict[int, dict[object, int]] = {}   # dict literal node -> {literal key: value}
        self.class_depth = 0
        self.global_names: set[str] = set()  # names declared global/nonlocal in the current function
        self.statement_defs: set[int] = set()  # definitions bound to a string literal or built string

    # -------------------------------------------------------------------------------- dispatch
    def node(self, n: ast.AST, parent: int) -> int:
        """Emit ``n``; returns the id of the node carrying its value."""
        handler = _HANDLERS.get(type(n).__name__)
        if handler is not None:
            return handler(self, n, parent)
        return self.generic(n, parent)

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
        g = self.g
        prev = head
        for s in stmts:
            if g.env is None and not g.dead:
                with g.dead_mode():
                    sid = self.node(s, parent)
            else:
                sid = self.node(s, parent)
            if prev >= 0:
                g.edge(prev, sid, IR.NEXT_STMT)
            prev = sid

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
        nid = g.add("py." + type(n).__name__, parent)
        for d in n.decorator_list:
            self.node(d, nid)
        a = n.args
        for d in list(a.defaults) + [d for d in a.kw_defaults if d is not None]:
            self.node(d, nid)
        params = list(a.posonlyargs) + list(a.args) + ([a.vararg] if a.vararg else []) + list(a.kwonlyargs) + (
            [a.kwarg] if a.kwarg else [])
        is_method = self.class_depth > 0 or bool(params and params[0].arg in ("self", "cls"))
        info = FuncInfo(n.name, nid, is_method)
        saved_depth, saved_globals = self.class_depth, self.global_names
        self.class_depth, self.global_names = 0, set()
        with g.function(info):
            aid = g.add("py.arguments", nid)
            for p in params:
                pid = g.add("py.arg", aid, IR.IDENT)
                g.define(p.arg, pid)
                # Annotations are not enforced at run time: every parameter but self/cls may be untrusted.
                info.params.append((p.arg, pid, p.arg not in ("self", "cls")))
            self.statements(n.body, nid, nid)
        self.class_depth, self.global_names = saved_depth, saved_globals
        return nid

    def Global(self, n, parent: int) -> int:
        """``global x`` / ``nonlocal x``: assignments to x in this function are seen by the others."""
        self.global_names.update(n.names)
        return self.g.add("py." + type(n).__name__, parent)

    Nonlocal = Global

    AsyncFunctionDef = FunctionDef

    def ClassDef(self, n: ast.ClassDef, parent: int) -> int:
        g = self.g
        nid = g.add("py.ClassDef", parent)
        for e in list(n.decorator_list) + list(n.bases) + [k.value for k in n.keywords]:
            self.node(e, nid)
        self.class_depth += 1
        with g.function(None, scope_kind="class"):
            self.statements(n.body, nid, nid)
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
        v = self.node(value, nid)
        targets = n.targets if isinstance(n, ast.Assign) else [n.target]
        for t in targets:
            self.assign(t, nid, v, value)
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

    def assign(self, t: ast.AST, parent: int, v: int, value: ast.AST | None, *, strong: bool = True) -> None:
        """Bind target ``t`` to the value node ``v`` (``value`` is its syntax, when known)."""
        g = self.g
        key = self_key(t)
        if key is not None:
            tid = g.add("py." + type(t).__name__, parent, IR.IDENT)
            g.define(key, tid, v, strong=strong, const=isinstance(value, ast.Constant))
            if key in self.global_names:
                g.define_global(key, tid)
            if v >= 0 and (g.flags[v] & (IR.CONCAT | IR.SQL_LITERAL) or (
                    isinstance(value, ast.Constant) and isinstance(value.value, str))):
                self.statement_defs.add(tid)
            if v in self.seq_elems:
                g.container_new(key, dict(enumerate(self.seq_elems[v])))
            elif v in self.dict_elems:
                g.container_new(key, self.dict_elems[v])
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

    def If(self, n: ast.If, parent: int) -> int:
        g = self.g
        nid = g.add("py.If", parent)
        truth = self.truth(n.test)
        self.mark_condition(self.node(n.test, nid), truth)
        before = g.env
        env_then = self.branch(n.body, nid, before, truth is False)
        if n.orelse:
            env_else = self.branch(n.orelse, nid, before, truth is True)
        else:
            env_else = None if truth is True else before
        g.env = IR.join(env_then, env_else)
        return nid

    def While(self, n: ast.While, parent: int) -> int:
        g = self.g
        nid = g.add("py.While", parent)
        truth = self.truth(n.test)
        self.mark_condition(self.node(n.test, nid), truth)
        before = g.env
        if truth is False:
            self.branch(n.body, nid, before, True)
            g.env = self.branch(n.orelse, nid, before, False) if n.orelse else before
            return nid
        with g.loop() as frame:
            end = self.branch(n.body, nid, frame.entry, False)
            end_all = IR.join(end, *frame.continues)
        g.close_loop(frame, end_all)
        normal_exit = None if truth is True else frame.resolve(IR.join(before, end_all))
        if n.orelse and normal_exit is not None:
            normal_exit = self.branch(n.orelse, nid, normal_exit, False)
        g.env = IR.join(normal_exit, frame.resolve(IR.join(*frame.breaks)))
        return nid

    def For(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("py." + type(n).__name__, parent)
        it = self.node(n.iter, nid)
        before = g.env
        with g.loop() as frame:
            self.assign(n.target, nid, it, None)
            self.statements(n.body, nid, nid)
            end_all = IR.join(g.env, *frame.continues)
        g.close_loop(frame, end_all)
        normal_exit = frame.resolve(IR.join(before, end_all))
        if n.orelse:
            normal_exit = self.branch(n.orelse, nid, normal_exit, False)
        g.env = IR.join(normal_exit, frame.resolve(IR.join(*frame.breaks)))
        return nid

    AsyncFor = For

    def With(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("py." + type(n).__name__, parent)
        for item in n.items:
            wid = g.add("py.withitem", nid)
            v = self.node(item.context_expr, wid)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, wid, v, None)
        self.statements(n.body, nid, nid)
        return nid

    AsyncWith = With

    def Try(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("py." + type(n).__name__, parent)
        before = g.env
        self.statements(n.body, nid, nid)
        after_body = g.env
        if n.orelse:
            after_body = self.branch(n.orelse, nid, after_body, False) if after_body is not None else None
        outs = [after_body]
        for h in n.handlers:
            g.env = IR.join(before, after_body)
            hid = g.add("py.ExceptHandler", nid)
            if h.type is not None:
                self.node(h.type, hid)
            if h.name:
                g.define(h.name, g.add("py.Name", hid, IR.IDENT))
            self.statements(h.body, hid, hid)
            outs.append(g.env)
        g.env = IR.join(*outs)
        if n.finalbody:
            after = g.env
            g.env = IR.join(before, after)
            self.statements(n.finalbody, nid, nid)
            if after is None:
                g.env = None
        return nid

    TryStar = Try


_LEAVES = ("Import", "ImportFrom", "Pass")
_HANDLERS = {name: getattr(_PyWalker, name) for name in (
    "Module", "Global", "Nonlocal", "FunctionDef", "AsyncFunctionDef", "ClassDef", "Return", "Raise", "Break",
    "Continue", "Expr",
    "Assign", "AnnAssign", "AugAssign", "If", "While", "For", "AsyncFor", "With", "AsyncWith", "Try", "TryStar",
    "Name", "Constant", "JoinedStr", "BinOp", "BoolOp", "UnaryOp", "IfExp", "Attribute", "Subscript", "List",
    "Tuple", "Set", "Dict", "Lambda", "ListComp", "SetComp", "GeneratorExp", "DictComp", "NamedExpr", "Call")}
_HANDLERS.update({name: _PyWalker.Leaf for name in _LEAVES})
