"""Call sites and their resolution: library rules on the call node, links to the file's own functions.

`CallLinking` is a part of `GraphIR` (``graph_ir.py``): ``call`` records a call site with the
flags of its catalog rule, and ``finish`` resolves cross-scope uses and every call once the whole
file is walked, so calls to helpers defined further down the file are linked too: a call to a
function of this file gets ``param_flow``/``return_flow`` edges (its own body decides), any other
call ``sink_arg``/``call_arg`` edges from its arguments.
"""

from __future__ import annotations

from dataclasses import replace

from .ir import (CALL, CALL_ARG, CONCAT, DEAD, LOCAL_CALL, PARAM_FLOW, PARAM_SOURCE, PATH_SANITIZER, PATH_SINK,
                 RETURN_FLOW, SANITIZER, SANITIZER_SOME, SINK, SINK_ARG, SOURCE, CallInfo, FuncInfo, Scope)


class CallLinking:
    """Recording and resolving the call sites of `GraphIR`."""

    flags: list[int]
    calls: list[CallInfo]
    functions: dict[str, list[FuncInfo]]
    pending_uses: list[tuple[int, str, Scope | None]]
    use_defs: dict[int, set[int]]
    sink_class: dict[int, str]
    sanitizes: dict[int, tuple[str, ...]]

    def call(self, info: CallInfo) -> None:
        self.flags[info.node] |= CALL
        r = info.rule
        self.flags[info.node] |= ((SOURCE if r.source else 0) | (SINK if r.sink else 0)
                                  | (PATH_SINK if r.sink and r.path_sink else 0)
                                  | (SANITIZER if r.sanitizer else 0) | (PATH_SANITIZER if r.path_sanitizer else 0)
                                  | (CONCAT if r.concat else 0))
        if r.sink and r.sink_class:
            self.sink_class[info.node] = r.sink_class
        if r.sanitizes and not r.sanitizer:
            self.sanitizes[info.node] = r.sanitizes
            if any(c != "path" for c in r.sanitizes):
                self.flags[info.node] |= SANITIZER_SOME
        self.calls.append(info)

    def unsink(self, node: int) -> None:
        """Call ``node`` turns out not to be a sink (``Paths.get(x).getFileName()`` only names a file)."""
        if node < 0:
            return
        self.flags[node] &= ~(SINK | PATH_SINK)
        self.sink_class.pop(node, None)
        for c in reversed(self.calls):
            if c.node == node:
                c.rule = replace(c.rule, sink=False, path_sink=False, sink_positions=(), sink_keywords=())
                return

    def finish(self) -> None:
        """Resolve cross-scope uses and calls, seed entry parameters, emit def-use edges."""
        for node, key, scope in self.pending_uses:
            s = scope
            while s is not None:
                defs = s.all_defs.get(key)
                if defs:
                    self.use_defs.setdefault(node, set()).update(defs)
                    break
                s = s.parent
                # A bare name never resolves in a class body from inside a method.
                while s is not None and s.kind == "class" and "." not in key:
                    s = s.parent
        called: set[int] = set()
        for c in self.calls:
            targets = self._targets(c)
            if targets:
                self._link_local_call(c, targets)
                called.update(t.node for t in targets)
            else:
                self._link_library_call(c)
        for infos in self.functions.values():
            for info in infos:
                if info.node not in called:
                    for _, pnode, may_source in info.params:
                        if may_source and not self.flags[pnode] & DEAD:
                            self.flags[pnode] |= PARAM_SOURCE
        for use in sorted(self.use_defs):
            defs = self.use_defs[use]
            if any(d < 0 for d in defs):  # placeholders of loops inside nested lambdas: drop
                defs.difference_update([d for d in defs if d < 0])
            for d in sorted(defs):
                self.flow(d, use)

    def _targets(self, c: CallInfo) -> list[FuncInfo]:
        if c.via_self:
            cands = self.functions.get(c.name, [])
        elif c.owner_hint:
            # A method of another class of this file: new Helper().m(x), Helper.m(x), h.m(x).
            cands = [f for f in self.functions.get(c.name, []) if f.owner == c.owner_hint]
        else:
            return []
        if len(cands) > 1 and c.nparams_hint >= 0:  # Java overloads: prefer matching arity
            exact = [f for f in cands if len(f.params) == c.nparams_hint]
            cands = exact or cands
        return cands

    def _link_local_call(self, c: CallInfo, targets: list[FuncInfo]) -> None:
        # The helper's own body decides; library-name guesses would double count.
        self.flags[c.node] = (self.flags[c.node] & ~(SOURCE | SINK | PATH_SINK | SANITIZER | PATH_SANITIZER
                                                     | SANITIZER_SOME)) | LOCAL_CALL
        self.sink_class.pop(c.node, None)
        self.sanitizes.pop(c.node, None)
        for t in targets:
            if c.static_call:  # Helper.m(x): only a classmethod gets an implicit first argument
                skip = c.skip_self and t.is_method and not t.static and bool(t.params) and t.params[0][0] == "cls"
            else:
                skip = c.skip_self and t.is_method and not t.static
            params = t.params[1:] if skip else t.params
            for i, a in enumerate(c.args):
                if i < len(params):
                    self.edge(a, params[i][1], PARAM_FLOW)
            by_name = {p[0]: p[1] for p in params}
            for k, a in c.kwargs.items():
                if k in by_name:
                    self.edge(a, by_name[k], PARAM_FLOW)
            for r in t.returns:
                self.edge(r, c.node, RETURN_FLOW)

    def _link_library_call(self, c: CallInfo) -> None:
        rule = c.rule
        if rule.sink:
            pos = rule.sink_positions
            for i, a in enumerate(c.args):
                self.edge(a, c.node, SINK_ARG if pos is None or i in pos else CALL_ARG)
            for k, a in c.kwargs.items():
                self.edge(a, c.node, SINK_ARG if pos is None or k in rule.sink_keywords else CALL_ARG)
        else:
            for a in c.args:
                self.edge(a, c.node, CALL_ARG)
            for a in c.kwargs.values():
                self.edge(a, c.node, CALL_ARG)
