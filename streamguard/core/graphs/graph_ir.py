"""Language-neutral graph under construction, with the flow-sensitive def-use machinery.

The Python and Java frontends walk their syntax trees once, in source order, and call into
`GraphIR`: ``add`` creates a node (with an ``ast_child`` edge from its parent), ``flow`` records a
value-flow edge, ``use``/``define`` maintain the reaching definitions in ``env``. Branches fork
the environment and join it afterwards; a statically dead branch is walked in ``dead`` mode
(nodes flagged dead, its definitions never joined back). Loops get their loop-carried def-use
edges after the body has been walked once. Calls and function definitions are recorded and
resolved in `finish`, so calls to helpers defined further down the file are linked too.

Node flags, edge types and the state records are in ``ir.py``; literal-index containers in
``container_slots.py``; call recording and resolution in ``call_linking.py``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .call_linking import CallLinking
from .consts import UNKNOWN
from .container_slots import ContainerSlots
from .ir import (AST_CHILD, DATA_FLOW, DEAD, DEF, IN_LOOP, NEXT_STMT, USE, BudgetExceeded, CallInfo, Env, FuncInfo,
                 LoopFrame, Scope)


class GraphIR(ContainerSlots, CallLinking):
    """Nodes, typed edges and analysis state of one graph under construction."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.kinds: list[str] = []
        self.flags: list[int] = []
        self.depth: list[int] = []
        self.lit_len: list[int] = []
        self.nchild: list[int] = []
        # Source line (0-based) of each node, for program slices (`gadget.py`); -1 when unknown.
        # The frontends set `line` to the line of the syntax node being walked.
        self.lines: list[int] = []
        self.line = -1
        self.edges: list[tuple[int, int, int]] = []
        self._edge_set: set[tuple[int, int, int]] = set()
        self.use_defs: dict[int, set[int]] = {}
        self.const_defs: set[int] = set()
        # Definitions whose value folded to a constant (locals bound to 86, "ABC", 7 * 42 ...).
        self.const_val: dict[int, object] = {}
        self.env: Env | None = Env()
        self.dead = False
        self.loop_depth = 0
        self.loop_uses: list[list[tuple[str, int]]] = []
        self.break_stack: list[list[Env | None]] = []
        self.continue_stack: list[list[Env | None]] = []
        self.scope = Scope("module", None)
        self.func_stack: list[FuncInfo | None] = [None]
        self.functions: dict[str, list[FuncInfo]] = {}
        self.calls: list[CallInfo] = []
        self.pending_uses: list[tuple[int, str, Scope | None]] = []
        self.truncated = False
        # Why the graph is incomplete: "budget" (node budget spent), "depth" (a statement nested
        # deeper than the walk can follow was cut at that statement; the rest was kept).
        self.truncation: set[str] = set()
        self.depth_errors = 0  # statements cut by RecursionError (see walk_statements)
        # Sink class of each sink node (name, see catalog.SINK_CLASSES) and the sink classes each
        # class-specific sanitizer covers; universal sanitizers carry only the SANITIZER flag.
        self.sink_class: dict[int, str] = {}
        self.sanitizes: dict[int, tuple[str, ...]] = {}
        self._placeholder = 0  # last loop-head placeholder id handed out (negative)
        # Names (identifiers, called methods with their receiver, types) and string-literal text of
        # nodes, for the subtoken features (subtokens.py).
        self.names: dict[int, tuple[str, ...]] = {}
        self.literals: dict[int, str] = {}

    # ----------------------------------------------------------------------------- nodes, edges
    def add(self, kind: str, parent: int, flags: int = 0, lit_len: int = -1) -> int:
        """Create a node (ast_child edge from ``parent`` unless it is -1) and return its id."""
        # The hottest method of a build (once per node): attributes are read once each.
        kinds = self.kinds
        nid = len(kinds)
        if nid >= self.budget:
            self.truncated = True
            self.truncation.add("budget")
            raise BudgetExceeded
        if self.dead:
            flags |= DEAD
        if self.loop_depth:
            flags |= IN_LOOP
        kinds.append(kind)
        self.flags.append(flags)
        self.lit_len.append(lit_len)
        self.lines.append(self.line)
        nchild = self.nchild
        nchild.append(0)
        depth = self.depth
        if parent >= 0:
            depth.append(depth[parent] + 1)
            nchild[parent] += 1
            self.edges.append((parent, nid, AST_CHILD))
        else:
            depth.append(0)
        return nid

    def name(self, nid: int, *names: str) -> int:
        """Attach names to a node (its own name first); returns ``nid``."""
        if nid >= 0:
            self.names[nid] = tuple(x for x in names if x)
        return nid

    def edge(self, src: int, dst: int, etype: int) -> None:
        """Record a directed edge once (ast_child edges are added by `add`)."""
        if src < 0 or dst < 0 or src == dst:
            return
        key = (src, dst, etype)
        if key not in self._edge_set:
            self._edge_set.add(key)
            self.edges.append(key)

    def flow(self, src: int, dst: int) -> None:
        if src < 0 or dst < 0 or src == dst:
            return
        key = (src, dst, DATA_FLOW)
        if key not in self._edge_set:
            self._edge_set.add(key)
            self.edges.append(key)

    def mark(self, node: int, bits: int) -> None:
        if node >= 0:
            self.flags[node] |= bits

    # ---------------------------------------------------------------------------- def-use
    def use(self, key: str, node: int) -> None:
        """``node`` reads variable ``key``: link it to the reaching definitions."""
        self.flags[node] |= USE
        env = self.env
        defs = env.vars.get(key) if env is not None else None
        if defs is None:
            self.pending_uses.append((node, key, self._lookup_scope(key)))
            return
        if defs:
            self.use_defs.setdefault(node, set()).update(defs)
        if self.loop_uses:
            self.loop_uses[-1].append((key, node))

    def define(self, key: str, node: int, value: int = -1, *, strong: bool = True, const: bool = False) -> None:
        """``node`` defines variable ``key`` with the value of node ``value`` (-1: unknown/none)."""
        self.flags[node] |= DEF
        if value >= 0:
            self.flow(value, node)
        if const:
            self.const_defs.add(node)
        env = self.env
        if env is not None:
            if not strong:
                # A partial update (list.add(v), a[i] = v, x++) also reads the old value: the new
                # definition node carries the old definitions, so one node replaces them all and
                # the reaching sets stay small on long runs of updates.
                old = env.vars.get(key)
                if old:
                    self.flags[node] |= USE
                    self.use_defs.setdefault(node, set()).update(old)
                    if self.loop_uses:
                        self.loop_uses[-1].append((key, node))
            env.vars[key] = frozenset((node,))
            if strong:
                env.slots.pop(key, None)
                env.lens.pop(key, None)
        if not self.dead:
            scope = self._class_scope() if "." in key else self.scope
            scope.all_defs.setdefault(key, set()).add(node)

    def define_global(self, key: str, node: int) -> None:
        """Also register definition ``node`` of ``key`` in the outermost scope (Python ``global``)."""
        if self.dead:
            return
        s = self.scope
        while s.parent is not None:
            s = s.parent
        s.all_defs.setdefault(key, set()).add(node)

    def declare(self, key: str) -> None:
        """A local declared without a value: it shadows any field of the same name."""
        if self.env is not None:
            self.env.vars[key] = frozenset()
            self.env.slots.pop(key, None)
            self.env.lens.pop(key, None)

    def local_const(self, key: str) -> object:
        """The constant value of local ``key`` on this path, or UNKNOWN.

        Known when every reaching definition assigned the same folded constant (a loop-head
        placeholder, a partial update or any other definition makes it unknown).
        """
        env = self.env
        defs = env.vars.get(key) if env is not None else None
        if not defs:
            return UNKNOWN
        value = UNKNOWN
        for d in defs:
            v = self.const_val.get(d, UNKNOWN)
            if v is UNKNOWN or (value is not UNKNOWN and (v != value or type(v) is not type(value))):
                return UNKNOWN
            value = v
        return value

    def is_local(self, key: str) -> bool:
        return self.env is not None and key in self.env.vars

    def _lookup_scope(self, key: str) -> Scope | None:
        # Attribute keys (self.x / this.x) live in the class; other names not defined in the
        # current function resolve in the enclosing scopes.
        if "." in key:
            return self._class_scope()
        s = self.scope
        return s.parent if s.kind == "function" else s

    def _class_scope(self) -> Scope:
        s = self.scope
        while s.kind != "class" and s.parent is not None:
            s = s.parent
        return s

    # ----------------------------------------------------------------------------- control flow
    def walk_statements(self, stmts: list, node_fn, parent: int, head: int = -1) -> None:
        """Walk a statement list in order, chaining `next_stmt` edges.

        Once the environment is gone (after return/break/raise/throw), the rest is unreachable and
        is walked in dead mode.

        A statement nested deeper than the interpreter's recursion limit allows (a 5,000-term
        string concatenation, thousands of nested blocks) is cut where the limit hit, and the
        walk goes on with the next statement: the cut is recorded (``truncation``), never silent,
        and it never hides the statements after it. The builder retries such code on a thread
        with a deep stack first (see ``builder.build_graph``).
        """
        prev = head
        for stmt in stmts:
            start = len(self.kinds)
            try:
                if self.env is None and not self.dead:
                    with self.dead_mode():
                        sid = node_fn(stmt, parent)
                else:
                    sid = node_fn(stmt, parent)
            except RecursionError:
                self.depth_errors += 1
                self.truncated = True
                self.truncation.add("depth")
                sid = start if start < len(self.kinds) else -1
            if prev >= 0 and sid >= 0:
                self.edge(prev, sid, NEXT_STMT)
            if sid >= 0:
                prev = sid

    @contextmanager
    def dead_mode(self, dead: bool = True) -> Iterator[None]:
        """Walk a statically dead region: nodes flagged dead, environment changes discarded."""
        if not dead:
            yield
            return
        saved_env, saved_dead = self.env, self.dead
        self.env = saved_env.copy() if saved_env is not None else Env()
        self.dead = True
        try:
            yield
        finally:
            self.env, self.dead = saved_env, saved_dead

    @contextmanager
    def loop(self) -> Iterator[LoopFrame]:
        """Enter a loop: ``frame.entry`` (also the current env) is the environment at the loop head."""
        frame = LoopFrame(before=self.env)
        if self.env is not None:
            entry = self.env.copy()
            for k, defs in entry.vars.items():
                self._placeholder -= 1
                frame.placeholders[self._placeholder] = k
                entry.vars[k] = defs | {self._placeholder}
            frame.entry = entry
        self.env = frame.entry
        self.loop_uses.append(frame.uses)
        self.break_stack.append(frame.breaks)
        self.continue_stack.append(frame.continues)
        self.loop_depth += 1
        try:
            yield frame
        finally:
            self.loop_uses.pop()
            self.break_stack.pop()
            self.continue_stack.pop()
            self.loop_depth -= 1
            if self.loop_uses:  # an enclosing loop resolves its own placeholders in these uses
                self.loop_uses[-1].extend(frame.uses)

    @contextmanager
    def breakable(self) -> Iterator[list[Env | None]]:
        """Enter a switch: ``break`` leaves it, collecting the environments at each break."""
        breaks: list[Env | None] = []
        self.break_stack.append(breaks)
        try:
            yield breaks
        finally:
            self.break_stack.pop()

    def close_loop(self, frame: LoopFrame, end_env: Env | None) -> None:
        """Resolve the loop-head placeholders: value before the loop or at the end of the body."""
        before, end = frame.before, end_env
        for ph, key in frame.placeholders.items():
            defs = set(before.vars.get(key, ())) if before is not None else set()
            if end is not None:
                defs.update(end.vars.get(key, ()))
            defs.discard(ph)
            frame.subst[ph] = frozenset(defs)
        for _, node in frame.uses:
            ud = self.use_defs.get(node)
            if not ud:
                continue
            hit = [d for d in ud if d in frame.subst]
            for d in hit:
                ud.discard(d)
                ud.update(frame.subst[d])

    def jump(self, kind: str) -> None:
        """break / continue: remember the environment for the loop exit/head, then fall unreachable."""
        stack = self.break_stack if kind == "break" else self.continue_stack
        if stack and not self.dead:
            stack[-1].append(self.env)
        self.env = None

    # ------------------------------------------------------------------------ functions, calls
    @contextmanager
    def function(self, info: FuncInfo | None, scope_kind: str = "function") -> Iterator[None]:
        """Walk a function (or class) body in its own scope with a fresh environment."""
        saved = (self.env, self.scope, self.loop_uses, self.break_stack, self.continue_stack, self.loop_depth)
        self.env = Env()
        self.scope = Scope(scope_kind, self.scope)
        self.loop_uses, self.break_stack, self.continue_stack, self.loop_depth = [], [], [], 0
        self.func_stack.append(info)
        if info is not None and not self.dead:
            self.functions.setdefault(info.name, []).append(info)
        try:
            yield
        finally:
            self.func_stack.pop()
            self.env, self.scope, self.loop_uses, self.break_stack, self.continue_stack, self.loop_depth = saved

    def returns(self, value: int) -> None:
        info = self.func_stack[-1]
        if info is not None and value >= 0 and not self.dead:
            info.returns.append(value)
        self.env = None

    def guard(self, env: Env | None, key: str, node: int, bits: int) -> Env | None:
        """``env`` with ``key`` redefined by the branch test ``node`` that proved it safe on this path.

        Used for ``if x not in ALLOWED: raise`` and the like: on the path where the membership test
        (or containment check) holds, ``x`` is a member of a constant collection, so the test node
        becomes a definition of ``x`` flagged ``bits`` (SANITIZER or PATH_SANITIZER), which stops
        the taint of the old value. Only variables local to the function are refined.
        """
        if env is None or self.dead or node < 0 or key not in env.vars:
            return env
        out = env.copy()
        out.vars[key] = frozenset((node,))
        out.slots.pop(key, None)
        out.lens.pop(key, None)
        self.flags[node] |= DEF | bits
        return out
