"""Node flags, edge types and the analysis records of the language-neutral graph.

`GraphIR` (``graph_ir.py``) builds a graph from these: the flag bits each node carries, the edge
types (indices into ``vocab.EDGE_INDEX``), the reaching-definitions environment ``Env`` with its
control-flow `join`, loop and scope state, and the function and call-site records that
`GraphIR.finish` resolves (``call_linking.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
