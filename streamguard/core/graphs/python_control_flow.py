"""Python control flow: ``match``, ``if`` (with its guards), loops, ``with`` and ``try``.

`PyControlFlow` is a part of the Python frontend's walker (``python_frontend.py``): branches fork
and join the walker's `GraphIR` environment, a branch that folds to a constant is walked dead,
and a membership test against a constant collection refines the tested name on its true side.
"""

from __future__ import annotations

import ast

from . import ir as IR
from .consts import UNKNOWN
from .python_expressions import self_key
from .python_module_constants import literal_collection


class PyControlFlow:
    """Control-flow statement handlers of the Python walker."""

    def Match(self, n, parent: int) -> int:
        """``match``: cases are alternatives; with a constant subject only the first case that
        surely matches is live (earlier ones that surely fail and later ones are dead)."""
        g = self.g
        nid = g.add("py.Match", parent)
        subject = self.const(n.subject)
        sv = self.node(n.subject, nid)
        g.flow(sv, nid)
        before = g.env
        outs = []
        settled = False  # an earlier case matches for sure: the rest cannot run
        for case in n.cases:
            verdict = _case_matches(case, subject, self.const)
            dead = settled or verdict is False
            cid = g.add("py.match_case", nid)
            g.env = before.copy() if before is not None else None
            with g.dead_mode(dead):
                self.node(case.pattern, cid)
                for sub in ast.walk(case.pattern):
                    name = getattr(sub, "name", None)
                    if isinstance(sub, (ast.MatchAs, ast.MatchStar)) and name:
                        g.define(name, g.add("py.Name", cid, IR.IDENT), sv)
                if case.guard is not None:
                    self.node(case.guard, cid)
                bound = g.env
            end = self.branch(case.body, cid, bound, dead)
            g.edge(nid, cid, IR.NEXT_STMT)
            if not dead:
                outs.append(end)
            if verdict is True and case.guard is None:
                settled = True
        if not settled:
            outs.append(before)  # no case matched
        g.env = IR.join(*outs) if outs else None
        return nid

    def If(self, n: ast.If, parent: int) -> int:
        g = self.g
        nid = g.add("py.If", parent)
        truth = self.truth(n.test)
        when_true, when_false = self.guards(n.test) if truth is None else ([], [])
        self.watch = {id(e): -1 for _, e, _ in when_true + when_false}
        self.mark_condition(self.node(n.test, nid), truth)
        watched, self.watch = self.watch, {}
        before = g.env
        env_true, env_false = before, before
        for key, e, bits in when_true:
            env_true = g.guard(env_true, key, watched[id(e)], bits)
        for key, e, bits in when_false:
            env_false = g.guard(env_false, key, watched[id(e)], bits)
        env_then = self.branch(n.body, nid, env_true, truth is False)
        if n.orelse:
            env_else = self.branch(n.orelse, nid, env_false, truth is True)
        else:
            env_else = None if truth is True else env_false
        g.env = IR.join(env_then, env_else)
        return nid

    def guards(self, test: ast.AST) -> tuple[list, list]:
        """Variables a branch test proves safe: (on the true path, on the false path).

        Each entry is ``(variable, test sub-expression, flag)``: ``x in ALLOWED`` (a constant
        collection) proves ``x`` one of its literals (SANITIZER); ``p.startswith(BASE)`` with a
        constant ``BASE`` and ``p`` bound to ``os.path.realpath(...)`` (or abspath/normpath)
        confines ``p`` to that directory (PATH_SANITIZER). ``not``, ``and`` and ``or`` combine them.
        """
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            t, f = self.guards(test.operand)
            return f, t
        if isinstance(test, ast.BoolOp):
            parts = [self.guards(v) for v in test.values]
            if isinstance(test.op, ast.And):  # all true on the true path
                return [x for t, _ in parts for x in t], []
            return [], [x for _, f in parts for x in f]  # or: all false on the false path
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.In, ast.NotIn)):
            key = self_key(test.left)
            if key is not None and self.constant_collection(test.comparators[0]):
                hit = [(key, test, IR.SANITIZER)]
                return (hit, []) if isinstance(test.ops[0], ast.In) else ([], hit)
        if (isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "startswith"
                and len(test.args) == 1 and not test.keywords and isinstance(self.const(test.args[0]), str)
                and self.const(test.args[0])):
            key = self_key(test.func.value)
            env = self.g.env
            defs = env.vars.get(key) if key is not None and env is not None else None
            if defs and defs <= self.normalised_defs:
                return [(key, test, IR.PATH_SANITIZER)], []
        return [], []

    def constant_collection(self, n: ast.AST) -> bool:
        """A literal collection, or a module name bound once to one (never a local)."""
        if isinstance(n, ast.Name):
            return n.id in self.collections and not self.g.is_local(n.id)
        return literal_collection(n) is not None

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


def _case_matches(case, subject: object, const) -> bool | None:
    """Whether a ``match`` case surely matches (True), surely not (False) or may (None)."""
    return _pattern_matches(case.pattern, subject, const)


def _pattern_matches(p, subject: object, const) -> bool | None:
    if isinstance(p, ast.MatchAs) and p.pattern is None:
        return True  # `case _` / `case x`: irrefutable
    if isinstance(p, ast.MatchAs):
        return _pattern_matches(p.pattern, subject, const)
    if subject is UNKNOWN:
        return None
    if isinstance(p, ast.MatchValue):
        v = const(p.value)
        return None if v is UNKNOWN else (v == subject and type(v) is type(subject))
    if isinstance(p, ast.MatchSingleton):
        return p.value is subject
    if isinstance(p, ast.MatchOr):
        verdicts = [_pattern_matches(q, subject, const) for q in p.patterns]
        return True if True in verdicts else False if all(v is False for v in verdicts) else None
    return None
