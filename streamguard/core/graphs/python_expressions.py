"""Python expressions: value flow, calls, containers, constant folding (mixin of the Python walker)."""

from __future__ import annotations

import ast
from dataclasses import replace

from . import ir as IR
from .consts import UNKNOWN, fold_binary, fold_str_method, fold_subscript, fold_unary
from .ir import CallInfo
from .rules import (APPEND_METHODS, GET_METHODS, PLACEHOLDER, READ_METHODS, SQL_TEXT, STORE_METHODS,
                    classify_python_call, is_python_source_attribute, is_shell_program, python_argv_functions,
                    python_path_types)

_BINOPS = {"Add": "+", "Sub": "-", "Mult": "*", "Mod": "%", "Div": "/", "FloorDiv": "/", "BitAnd": "&",
           "BitOr": "|", "BitXor": "^", "LShift": "<<", "RShift": ">>"}
_CMPOPS = {"Eq": "==", "NotEq": "!=", "Lt": "<", "Gt": ">", "LtE": "<=", "GtE": ">=", "Is": "==", "IsNot": "!="}


def dotted(n: ast.AST) -> str:
    """``a.b.c`` for attribute chains on a name; ``?.c`` when the base is computed."""
    parts = []
    while isinstance(n, ast.Attribute):
        parts.append(n.attr)
        n = n.value
    parts.append(n.id if isinstance(n, ast.Name) else "?")
    return ".".join(reversed(parts))


def self_key(n: ast.AST) -> str | None:
    """Variable key for a name or a ``self.x``/``cls.x`` attribute."""
    if isinstance(n, ast.Name):
        return n.id
    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"):
        return f"self.{n.attr}"
    return None


def _shell_may_be_on(call: ast.Call) -> bool:
    """``shell=`` given as anything but a literal False."""
    return any(kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False)
               for kw in call.keywords) or any(kw.arg is None for kw in call.keywords)


def hashable(v: object) -> object:
    """A literal index/key usable as a dict key (unhashable literals by their repr)."""
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


class PyExpressions:
    """Expression handlers of the Python walker (uses ``self.g``, ``self.node``, ``self.consts``,
    ``self.collections``, ``self.seq_elems``, ``self.dict_elems``, ``self.statement_defs``). Each returns the id of the
    node that carries the expression's value."""

    def const(self, n: ast.AST) -> object:
        """Fold an expression to a Python value, or UNKNOWN (module constants only, never locals)."""
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return self.consts.get(n.id, UNKNOWN) if not self.g.is_local(n.id) else self.g.local_const(n.id)
        if isinstance(n, ast.Subscript):
            return fold_subscript(self.const(n.value), self.const(n.slice))
        if isinstance(n, ast.IfExp):
            c = self.const(n.test)
            return UNKNOWN if c is UNKNOWN else self.const(n.body if c else n.orelse)
        if isinstance(n, ast.Call) and not n.keywords and not any(isinstance(a, ast.Starred) for a in n.args):
            if isinstance(n.func, ast.Attribute):  # "a-b".split("-"), mode.upper() on a constant local
                recv = self.const(n.func.value)
                return fold_str_method("python", n.func.attr, recv, [self.const(a) for a in n.args]) \
                    if isinstance(recv, str) else UNKNOWN
            if isinstance(n.func, ast.Name) and n.func.id == "len" and len(n.args) == 1 \
                    and not self.g.is_local("len"):
                v = self.const(n.args[0])
                return len(v) if isinstance(v, (str, tuple)) else UNKNOWN
            return UNKNOWN
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

    def Name(self, n: ast.Name, parent: int) -> int:
        g = self.g
        nid = g.name(g.add("py.Name", parent, IR.IDENT), n.id)
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
        nid = self.g.add(f"py.Constant:{tname}", parent, flags, length)
        if isinstance(v, str):
            self.g.literals[nid] = v
        return nid

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
        nid = g.name(g.add("py.Attribute", parent), n.attr, _receiver_word(n.value))
        if is_python_source_attribute(dotted(n)):
            g.flags[nid] |= IR.SOURCE
        key = self_key(n)
        if key is not None and key.startswith("self."):
            g.name(g.add("py.Name", nid, IR.IDENT), n.attr)
            g.use(key, nid)
            return nid
        vid = self.node(n.value, nid)
        g.flow(vid, nid)
        if n.attr in ("name", "stem") and isinstance(n.value, ast.Call) and dotted(n.value.func) in python_path_types():
            # pathlib.Path(x).name: the path object is built only to take its last component
            g.unsink(vid)
            g.flags[nid] |= IR.PATH_SANITIZER
        return nid

    def Subscript(self, n: ast.Subscript, parent: int) -> int:
        g = self.g
        nid = g.add("py.Subscript", parent)
        v = self.node(n.value, nid)
        self.node(n.slice, nid)
        base = self_key(n.value)
        precise = None
        if base is not None:
            index = self.const(n.slice)
            precise = g.container_read(base, None if index is UNKNOWN else hashable(index))
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
                known[hashable(kc)] = vv
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
                g.define(p.arg, g.name(g.add("py.arg", nid, IR.IDENT), p.arg))
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

    List = Tuple = Set = sequence

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
            key = self_key(a)
            if key is not None and env is not None:
                if env.vars.get(key, frozenset()) & self.statement_defs:
                    return (i,)
                if key in env.slots:
                    continue  # a name bound to a tuple/list/dict literal
            if not isinstance(a, (ast.Tuple, ast.List, ast.Dict, ast.Set)):
                fallback.append(i)
        return tuple(fallback)

    def fixed_program(self, argv: ast.AST) -> bool:
        """An argv whose first element is a literal program that is not a shell: ``["ping", x]``,
        ``TOOL + [x]`` with a module constant ``TOOL = ["ping", "-c", "1"]``."""
        if isinstance(argv, ast.BinOp) and isinstance(argv.op, ast.Add):
            return self.fixed_program(argv.left)
        if isinstance(argv, (ast.List, ast.Tuple)):
            first = argv.elts[0] if argv.elts else None
            program = first.value if isinstance(first, ast.Constant) else None
        elif isinstance(argv, ast.Name) and not self.g.is_local(argv.id):
            elems = self.collections.get(argv.id) or ()
            program = elems[0] if elems else None
        else:
            return False
        return isinstance(program, str) and not is_shell_program(program)

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
        callee = dotted(func)
        recv = func.value if isinstance(func, ast.Attribute) else None
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        fv = rv = -1
        g.name(nid, name, _receiver_word(recv) if recv is not None else "")
        if isinstance(func, ast.Name):
            g.name(g.add("py.Name", nid, IR.IDENT), name)  # callee name: not a variable read
        elif isinstance(func, ast.Attribute):
            fv = g.name(g.add("py.Attribute", nid), name)
            if is_python_source_attribute(callee):
                g.flags[fv] |= IR.SOURCE
            rv = self.node(recv, fv)
            g.flow(rv, fv)
        else:
            fv = self.node(func, nid)
        vals = [self.node(a, nid) for a in n.args]
        kwargs: dict[str, int] = {}
        for i, kw in enumerate(n.keywords):
            kid = g.name(g.add("py.keyword", nid), kw.arg or "")
            kv = self.node(kw.value, kid)
            g.flow(kv, kid)
            kwargs[kw.arg if kw.arg is not None else f"**{i}"] = kid
        rule = classify_python_call(callee, len(vals), tuple(kwargs), recv is not None and self.stringy(recv, -1))
        if rule.wrapper:
            rule = replace(rule, sink_positions=self.statement_positions(n.args, vals))
        if rule.sink and callee in python_argv_functions() and n.args and not _shell_may_be_on(n) and self.fixed_program(n.args[0]):
            # subprocess.run(["ping", "-c", "1", host]) without a shell: the arguments are not a
            # command line and the program is a literal, so nothing tainted picks what runs.
            rule = replace(rule, sink_positions=(), sink_keywords=())
        base = self_key(recv) if recv is not None else None
        precise = None
        lit = None
        if base is not None and n.args:
            index = self.const(n.args[0])
            lit = None if index is UNKNOWN else hashable(index)
        elif base is not None and name == "pop" and not n.args:
            length = g.container_length(base)
            lit = None if length is None else length - 1  # lst.pop(): the last element
        if base is not None and (name in GET_METHODS or name == "pop") and lit is not None:
            precise = g.container_read(base, lit)
        if precise is not None:  # d.get("k") reads exactly what was stored under "k"
            for d in precise:
                g.flow(d, nid)
            if not precise and len(vals) >= 2:
                g.flow(vals[1], nid)  # d.get("k", default) / d.pop("k", default) with nothing under "k"
        elif fv >= 0:
            g.flow(fv, nid)
        if base is not None and isinstance(recv, ast.Name):
            if name in STORE_METHODS and vals:
                g.define(base, rv, vals[-1], strong=False)
                if name in APPEND_METHODS and len(vals) == 1:
                    g.container_store(base, None, vals[0], append=True)
                elif name == "insert" and len(vals) == 2:  # lst.insert(i, v): later ones shift
                    g.container_insert(base, lit, vals[1])
                else:
                    g.container_forget(base)
            elif name == "pop" and len(vals) <= 2:
                g.container_remove(base, lit)
            elif name not in READ_METHODS:
                g.container_forget(base)
        if rule.concat:
            g.flags[nid] |= IR.CONCAT
        via_self = isinstance(func, ast.Name) or (callee.count(".") == 1 and callee.split(".")[0] in ("self", "cls"))
        owner, static = "", False
        if not via_self and recv is not None:
            if isinstance(recv, ast.Call) and isinstance(recv.func, ast.Name) and recv.func.id in self.file_classes:
                owner = recv.func.id  # Helper().m(x)
            elif isinstance(recv, ast.Name) and recv.id in self.file_classes and not g.is_local(recv.id):
                owner, static = recv.id, True  # Helper.m(x)
            elif isinstance(recv, ast.Name):
                owner = self.local_types.get(recv.id, "")  # h = Helper(); h.m(x)
        g.call(CallInfo(nid, name, vals, kwargs, via_self, rule, skip_self=not isinstance(func, ast.Name),
                        owner_hint=owner, static_call=static))
        return nid


def _receiver_word(value: ast.AST) -> str:
    """The receiver's own name for subtokens: ``cursor`` of ``self.cursor``, ``db`` of ``db.session``."""
    if isinstance(value, ast.Name):
        return value.id
    if isinstance(value, ast.Attribute):
        return value.attr
    if isinstance(value, ast.Call):
        return _receiver_word(value.func)
    return ""
