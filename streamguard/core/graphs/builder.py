"""`build_graph`: code -> graph record (kinds, features, typed edges), bounded in size.

The frontend builds the full graph IR (up to a hard budget), taint is propagated on it, and only
then is the graph cut to ``max_nodes`` so that truncation never hides a source -> sink path that
fits: sources, sinks, sanitizers and nodes on taint paths are kept first, the remaining budget
goes to the earliest nodes in pre-order. A truncated graph says so in ``graph_truncated``.
"""

from __future__ import annotations

import logging
import sys
import threading
from itertools import chain

import numpy as np

from ..records import RecordError, normalize_language as normalize_record_language
from . import ir as IR
from .graph_ir import GraphIR
from .java_frontend import build_java_ir
from .python_frontend import build_python_ir
from . import catalog
from .catalog import SINK_CLASS_INDEX, SINK_CLASSES
from .taint import OTHER_CLASS, PATH_CLASS
from .tokens import build_token_ir
from .subtokens import MAX_SUBTOKENS, literal_facts, name_ids
from .vocab import EDGE_INDEX, FEATURE_INDEX, FLOW_EDGE_TYPES, KIND_INDEX, NODE_FEAT_DIM, SINK_EDGE_TYPE, featurizer_version

log = logging.getLogger(__name__)

DEFAULT_MAX_NODES = 2000
# The IR may grow this many times past max_nodes before the walk stops (bounds time on huge input).
_BUDGET_FACTOR = 10
_MIN_BUDGET = 5000

# Code nested deeper than the default recursion limit allows is rebuilt on a thread with this
# stack and recursion limit (about 100,000 levels of nesting); only such code pays for it.
_DEEP_STACK_BYTES = 512 * 1024 * 1024
_DEEP_RECURSION_LIMIT = 400_000
_DEEP_LOCK = threading.Lock()

_PATH_BIT = 1 << PATH_CLASS
_AST_CHILD, _AST_PARENT = EDGE_INDEX["ast_child"], EDGE_INDEX["ast_parent"]
_DEAD_BRANCH, _FLOW_REV = EDGE_INDEX["dead_branch"], EDGE_INDEX["flow_rev"]
_REVERSED_FLOW = frozenset(EDGE_INDEX[t] for t in ("data_flow", "call_arg", "sink_arg", "param_flow", "return_flow"))

# (feature column, IR flag bit) for the flags the frontends set directly.
_FLAG_COLUMNS = tuple((FEATURE_INDEX[name], bit) for name, bit in (
    ("is_source", IR.SOURCE), ("is_param_source", IR.PARAM_SOURCE), ("is_sink", IR.SINK),
    ("is_path_sink", IR.PATH_SINK), ("is_sanitizer", IR.SANITIZER | IR.SANITIZER_SOME),
    ("is_path_sanitizer", IR.PATH_SANITIZER), ("is_literal", IR.LITERAL), ("is_sql_literal", IR.SQL_LITERAL),
    ("has_placeholder", IR.PLACEHOLDER), ("is_string_concat", IR.CONCAT), ("is_call", IR.CALL),
    ("is_local_call", IR.LOCAL_CALL), ("is_identifier", IR.IDENT), ("is_def", IR.DEF), ("is_use", IR.USE),
    ("dead", IR.DEAD), ("const_true", IR.CONST_TRUE), ("const_false", IR.CONST_FALSE), ("in_loop", IR.IN_LOOP),
))
_TAINTED, _FLOWS_TO_SINK, _ON_PATH = (FEATURE_INDEX[c] for c in ("is_tainted", "flows_to_sink", "on_taint_path"))
_OVERWRITTEN, _TRUNCATED = FEATURE_INDEX["overwritten_by_const"], FEATURE_INDEX["graph_truncated"]
_DEPTH, _LIT_LEN, _NCHILD, _POSITION, _NUM_USES = (
    FEATURE_INDEX[c] for c in ("depth", "literal_len", "num_children", "position", "num_uses"))
_FLAG_COLS = np.array([col for col, _ in _FLAG_COLUMNS], dtype=np.int64)
_FLAG_BITS = np.array([bit for _, bit in _FLAG_COLUMNS], dtype=np.int64)
_BOOL_COLS = np.array([_TAINTED, _FLOWS_TO_SINK, _ON_PATH, _OVERWRITTEN], dtype=np.int64)
_LOG_COLS = np.array([_LIT_LEN, _NCHILD, _NUM_USES], dtype=np.int64)
_LOG_SCALE = np.array([[12.0], [5.0], [4.0]])
_LIT_SHAPE = tuple(FEATURE_INDEX[c] for c in ("is_sql_literal", "is_shell_literal", "is_path_literal",
                                                "is_url_literal"))
_MARKUP = FEATURE_INDEX["is_markup_literal"]


def normalize_language(language: str) -> str:
    """`streamguard.core.records.normalize_language`, with build_graph's ValueError naming the value."""
    try:
        return normalize_record_language(language)
    except RecordError:
        raise ValueError(f"build_graph: unsupported language {language!r} (supported: python, java)") from None


def build_graph(code: str, language: str, max_nodes: int = DEFAULT_MAX_NODES) -> dict:
    """Build the taint-flow graph record of one function or file.

    Args:
        code: source text; code that does not parse still yields a graph (``parse_ok`` False).
        language: ``"python"`` or ``"java"`` (common aliases accepted).
        max_nodes: node cap; larger graphs are cut deterministically (see module docstring).

    Returns:
        ``{"v", "language", "parse_ok", "num_nodes", "kind", "feat", "edge_index", "edge_type"}``.

    Raises:
        ValueError: unsupported language or ``max_nodes < 1``.
    """
    lang = normalize_language(language)
    if max_nodes < 1:
        raise ValueError(f"build_graph: max_nodes must be >= 1, got {max_nodes}")
    code = "" if code is None else str(code)
    budget = max(_MIN_BUDGET, max_nodes * _BUDGET_FACTOR)
    frontend = build_java_ir if lang == "java" else build_python_ir
    try:
        try:
            graph, parse_ok = frontend(code, budget)
            deep = graph.depth_errors > 0
        except RecursionError:  # the Python parser itself ran out of depth
            deep = True
        if deep:
            # Nested deeper than the default recursion limit: build again with a deep stack, so
            # that nothing is cut unless the nesting is beyond even that.
            graph, parse_ok = _deep_call(frontend, code, budget)
    except Exception as exc:  # noqa: BLE001 - one odd record must not stop a 20k-record preparation
        # A construct the frontend does not handle: keep the record with a token-chain graph,
        # marked as not parsed, and say which construct it was.
        log.warning("build_graph: %s frontend failed (%s: %s); using a token graph", lang, type(exc).__name__, exc)
        graph, parse_ok = build_token_ir(code, lang, budget), False
        if isinstance(exc, RecursionError):
            graph.truncated = True
            graph.truncation.add("depth")
    if not graph.kinds:  # empty input: one root node so that every graph has a node
        graph = build_token_ir(code, lang, budget)
        parse_ok = parse_ok and bool(code.strip())
    return _assemble(graph, lang, parse_ok, max_nodes)


def _deep_call(fn, *args):
    """``fn(*args)`` on a thread with a 512 MiB stack and a high recursion limit.

    The recursion limit is interpreter-wide: it is raised for the duration of the call (one deep
    build at a time) and restored afterwards. Exceptions are re-raised in the caller.
    """
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            out["error"] = exc

    with _DEEP_LOCK:
        old_limit = sys.getrecursionlimit()
        old_stack = threading.stack_size()
        try:
            threading.stack_size(_DEEP_STACK_BYTES)
            sys.setrecursionlimit(max(old_limit, _DEEP_RECURSION_LIMIT))
            t = threading.Thread(target=run, name="build_graph-deep", daemon=True)
            try:
                t.start()
            finally:
                threading.stack_size(old_stack)
            t.join()
        finally:
            sys.setrecursionlimit(old_limit)
    if "error" in out:
        raise out["error"]
    return out["value"]


def ir_taint(g: GraphIR) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The taint analysis of a graph IR, before any node is cut: ``(edges, sink_class, is_tainted,
    flows_to_sink, on_taint_path)``, ``edges`` the ``[src, dst, type]`` rows with every edge between
    live and dead code turned into ``dead_branch``. `_assemble` and the code gadgets' markers
    (`gadget.code_gadget`) read the same analysis from here."""
    n = len(g.kinds)
    fl = np.asarray(g.flags, dtype=np.int64)
    dead = (fl & IR.DEAD) != 0
    sink = (fl & IR.SINK) != 0

    # Forward edges; any edge between live and dead code becomes dead_branch (never carries taint).
    fwd_arr = np.fromiter(chain.from_iterable(g.edges), dtype=np.int64, count=3 * len(g.edges)).reshape(-1, 3)
    if len(fwd_arr):
        fwd_arr[dead[fwd_arr[:, 0]] != dead[fwd_arr[:, 1]], 2] = _DEAD_BRANCH
    # Sink classes and class-specific sanitizers (see taint.py): a sink without a class from the
    # catalog is a path sink or "other"; PATH_SANITIZER set by the frontends (basename checks,
    # getFileName) adds the path class.
    sink_class = np.where(fl & IR.PATH_SINK, PATH_CLASS, OTHER_CLASS)
    for node, cls in g.sink_class.items():
        sink_class[node] = SINK_CLASS_INDEX[cls]
    san_mask = np.where(fl & IR.PATH_SANITIZER, _PATH_BIT, 0)
    for node, classes in g.sanitizes.items():
        for c in classes:
            san_mask[node] |= 1 << SINK_CLASS_INDEX[c]
    universal = (fl & IR.SANITIZER) != 0
    if g.sanitizes:
        universal[list(g.sanitizes)] = False
    tainted, to_sink, on_path = _taint_columns(n, fwd_arr, fl, dead, sink, universal | sink, sink_class, san_mask)
    return fwd_arr, sink_class, tainted, to_sink, on_path


def _assemble(g: GraphIR, lang: str, parse_ok: bool, max_nodes: int) -> dict:
    n = len(g.kinds)
    flags = g.flags
    fl = np.asarray(flags, dtype=np.int64)
    sink = (fl & IR.SINK) != 0
    fwd_arr, sink_class, tainted, to_sink, on_path = ir_taint(g)

    overwritten = [False] * n
    num_uses = [0] * n
    const_defs = g.const_defs
    for use, defs in g.use_defs.items():
        if defs and const_defs.issuperset(defs):
            overwritten[use] = True
        for d in defs:
            num_uses[d] += 1

    full = n <= max_nodes
    keep = _select(n, max_nodes, flags, None if full else on_path.tolist())
    truncated = g.truncated or len(keep) < n
    index = None if full else {old: new for new, old in enumerate(keep)}

    kind_of = KIND_INDEX.get
    kind = [kind_of(k, 0) for k in g.kinds] if full else [kind_of(g.kinds[old], 0) for old in keep]
    feat = _features(g, keep, flags, tainted, to_sink, on_path, overwritten, num_uses, truncated)

    subtok = _subtokens(g, keep, feat)
    src, dst, etype = _output_edges(fwd_arr, keep, n)
    sink_nodes = np.flatnonzero(sink).tolist()
    san_nodes = sorted(set(g.sanitizes).union(np.flatnonzero(fl & IR.PATH_SANITIZER).tolist()))
    if not full:
        sink_nodes = [i for i in sink_nodes if i in index]
        san_nodes = [i for i in san_nodes if i in index]
    new = (lambda i: i) if full else index.__getitem__
    sink_class_l = sink_class.tolist()
    classes = {"sinks": [[new(i), SINK_CLASSES[sink_class_l[i]]] for i in sink_nodes],
               "sanitizers": [[new(i), list(g.sanitizes.get(i, ())) + (
                   ["path"] if flags[i] & IR.PATH_SANITIZER and "path" not in g.sanitizes.get(i, ()) else [])]
                   for i in san_nodes]}
    reasons = set(g.truncation)
    if len(keep) < n:
        reasons.add("size")
    if truncated and not reasons:
        reasons.add("budget")
    return {"v": featurizer_version(catalog.active().digest), "language": lang, "parse_ok": bool(parse_ok), "num_nodes": len(keep),
            "kind": kind, "feat": feat, "subtok": subtok, "edge_index": [src, dst], "edge_type": etype,
            "truncated": sorted(reasons), "classes": classes}


# Edge types that carry taint (data_flow, call_arg, param_flow, return_flow), as a lookup table.
_FLOW_TYPE = np.zeros(len(EDGE_INDEX), dtype=bool)
_FLOW_TYPE[sorted(FLOW_EDGE_TYPES)] = True


def _taint_columns(n: int, fwd: np.ndarray, fl: np.ndarray, dead: np.ndarray, sink: np.ndarray,
                   blocker: np.ndarray, sink_class: np.ndarray,
                   san_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``is_tainted``, ``flows_to_sink`` and ``on_taint_path`` of every node.

    The same semantics as `taint.taint_views`, `taint.flows_to_sink` and `taint.reached_sinks`
    (which recompute them from a record): one forward view per live sink class with that class's
    sanitizers blocking (the widest view for ``is_tainted``), a backward walk from each class's
    sink arguments, a reached sink on its own path. Only nodes reachable from a source or a sink
    argument are visited.
    """
    live_node = ~dead
    seed = ((fl & (IR.SOURCE | IR.PARAM_SOURCE)) != 0) & live_node
    to_sink = np.zeros(n, dtype=bool)
    on_path = np.zeros(n, dtype=bool)
    if not len(fwd):
        return seed, to_sink, on_path
    es, ed, et = fwd[:, 0], fwd[:, 1], fwd[:, 2]
    # Taint-carrying edges into live nodes (a flow edge between live and dead code is dead_branch
    # by now, and dead nodes never carry taint).
    fm = _FLOW_TYPE[et] & live_node[ed]
    fs, fd = es[fm], ed[fm]
    sm = (et == SINK_EDGE_TYPE) & sink[ed] & live_node[ed]
    ss, sd = es[sm], ed[sm]
    sd_class = sink_class[sd]
    seeds = np.flatnonzero(seed).tolist()
    fwd_csr = _csr(fs, fd, n) if seeds and len(fs) else None
    live_ok = live_node.tolist()
    tainted = _reach(n, seeds, fwd_csr, (live_node & ~blocker).tolist())
    if not len(sd):
        return tainted, to_sink, on_path
    rev_csr = _csr(fd, fs, n) if len(fs) else None
    for cls in sorted(set(sd_class.tolist())):
        bit = ((san_mask >> cls) & 1).astype(bool)
        blocked = blocker | bit if bit.any() else blocker
        view = _reach(n, seeds, fwd_csr, (live_node & ~blocked).tolist()) if blocked is not blocker else tainted
        of_cls = sd_class == cls
        starts = ss[of_cls & live_node[ss]].tolist()
        hit = _reach(n, starts, rev_csr, live_ok, (~blocked).tolist())
        to_sink |= hit
        on_path |= hit & view
        on_path[sd[of_cls & view[ss]]] = True  # a reached sink lies on its own path
    return tainted, to_sink, on_path


def _csr(a: np.ndarray, b: np.ndarray, n: int) -> tuple[list[int], list[int]]:
    """Adjacency of the edges ``a[i] -> b[i]``: (row pointers, neighbours), as lists."""
    order = np.argsort(a, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=ptr[1:])
    return ptr.tolist(), b[order].tolist()


def _reach(n: int, starts: list[int], csr: tuple[list[int], list[int]] | None, node_ok: list[bool],
           expand_ok: list[bool] | None = None) -> np.ndarray:
    """Nodes reachable from ``starts`` (always included) over ``csr`` into nodes with ``node_ok``,
    leaving only nodes with ``expand_ok`` (all when None)."""
    seen = bytearray(n)
    for s in starts:
        seen[s] = 1
    if csr is not None:
        ptr, nbr = csr
        stack = list(starts)
        pop, push = stack.pop, stack.append
        while stack:
            u = pop()
            if expand_ok is not None and not expand_ok[u]:
                continue
            for v in nbr[ptr[u]:ptr[u + 1]]:
                if not seen[v] and node_ok[v]:
                    seen[v] = 1
                    push(v)
    return np.frombuffer(seen, dtype=bool)


# Reverse edge type of each edge type (-1: none): ast_child -> ast_parent, flows -> flow_rev,
# dead_branch -> dead_branch.
_REVERSE = np.full(len(EDGE_INDEX), -1, dtype=np.int64)
_REVERSE[_AST_CHILD] = _AST_PARENT
_REVERSE[_DEAD_BRANCH] = _DEAD_BRANCH
for _t in _REVERSED_FLOW:
    _REVERSE[_t] = _FLOW_REV


def _output_edges(fwd: np.ndarray, keep: list[int], n: int) -> tuple[list[int], list[int], list[int]]:
    """Edges among the kept nodes, renumbered; each followed by its reverse edge where it has one."""
    if not len(fwd):
        return [], [], []
    if len(keep) == n:
        a, b, t = fwd[:, 0], fwd[:, 1], fwd[:, 2]
    else:
        remap = np.full(n, -1, dtype=np.int64)
        remap[np.asarray(keep, dtype=np.int64)] = np.arange(len(keep), dtype=np.int64)
        a, b = remap[fwd[:, 0]], remap[fwd[:, 1]]
        ok = (a >= 0) & (b >= 0)
        a, b, t = a[ok], b[ok], fwd[ok, 2]
    rt = _REVERSE[t]
    # Interleave: edge i, then its reverse (kept only where a reverse type exists).
    both = np.stack([a, b, t, b, a, rt], axis=1).reshape(-1, 3)
    src, dst, typ = both[both[:, 2] >= 0].T.tolist()
    return src, dst, typ


def _features(g: GraphIR, keep: list[int], flags: list[int], tainted: list[bool], to_sink: list[bool],
              on_path: list[bool], overwritten: list[bool], num_uses: list[int], truncated: bool) -> list[list[float]]:
    """The ``feat`` matrix of the kept nodes (column layout: ``NODE_FEATURES``)."""
    m = len(keep)
    idx = slice(None) if m == len(flags) else np.asarray(keep, dtype=np.int64)
    out = np.zeros((m, NODE_FEAT_DIM), dtype=np.float64)
    fl = np.asarray(flags, dtype=np.int64)[idx]
    out[:, _FLAG_COLS] = (fl[:, None] & _FLAG_BITS) != 0
    out[:, _BOOL_COLS] = np.array([tainted, to_sink, on_path, overwritten], dtype=bool)[:, idx].T
    out[:, _TRUNCATED] = float(truncated)
    num = np.array([g.depth, g.lit_len, g.nchild, num_uses], dtype=np.float64)[:, idx]
    out[:, _DEPTH] = np.minimum(1.0, num[0] / 32.0)
    # log2(1 + x) / scale, capped at 1, for literal length (0 for non-literals: lit_len -1), number
    # of children and number of uses.
    out[:, _LOG_COLS] = np.minimum(1.0, np.log2(1.0 + np.maximum(num[1:], 0.0)) / _LOG_SCALE).T
    out[:, _POSITION] = np.arange(m, dtype=np.float64) / m
    # Rounded so that records are compact and identical across platforms.
    return np.round(out, 4).tolist()


def _subtokens(g: GraphIR, keep: list[int], feat: list[list[float]]) -> list[list[int]]:
    """``[[new node id, bucket, ...], ...]`` for kept nodes with a name or a string literal; also sets
    the literal-shape columns of ``feat`` (SQL is set by the frontends as well)."""
    out: list[list[int]] = []
    names, literals = g.names, g.literals
    for new, old in enumerate(keep):
        lit = literals.get(old)
        if lit is not None:
            shape, markup, ids = literal_facts(lit)
            if markup or any(shape):
                row = feat[new]
                for col, hit in zip(_LIT_SHAPE, shape):
                    if hit:
                        row[col] = 1.0
                if markup:
                    row[_MARKUP] = 1.0
        else:
            nm = names.get(old)
            ids = name_ids(nm) if nm else ()
        if ids:
            out.append([new, *ids[:MAX_SUBTOKENS]])
    return out


def _select(n: int, max_nodes: int, flags: list[int], on_path: list[bool]) -> list[int]:
    """Node ids to keep, in original order: all of them, or the important ones plus a pre-order prefix."""
    if n <= max_nodes:
        return list(range(n))
    important = IR.SOURCE | IR.PARAM_SOURCE | IR.SINK | IR.SANITIZER | IR.PATH_SANITIZER | IR.SANITIZER_SOME
    chosen = [i for i in range(n) if on_path[i] or flags[i] & important][:max_nodes]
    picked = set(chosen)
    for i in range(n):
        if len(picked) >= max_nodes:
            break
        picked.add(i)
    return sorted(picked)
