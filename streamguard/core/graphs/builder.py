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

import numpy as np

from . import ir as IR
from .ir import GraphIR
from .java_frontend import build_java_ir
from .python_frontend import build_python_ir
from . import catalog
from .catalog import SINK_CLASS_INDEX, SINK_CLASSES
from .taint import OTHER_CLASS, PATH_CLASS, TaintInput, flow_adjacency, flows_to_sink, reached_sinks, taint_views
from .tokens import build_token_ir
from .subtokens import MAX_SUBTOKENS, literal_buckets, literal_shape, looks_like_markup, name_buckets
from .vocab import EDGE_INDEX, FEATURE_INDEX, KIND_INDEX, NODE_FEAT_DIM, featurizer_version

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

_LANGUAGE_ALIASES = {"python": "python", "py": "python", "python3": "python", "python2": "python",
                     "java": "java"}

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
_LIT_SHAPE = tuple(FEATURE_INDEX[c] for c in ("is_sql_literal", "is_shell_literal", "is_path_literal",
                                                "is_url_literal"))
_MARKUP = FEATURE_INDEX["is_markup_literal"]


def normalise_language(language: str) -> str:
    """Canonical language name; ValueError naming the value for anything unsupported."""
    lang = _LANGUAGE_ALIASES.get(str(language).strip().lower()) if language is not None else None
    if lang is None:
        raise ValueError(f"build_graph: unsupported language {language!r} (supported: python, java)")
    return lang


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
    lang = normalise_language(language)
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


def _assemble(g: GraphIR, lang: str, parse_ok: bool, max_nodes: int) -> dict:
    n = len(g.kinds)
    flags = g.flags
    dead = [bool(f & IR.DEAD) for f in flags]
    sink = [bool(f & IR.SINK) for f in flags]

    # Forward edges; any edge between live and dead code becomes dead_branch (never carries taint).
    fwd_arr = np.asarray(g.edges, dtype=np.int64).reshape(-1, 3)
    if len(fwd_arr):
        dead_arr = np.asarray(dead, dtype=bool)
        fwd_arr[dead_arr[fwd_arr[:, 0]] != dead_arr[fwd_arr[:, 1]], 2] = _DEAD_BRANCH
    e_src, e_dst, e_type = fwd_arr[:, 0].tolist(), fwd_arr[:, 1].tolist(), fwd_arr[:, 2].tolist()
    # Sink classes and class-specific sanitizers (see taint.py): a sink without a class from the
    # catalog is a path sink or "other"; PATH_SANITIZER set by the frontends (basename checks,
    # getFileName) adds the path class.
    sink_class = [PATH_CLASS if f & IR.PATH_SINK else OTHER_CLASS for f in flags]
    for node, cls in g.sink_class.items():
        sink_class[node] = SINK_CLASS_INDEX[cls]
    san_mask = [_PATH_BIT if f & IR.PATH_SANITIZER else 0 for f in flags]
    for node, classes in g.sanitizes.items():
        for c in classes:
            san_mask[node] |= 1 << SINK_CLASS_INDEX[c]
    universal = [bool(f & IR.SANITIZER) and i not in g.sanitizes for i, f in enumerate(flags)]
    t_in = TaintInput(
        num_nodes=n, src=e_src, dst=e_dst, etype=e_type,
        seed=[bool(f & (IR.SOURCE | IR.PARAM_SOURCE)) for f in flags],
        blocker=[u or s for u, s in zip(universal, sink)], sink=sink, dead=dead,
        sink_class=sink_class, san_mask=san_mask)
    # One view per sink class present; each sink is judged in its own class's view.
    adj, radj = flow_adjacency(t_in)
    live = t_in.live_classes()
    views = taint_views(t_in, adj, live)
    tainted = views[None][0]
    to_sink = [False] * n
    on_path = [False] * n
    for cls in live:
        to_c = flows_to_sink(t_in, cls, radj)
        tainted_c = views[cls][0]
        if len(live) == 1:
            to_sink, on_path = to_c, [a and b for a, b in zip(to_c, tainted_c)]
            break
        to_sink = [a or b for a, b in zip(to_sink, to_c)]
        on_path = [p or (a and b) for p, a, b in zip(on_path, to_c, tainted_c)]
    reached = reached_sinks(t_in, views)
    for s in reached:
        on_path[s] = True

    overwritten = [False] * n
    num_uses = [0] * n
    for use, defs in g.use_defs.items():
        if defs and all(d in g.const_defs for d in defs):
            overwritten[use] = True
        for d in defs:
            num_uses[d] += 1

    keep = _select(n, max_nodes, flags, on_path)
    truncated = g.truncated or len(keep) < n
    index = {old: new for new, old in enumerate(keep)}
    m = len(keep)

    kind = [KIND_INDEX.get(g.kinds[old], 0) for old in keep]
    feat = _features(g, keep, flags, tainted, to_sink, on_path, overwritten, num_uses, truncated)

    subtok = _subtokens(g, keep, feat)
    src, dst, etype = _output_edges(fwd_arr, keep, n)
    classes = {"sinks": [[index[i], SINK_CLASSES[sink_class[i]]] for i in keep if sink[i]],
               "sanitizers": [[index[i], list(g.sanitizes.get(i, ())) + (
                   ["path"] if flags[i] & IR.PATH_SANITIZER and "path" not in g.sanitizes.get(i, ()) else [])]
                   for i in keep if i in g.sanitizes or flags[i] & IR.PATH_SANITIZER]}
    reasons = set(g.truncation)
    if len(keep) < n:
        reasons.add("size")
    if truncated and not reasons:
        reasons.add("budget")
    return {"v": featurizer_version(catalog.active().digest), "language": lang, "parse_ok": bool(parse_ok), "num_nodes": m,
            "kind": kind, "feat": feat, "subtok": subtok, "edge_index": [src, dst], "edge_type": etype,
            "truncated": sorted(reasons), "classes": classes}


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
    remap = np.full(n, -1, dtype=np.int64)
    remap[np.asarray(keep, dtype=np.int64)] = np.arange(len(keep), dtype=np.int64)
    a, b = remap[fwd[:, 0]], remap[fwd[:, 1]]
    ok = (a >= 0) & (b >= 0)
    a, b, t = a[ok], b[ok], fwd[ok, 2]
    rt = _REVERSE[t]
    # Interleave: edge i at 2i, its reverse at 2i + 1 (kept only where a reverse type exists).
    src = np.empty(2 * len(a), dtype=np.int64)
    dst = np.empty_like(src)
    typ = np.empty_like(src)
    src[0::2], src[1::2] = a, b
    dst[0::2], dst[1::2] = b, a
    typ[0::2], typ[1::2] = t, rt
    mask = np.ones(2 * len(a), dtype=bool)
    mask[1::2] = rt >= 0
    return src[mask].tolist(), dst[mask].tolist(), typ[mask].tolist()


def _features(g: GraphIR, keep: list[int], flags: list[int], tainted: list[bool], to_sink: list[bool],
              on_path: list[bool], overwritten: list[bool], num_uses: list[int], truncated: bool) -> list[list[float]]:
    """The ``feat`` matrix of the kept nodes (column layout: ``NODE_FEATURES``)."""
    m = len(keep)
    idx = np.asarray(keep, dtype=np.int64)
    out = np.zeros((m, NODE_FEAT_DIM), dtype=np.float64)
    fl = np.asarray(flags, dtype=np.int64)[idx]
    for col, bit in _FLAG_COLUMNS:
        out[:, col] = (fl & bit) != 0
    out[:, _TAINTED] = np.asarray(tainted, dtype=bool)[idx]
    out[:, _FLOWS_TO_SINK] = np.asarray(to_sink, dtype=bool)[idx]
    out[:, _ON_PATH] = np.asarray(on_path, dtype=bool)[idx]
    out[:, _OVERWRITTEN] = np.asarray(overwritten, dtype=bool)[idx]
    out[:, _TRUNCATED] = float(truncated)
    out[:, _DEPTH] = np.minimum(1.0, np.asarray(g.depth, dtype=np.float64)[idx] / 32.0)
    lit = np.asarray(g.lit_len, dtype=np.float64)[idx]
    out[:, _LIT_LEN] = np.where(lit >= 0, np.minimum(1.0, np.log2(1.0 + np.maximum(lit, 0.0)) / 12.0), 0.0)
    out[:, _NCHILD] = np.minimum(1.0, np.log2(1.0 + np.asarray(g.nchild, dtype=np.float64)[idx]) / 5.0)
    out[:, _POSITION] = np.arange(m, dtype=np.float64) / m
    out[:, _NUM_USES] = np.minimum(1.0, np.log2(1.0 + np.asarray(num_uses, dtype=np.float64)[idx]) / 4.0)
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
            row = feat[new]
            for col, hit in zip(_LIT_SHAPE, literal_shape(lit)):
                if hit:
                    row[col] = 1.0
            if looks_like_markup(lit):
                row[_MARKUP] = 1.0
            ids = literal_buckets(lit)
        else:
            nm = names.get(old)
            ids = name_buckets(*nm) if nm else []
        if ids:
            out.append([new] + ids[:MAX_SUBTOKENS])
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
