"""Language-neutral graph under construction, with the flow-sensitive def-use machinery.

The Python and Java frontends walk their syntax trees once, in source order, and call into
`GraphIR`: ``add`` creates a node (with an ``ast_child`` edge from its parent), ``flow`` records a
value-flow edge, ``use``/``define`` maintain the reaching definitions in ``env``. Branches fork
the environment and join it afterwards; a statically dead branch is walked in ``dead`` mode
(nodes flagged dead, its definitions never joined back). Loops get their loop-carried def-use
edges after the body has been walked once. Calls and function definitions are recorded and
resolved in `finish`, so calls to helpers defined further down the file are linked too.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Iterator

from .consts import UNKNOWN
from .rules import PLAIN, CallRule
from .vocab import EDGE_INDEX

# Node flag bits set by the frontends (the builder maps them onto feature columns).
SOURCE = 1 << 0
PARAM_SOURCE = 1 << 1
SINK = 1 << 2
SANITIZER = 1 << 3
LITERAL = 1 << 4
SQL_LITERAL = 1 << 5
PLACEHOLDER = 1 << 6
CONCAT = 1 << 7
CALL = 1 << 8
LOCAL_CALL = 1 << 9
IDENT = 1 << 10
DEF = 1 << 11
USE = 1 << 12
DEAD = 1 << 13
CONST_TRUE = 1 << 14
CONST_FALSE = 1 << 15
IN_LOOP = 1 << 16
PATH_SINK = 1 << 17       # with SINK: the dangerous argument is a file path
PATH_SANITIZER = 1 << 18  # safe for path sinks only (basename, confined canonical path)
SANITIZER_SOME = 1 << 19  # safe for some sink classes other than path (an HTML encoder: html only)

AST_CHILD = EDGE_INDEX["ast_child"]
NEXT_STMT = EDGE_INDEX["next_stmt"]
DATA_FLOW = EDGE_INDEX["data_flow"]
CALL_ARG = EDGE_INDEX["call_arg"]
SINK_ARG = EDGE_INDEX["sink_arg"]
PARAM_FLOW = EDGE_INDEX["param_flow"]
RETURN_FLOW = EDGE_INDEX["return_flow"]


# Cap on the reaching definitions kept per variable at a join (bounds time on generated code).
MAX_REACHING_DEFS = 64


class BudgetExceeded(Exception):
    """Raised by `GraphIR.add` when the hard node budget is spent; the walk stops there."""


class Env:
    """Reaching definitions: variable key -> ids of defining nodes, plus literal-index/key slots."""

    __slots__ = ("vars", "slots", "lens")

    def __init__(self) -> None:
        self.vars: dict[str, frozenset[int]] = {}
        # Containers whose every store so far used a literal index/key: key -> {index/key: defs}.
        self.slots: dict[str, dict[object, frozenset[int]]] = {}
        self.lens: dict[str, int] = {}  # known length of append-only containers

    def copy(self) -> Env:
        e = Env()
        e.vars = dict(self.vars)
        e.slots = {k: dict(v) for k, v in self.slots.items()}
        e.lens = dict(self.lens)
        return e


def join(*envs: Env | None) -> Env | None:
    """Merge environments at a control-flow join; None (unreachable) is the neutral element."""
    live = [e for e in envs if e is not None]
    if not live:
        return None
    out = live[0].copy()
    for e in live[1:]:
        for k, defs in e.vars.items():
            cur = out.vars.get(k)
            merged = defs if cur is None else cur | defs
            if len(merged) > MAX_REACHING_DEFS:  # pathological code: keep the latest definitions
                merged = frozenset(sorted(merged)[-MAX_REACHING_DEFS:])
            out.vars[k] = merged
        for k in list(out.slots):
            other = e.slots.get(k)
            if other is None:
                del out.slots[k]
                continue
            mine = out.slots[k]
            for idx in list(mine):
                if idx in other:
                    mine[idx] = mine[idx] | other[idx]
                else:  # the other path did not store this index: fall back to the whole container
                    del mine[idx]
        for k in list(out.lens):
            if e.lens.get(k) != out.lens[k]:
                del out.lens[k]
    return out


@dataclass
class LoopFrame:
    """State of one loop being walked.

    On entry every variable gets a placeholder definition (a negative id standing for "the value
    at the loop head"). A use inside the body that still sees the placeholder is exposed to the
    previous iteration; `GraphIR.close_loop` replaces the placeholder by the definitions live at
    the head (before the loop, or at the end of the body). A use after a kill in the body does not
    see the placeholder, so a constant assignment in the body really kills the taint.
    """

    before: Env | None = None
    entry: Env | None = None
    placeholders: dict[int, str] = field(default_factory=dict)
    subst: dict[int, frozenset[int]] = field(default_factory=dict)
    uses: list[tuple[str, int]] = field(default_factory=list)
    breaks: list[Env | None] = field(default_factory=list)
    continues: list[Env | None] = field(default_factory=list)

    def resolve(self, env: Env | None) -> Env | None:
        """Replace this loop's placeholders in an environment seen after the loop."""
        if env is None or not self.subst:
            return env
        for k, defs in env.vars.items():
            hit = [d for d in defs if d in self.subst]
            if hit:
                new = set(defs).difference(hit)
                for d in hit:
                    new.update(self.subst[d])
                env.vars[k] = frozenset(new)
        return env


@dataclass
class Scope:
    """A function, class or module: collects its (live) definitions for cross-scope lookups."""

    kind: str
    parent: Scope | None
    all_defs: dict[str, set[int]] = field(default_factory=dict)


@dataclass
class FuncInfo:
    """A function or method defined in the file."""

    name: str
    node: int
    is_method: bool
    params: list[tuple[str, int, bool]] = field(default_factory=list)  # (name, def node, may be a source)
    returns: list[int] = field(default_factory=list)
    owner: str = ""        # enclosing class ("" at module level)
    static: bool = False   # Python @staticmethod: no implicit first parameter


@dataclass
class CallInfo:
    """A call site, resolved against the file's functions in `GraphIR.finish`."""

    node: int
    name: str
    args: list[int]
    kwargs: dict[str, int]
    via_self: bool  # unqualified, or on self/this: may target a function of this file
    rule: CallRule = PLAIN
    nparams_hint: int = -1
    skip_self: bool = False  # Python self.m(...): the first parameter of a method is the receiver
    owner_hint: str = ""  # class of the receiver when the file shows it (new Helper().m(), Helper.m(), h.m())
    static_call: bool = False  # called on the class itself (Helper.m(x)), not on an instance


class GraphIR:
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
        nid = len(self.kinds)
        if nid >= self.budget:
            self.truncated = True
            self.truncation.add("budget")
            raise BudgetExceeded
        if self.dead:
            flags |= DEAD
        if self.loop_depth:
            flags |= IN_LOOP
        self.kinds.append(kind)
        self.flags.append(flags)
        self.lit_len.append(lit_len)
        self.nchild.append(0)
        self.lines.append(self.line)
        if parent >= 0:
            self.depth.append(self.depth[parent] + 1)
            self.nchild[parent] += 1
            self.edges.append((parent, nid, AST_CHILD))
        else:
            self.depth.append(0)
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

    # ------------------------------------------------------------------ literal-index containers
    def container_new(self, key: str, items: dict[object, int] | None, *, sequence: bool = True) -> None:
        """``key`` now holds a fresh container whose elements at literal positions are known.

        ``sequence``: a list/array (integer positions that shift on insert/remove, a known
        length); otherwise a map (keys).
        """
        if self.env is None:
            return
        self.env.slots[key] = {k: frozenset((v,)) for k, v in (items or {}).items()}
        if sequence and (items is None or all(isinstance(k, int) for k in items)):
            self.env.lens[key] = len(items or {})
        else:
            self.env.lens.pop(key, None)

    def _position(self, key: str, index: object) -> object:
        """Negative list positions count from the end (``lst[-1]``); None when that is unknown."""
        if isinstance(index, int) and not isinstance(index, bool) and index < 0:
            n = self.env.lens.get(key) if self.env is not None else None
            return None if n is None else index + n
        return index

    def container_store(self, key: str, index: object, value: int, *, append: bool = False) -> None:
        """Record a store into container ``key``; a non-literal index drops the precise tracking."""
        env = self.env
        if env is None or key not in env.slots:
            return
        if append:
            n = env.lens.get(key)
            if n is None:
                env.slots.pop(key, None)
                return
            index = n
            env.lens[key] = n + 1
        index = self._position(key, index)
        if index is None:
            env.slots.pop(key, None)
            env.lens.pop(key, None)
            return
        env.slots[key][index] = frozenset((value,))

    def container_insert(self, key: str, index: object, value: int) -> None:
        """``list.add(i, v)`` / ``lst.insert(i, v)``: later elements move up one position."""
        env = self.env
        if env is None or key not in env.slots:
            return
        n = env.lens.get(key)
        index = self._position(key, index)
        if n is None or not isinstance(index, int) or isinstance(index, bool):
            self.container_forget(key)
            return
        index = min(index, n)
        old = env.slots[key]
        env.slots[key] = {(j + 1 if isinstance(j, int) and j >= index else j): d for j, d in old.items()}
        env.slots[key][index] = frozenset((value,))
        env.lens[key] = n + 1

    def container_remove(self, key: str, index: object) -> None:
        """``list.remove(i)`` / ``lst.pop(i)`` (later elements move down) or ``map.remove(k)``."""
        env = self.env
        if env is None or key not in env.slots:
            return
        if index is None:
            self.container_forget(key)
            return
        n = env.lens.get(key)
        if n is None:  # a map: the key is gone
            env.slots[key].pop(index, None)
            return
        index = self._position(key, index)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
            self.container_forget(key)
            return
        old = env.slots[key]
        env.slots[key] = {(j - 1 if isinstance(j, int) and j > index else j): d for j, d in old.items() if j != index}
        env.lens[key] = n - 1

    def container_length(self, key: str) -> int | None:
        return self.env.lens.get(key) if self.env is not None else None

    def container_forget(self, key: str) -> None:
        if self.env is not None:
            self.env.slots.pop(key, None)
            self.env.lens.pop(key, None)

    def container_read(self, key: str, index: object) -> frozenset[int] | None:
        """Definitions of element ``index`` of ``key`` when tracked precisely, else None.

        A tracked container saw only literal-index stores since it was created empty or from a
        literal, so an index nothing was stored at holds nothing (``frozenset()``).
        """
        env = self.env
        if env is None or index is None:
            return None
        slots = env.slots.get(key)
        if slots is None:
            return None
        index = self._position(key, index)
        if index is None:
            return None
        return slots.get(index, frozenset())

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

    # ---------------------------------------------------------------------------------- finish
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
