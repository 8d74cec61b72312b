"""Python frontend: ``ast`` tree -> `GraphIR` with def-use, calls and dead branches.

Error tolerance (``parse_ok=False`` whenever any of it was needed), in this order:
1. the code is dedented (functions cut out of a class body keep their indentation);
2. line repair, at most 40 rounds: the line a ``SyntaxError`` points at is re-indented to its
   predecessor's level ("unexpected indent") or replaced by ``pass`` at its own indentation
   (anything else, e.g. Python 2 ``print "x"``), and parsing is retried; the graph then covers
   every line that survived;
3. if that fails, a token chain from `tokenize` (see `tokens.py`): one node per token, calls
   classified by name, no data flow.
"""

from __future__ import annotations

import ast
import textwrap
import warnings
from dataclasses import replace

from . import ir as IR
from .consts import UNKNOWN, fold_binary, fold_unary
from .ir import CallInfo, FuncInfo, GraphIR
from .rules import (APPEND_METHODS, GET_METHODS, PLACEHOLDER, READ_METHODS, SQL_TEXT, STORE_METHODS,
                    classify_python_call, is_python_source_attribute)
from .tokens import build_token_ir

_MAX_REPAIRS = 40
_BINOPS = {"Add": "+", "Sub": "-", "Mult": "*", "Mod": "%", "Div": "/", "FloorDiv": "/", "BitAnd": "&",
           "BitOr": "|", "BitXor": "^", "LShift": "<<", "RShift": ">>"}
_CMPOPS = {"Eq": "==", "NotEq": "!=", "Lt": "<", "Gt": ">", "LtE": "<=", "GtE": ">=", "Is": "==", "IsNot": "!="}
_CONST_TYPES = (ast.Constant,)


def tolerant_parse(code: str) -> tuple[ast.Module | None, bool]:
    """Parse with line repair (see module docstring). Returns (tree or None, parsed without repair)."""
    src = textwrap.dedent(code.replace("\r\n", "\n").replace("\x00", ""))
    try:
        return _parse(src), src == code
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


def _dotted(n: ast.AST) -> str:
    """``a.b.c`` for attribute chains on a name; ``?.c`` when the base is computed."""
    parts = []
    while isinstance(n, ast.Attribute):
        parts.append(n.attr)
        n = n.value
    parts.append(n.id if isinstance(n, ast.Name) else "?")
    return ".".join(reversed(parts))


def _self_key(n: ast.AST) -> str | None:
    """Variable key for a name or a ``self.x``/``cls.x`` attribute."""
    if isinstance(n, ast.Name):
        return n.id
    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"):
        return f"self.{n.attr}"
    return None


class _PyWalker:
    """One pass over a Python ``ast`` tree, in source order."""

    def __init__(self, graph: GraphIR, consts: dict[str, object]):
        self.g = graph
        self.consts = consts
        self.seq_elems: dict[int, list[int]] = {}            # list/tuple literal node -> element values
        self.dict_elems: dict[int, dict[object, int]] = {}   # dict literal node -> {literal key: value}
        self.class_depth = 0
        self.statement_defs: set[int] = set()  # definitions bound to a string literal or built string

    # ------------------------------------------------------------------------------ constants
    def const(self, n: ast.AST) -> object:
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return self.consts.get(n.id, UNKNOWN) if not self.g.is_local(n.id) else UNKNOWN
        if isinstance(n, ast.UnaryOp):
            op = {"Not": "!", "USub": "-", "UAdd": "+"}.get(type(n.op).__name__)
            return fold_unary(op, self.const(n.operand)) if op else UNKNOWN
        if isinstance(n, ast.BoolOp):
            op = "and" if isinstance(n.op, ast.And) else "or"
            val = self.const(n.values[0])
            for nxt in n.values[1:]:
                val = fold_binary(op, val, lambda nxt=nxt: self.const(nxt))
            return val
        if isinstance(n, ast.Compare):
            left, result = self.const(n.left), True
            for op, right_n in zip(n.ops, n.comparators):
                sym = _CMPOPS.get(type(op).__name__)
                right = self.const(right_n)
                if sym is None:
                    return UNKNOWN
                r = fold_binary(sym, left, lambda right=right: right)
                if r is UNKNOWN:
                    return UNKNOWN
                result = result and r
                left = right
            return result
        if isinstance(n, ast.BinOp):
            sym = _BINOPS.get(type(n.op).__name__)
            if sym is None:
                return UNKNOWN
            return fold_binary(sym, self.const(n.left), lambda: self.const(n.right))
        return UNKNOWN

    def truth(self, n: ast.AST) -> bool | None:
        v = self.const(n)
        return None if v is UNKNOWN else bool(v)

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
        saved_depth = self.class_depth
        self.class_depth = 0
        with g.function(info):
            aid = g.add("py.arguments", nid)
            for p in params:
                pid = g.add("py.arg", aid, IR.IDENT)
                g.define(p.arg, pid)
                # Annotations are not enforced at run time: every parameter but self/cls may be untrusted.
                info.params.append((p.arg, pid, p.arg not in ("self", "cls")))
            self.statements(n.body, nid, nid)
        self.class_depth = saved_depth
        return nid

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
        key = _self_key(n.target)
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
        key = _self_key(t)
        if key is not None:
            tid = g.add("py." + type(t).__name__, parent, IR.IDENT)
            g.define(key, tid, v, strong=strong, const=isinstance(value, ast.Constant))
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
            idx = self.node(t.slice, sid)
            g.flow(v, sid)
            base = _self_key(t.value)
            if base is not None:
                g.define(base, sid, -1, strong=False)
                index = self.const(t.slice)
                g.container_store(base, None if index is UNKNOWN else _hashable(index), v)
            del idx
            return
        if isinstance(t, ast.Attribute):  # obj.attr = v taints obj
            aid = g.add("py.Attribute", parent)
            self.node(t.value, aid)
            g.flow(v, aid)
            base = _self_key(t.value)
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

    # ----------------------------------------------------------------------------- expressions
    def Name(self, n: ast.Name, parent: int) -> int:
        g = self.g
        nid = g.add("py.Name", parent, IR.IDENT)
        if isinstance(n.ctx, ast.Load):
            g.use(n.id, nid)
        else:
            g.define(n.id, nid)
        return nid

    def Constant(self, n: ast.Constant, parent: int) -> int:
        v = n.value
        tname = "Ellipsis" if v is Ellipsis else "None" if v is None else type(v).__name__
        flags = IR.LITERAL
        length = len(v) if isinstance(v, (str, bytes)) else len(repr(v))
        if isinstance(v, str):
            if SQL_TEXT.search(v):
                flags |= IR.SQL_LITERAL
            if PLACEHOLDER.search(v):
                flags |= IR.PLACEHOLDER
        return self.g.add(f"py.Constant:{tname}", parent, flags, length)

    def JoinedStr(self, n: ast.JoinedStr, parent: int) -> int:
        g = self.g
        nid = g.add("py.JoinedStr", parent, IR.CONCAT)
        for part in n.values:
            g.flow(self.node(part, nid), nid)
        return nid

    def stringy(self, n: ast.AST, v: int) -> bool:
        return (isinstance(n, ast.Constant) and isinstance(n.value, str)) or isinstance(n, ast.JoinedStr) or bool(
            v >= 0 and self.g.flags[v] & IR.CONCAT)

    def BinOp(self, n: ast.BinOp, parent: int) -> int:
        g = self.g
        op = type(n.op).__name__
        nid = g.add(f"py.BinOp:{op}", parent)
        lv, rv = self.node(n.left, nid), self.node(n.right, nid)
        g.flow(lv, nid)
        g.flow(rv, nid)
        if (op == "Add" and (self.stringy(n.left, lv) or self.stringy(n.right, rv))) or (
                op == "Mod" and self.stringy(n.left, lv)):
            g.flags[nid] |= IR.CONCAT
        return nid

    def BoolOp(self, n: ast.BoolOp, parent: int) -> int:
        nid = self.g.add(f"py.BoolOp:{type(n.op).__name__}", parent)
        for v in n.values:
            self.g.flow(self.node(v, nid), nid)
        return nid

    def UnaryOp(self, n: ast.UnaryOp, parent: int) -> int:
        nid = self.g.add(f"py.UnaryOp:{type(n.op).__name__}", parent)
        self.g.flow(self.node(n.operand, nid), nid)
        return nid

    def IfExp(self, n: ast.IfExp, parent: int) -> int:
        g = self.g
        nid = g.add("py.IfExp", parent)
        truth = self.truth(n.test)
        self.mark_condition(self.node(n.test, nid), truth)
        for arm, dead in ((n.body, truth is False), (n.orelse, truth is True)):
            with g.dead_mode(dead):
                v = self.node(arm, nid)
            g.flow(v, nid)
        return nid

    def Attribute(self, n: ast.Attribute, parent: int) -> int:
        g = self.g
        nid = g.add("py.Attribute", parent)
        if is_python_source_attribute(_dotted(n)):
            g.flags[nid] |= IR.SOURCE
        key = _self_key(n)
        if key is not None and key.startswith("self."):
            g.add("py.Name", nid, IR.IDENT)
            g.use(key, nid)
            return nid
        g.flow(self.node(n.value, nid), nid)
        return nid

    def Subscript(self, n: ast.Subscript, parent: int) -> int:
        g = self.g
        nid = g.add("py.Subscript", parent)
        v = self.node(n.value, nid)
        self.node(n.slice, nid)
        base = _self_key(n.value)
        precise = None
        if base is not None:
            index = self.const(n.slice)
            precise = g.container_read(base, None if index is UNKNOWN else _hashable(index))
        if precise is not None:  # lst[1] reads exactly what was stored at index 1
            for d in precise:
                g.flow(d, nid)
        else:
            g.flow(v, nid)
        return nid

    def sequence(self, n, parent: int) -> int:
        nid = self.g.add("py." + type(n).__name__, parent)
        elems = []
        for e in n.elts:
            v = self.node(e, nid)
            self.g.flow(v, nid)
            elems.append(v)
        if not any(isinstance(e, ast.Starred) for e in n.elts):
            self.seq_elems[nid] = elems
        return nid

    List = Tuple = Set = sequence

    def Dict(self, n: ast.Dict, parent: int) -> int:
        g = self.g
        nid = g.add("py.Dict", parent)
        known: dict[object, int] | None = {}
        for k, v in zip(n.keys, n.values):
            kv = self.node(k, nid) if k is not None else -1
            vv = self.node(v, nid)
            g.flow(kv, nid)
            g.flow(vv, nid)
            kc = self.const(k) if k is not None else UNKNOWN
            if known is not None and kc is not UNKNOWN:
                known[_hashable(kc)] = vv
            else:
                known = None
        if known is not None:
            self.dict_elems[nid] = known
        return nid

    def Lambda(self, n: ast.Lambda, parent: int) -> int:
        g = self.g
        nid = g.add("py.Lambda", parent)
        outer = g.env
        with g.function(None):
            g.env = outer.copy() if outer is not None else IR.Env()
            a = n.args
            for p in list(a.posonlyargs) + list(a.args) + list(a.kwonlyargs):
                g.define(p.arg, g.add("py.arg", nid, IR.IDENT))
            g.flow(self.node(n.body, nid), nid)
        return nid

    def comprehension_expr(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("py." + type(n).__name__, parent)
        for comp in n.generators:
            cid = g.add("py.comprehension", nid)
            it = self.node(comp.iter, cid)
            self.assign(comp.target, cid, it, None)
            for cond in comp.ifs:
                self.node(cond, cid)
        for part in ((n.key, n.value) if isinstance(n, ast.DictComp) else (n.elt,)):
            g.flow(self.node(part, nid), nid)
        return nid

    ListComp = SetComp = GeneratorExp = DictComp = comprehension_expr

    def statement_positions(self, args: list, vals: list[int]) -> tuple[int, ...]:
        """Arguments of a wrapper sink that hold the statement.

        The first argument that is (or names) a string literal or a string built by concatenation
        or formatting, as in ``db.query("... $1", name)`` or ``queryDB(conn, sql)``; without one,
        every argument that is not a parameter container (tuple/list/dict literal).
        """
        g = self.g
        env = g.env
        fallback = []
        for i, (a, v) in enumerate(zip(args, vals)):
            if isinstance(a, ast.Starred):
                continue
            if (isinstance(a, ast.Constant) and isinstance(a.value, str)) or g.flags[v] & (IR.CONCAT | IR.SQL_LITERAL):
                return (i,)
            key = _self_key(a)
            if key is not None and env is not None:
                if env.vars.get(key, frozenset()) & self.statement_defs:
                    return (i,)
                if key in env.slots:
                    continue  # a name bound to a tuple/list/dict literal
            if not isinstance(a, (ast.Tuple, ast.List, ast.Dict, ast.Set)):
                fallback.append(i)
        return tuple(fallback)

    def NamedExpr(self, n: ast.NamedExpr, parent: int) -> int:
        nid = self.g.add("py.NamedExpr", parent)
        v = self.node(n.value, nid)
        tid = self.g.add("py.Name", nid, IR.IDENT)
        self.g.define(n.target.id, tid, v)
        return tid

    def Call(self, n: ast.Call, parent: int) -> int:
        g = self.g
        nid = g.add("py.Call", parent)
        func = n.func
        dotted = _dotted(func)
        recv = func.value if isinstance(func, ast.Attribute) else None
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        fv = rv = -1
        if isinstance(func, ast.Name):
            g.add("py.Name", nid, IR.IDENT)  # callee name: not a variable read
        elif isinstance(func, ast.Attribute):
            fv = g.add("py.Attribute", nid)
            if is_python_source_attribute(dotted):
                g.flags[fv] |= IR.SOURCE
            rv = self.node(recv, fv)
            g.flow(rv, fv)
        else:
            fv = self.node(func, nid)
        vals = [self.node(a, nid) for a in n.args]
        kwargs: dict[str, int] = {}
        for i, kw in enumerate(n.keywords):
            kid = g.add("py.keyword", nid)
            kv = self.node(kw.value, kid)
            g.flow(kv, kid)
            kwargs[kw.arg if kw.arg is not None else f"**{i}"] = kid
        rule = classify_python_call(dotted, len(vals), tuple(kwargs), recv is not None and self.stringy(recv, -1))
        if rule.wrapper:
            rule = replace(rule, sink_positions=self.statement_positions(n.args, vals))
        base = _self_key(recv) if recv is not None else None
        precise = None
        if base is not None and name in GET_METHODS and n.args:
            index = self.const(n.args[0])
            precise = g.container_read(base, None if index is UNKNOWN else _hashable(index))
        if precise is not None:  # d.get("k") reads exactly what was stored under "k"
            for d in precise:
                g.flow(d, nid)
        elif fv >= 0:
            g.flow(fv, nid)
        if base is not None and isinstance(recv, ast.Name):
            if name in STORE_METHODS and vals:
                g.define(base, rv, vals[-1], strong=False)
                if name in APPEND_METHODS and len(vals) == 1:
                    g.container_store(base, None, vals[0], append=True)
                else:
                    g.container_forget(base)
            elif name not in READ_METHODS:
                g.container_forget(base)
        if rule.concat:
            g.flags[nid] |= IR.CONCAT
        via_self = isinstance(func, ast.Name) or (dotted.count(".") == 1 and dotted.split(".")[0] in ("self", "cls"))
        g.call(CallInfo(nid, name, vals, kwargs, via_self, rule, skip_self=not isinstance(func, ast.Name)))
        return nid


def _hashable(v: object) -> object:
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


_LEAVES = ("Import", "ImportFrom", "Pass", "Global", "Nonlocal")
_HANDLERS = {name: getattr(_PyWalker, name) for name in (
    "Module", "FunctionDef", "AsyncFunctionDef", "ClassDef", "Return", "Raise", "Break", "Continue", "Expr",
    "Assign", "AnnAssign", "AugAssign", "If", "While", "For", "AsyncFor", "With", "AsyncWith", "Try", "TryStar",
    "Name", "Constant", "JoinedStr", "BinOp", "BoolOp", "UnaryOp", "IfExp", "Attribute", "Subscript", "List",
    "Tuple", "Set", "Dict", "Lambda", "ListComp", "SetComp", "GeneratorExp", "DictComp", "NamedExpr", "Call")}
_HANDLERS.update({name: _PyWalker.Leaf for name in _LEAVES})
