"""Source -> sink reachability over the data-flow edges of a graph, and graph statistics.

Semantics (the same in the builder's ``is_tainted`` column and in `taint_reaches_sink`):
a live node is tainted when it is a source (API or entry-function parameter), or when it is
neither a sanitizer nor a sink and a tainted node flows into it over a ``data_flow``,
``call_arg``, ``param_flow`` or ``return_flow`` edge. Dead nodes are never tainted, and
``dead_branch`` edges never carry taint. A sink is reached when a tainted node flows into it
over a ``sink_arg`` edge, i.e. into an argument position that matters for that sink.

Sanitizers are sink-class aware in one respect: a *path sanitizer* (``os.path.basename``,
``Paths.get(x).getFileName()``, a canonical path confined to a constant base directory) makes a
value safe for *path sinks* only. Taint is therefore propagated twice: once for path sinks (path
sanitizers block) and once for every other sink (they do not). ``is_tainted`` is the second,
wider view: the value still carries attacker data that matters to some sink.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

from .vocab import EDGE_INDEX, FEATURE_INDEX, FLOW_EDGE_TYPES, SINK_EDGE_TYPE


@dataclass(frozen=True)
class TaintInput:
    """Per-node roles and the typed edges the propagation needs."""

    num_nodes: int
    src: Sequence[int]
    dst: Sequence[int]
    etype: Sequence[int]
    seed: Sequence[bool]      # source or entry parameter
    blocker: Sequence[bool]   # sanitizer or sink: its result does not carry its inputs' taint
    sink: Sequence[bool]
    dead: Sequence[bool]
    path_sink: Sequence[bool] = ()       # sink whose dangerous argument is a file path (empty: none)
    path_sanitizer: Sequence[bool] = ()  # blocks taint on its way to path sinks only (empty: none)

    def blocks(self, node: int, for_path: bool) -> bool:
        """Whether ``node`` stops taint headed for a path sink (``for_path``) or for any other sink."""
        return self.blocker[node] or (for_path and bool(self.path_sanitizer) and self.path_sanitizer[node])

    def is_path_sink(self, node: int) -> bool:
        return bool(self.path_sink) and self.path_sink[node]


def propagate(t: TaintInput, for_path: bool = False) -> tuple[list[bool], list[int]]:
    """Forward taint propagation. Returns (tainted flags, BFS parent of each tainted node or -1).

    Args:
        for_path: the view of path sinks, in which path sanitizers block as well.
    """
    n = t.num_nodes
    adj: list[list[int]] = [[] for _ in range(n)]
    for s, d, e in zip(t.src, t.dst, t.etype):
        if e in FLOW_EDGE_TYPES:
            adj[s].append(d)
    tainted = [False] * n
    parent = [-1] * n
    queue = deque()
    for i in range(n):
        if t.seed[i] and not t.dead[i]:
            tainted[i] = True
            queue.append(i)
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if not tainted[v] and not t.dead[v] and not t.blocks(v, for_path):
                tainted[v] = True
                parent[v] = u
                queue.append(v)
    return tainted, parent


def reached_sinks(t: TaintInput, tainted: Sequence[bool], tainted_path: Sequence[bool] | None = None) -> dict[int, int]:
    """Live sinks reached by taint -> the smallest tainted node flowing into them over sink_arg.

    Args:
        tainted: the general view (`propagate` with ``for_path=False``).
        tainted_path: the path-sink view; None when the graph has no path sanitizers (same as ``tainted``).
    """
    out: dict[int, int] = {}
    for s, d, e in zip(t.src, t.dst, t.etype):
        if e != SINK_EDGE_TYPE or not t.sink[d] or t.dead[d]:
            continue
        view = tainted_path if tainted_path is not None and t.is_path_sink(d) else tainted
        if view[s] and (d not in out or s < out[d]):
            out[d] = s
    return out


def flows_to_sink(t: TaintInput, sink_class: str = "all") -> list[bool]:
    """Nodes whose value reaches a live sink argument over data flow (tainted or not).

    Args:
        sink_class: ``"path"`` (path sinks; path sanitizers stop the flow), ``"other"`` (every other
            sink) or ``"all"`` (the union of both).
    """
    if sink_class == "all":
        return [a or b for a, b in zip(flows_to_sink(t, "path"), flows_to_sink(t, "other"))]
    for_path = sink_class == "path"
    n = t.num_nodes
    radj: list[list[int]] = [[] for _ in range(n)]
    queue = deque()
    hit = [False] * n
    for s, d, e in zip(t.src, t.dst, t.etype):
        if e in FLOW_EDGE_TYPES:
            radj[d].append(s)
        elif (e == SINK_EDGE_TYPE and t.sink[d] and not t.dead[d] and not t.dead[s] and not hit[s]
              and t.is_path_sink(d) == for_path):
            hit[s] = True
            queue.append(s)
    while queue:
        u = queue.popleft()
        if t.blocks(u, for_path):  # a sanitizer's (or sink's) inputs do not pass through it
            continue
        for v in radj[u]:
            if not hit[v] and not t.dead[v]:
                hit[v] = True
                queue.append(v)
    return hit


def taint_views(t: TaintInput) -> tuple[list[bool], list[int], list[bool], list[int]]:
    """Both propagations: (tainted, parent) for non-path sinks, then for path sinks."""
    tainted, parent = propagate(t)
    if not any(t.path_sanitizer):
        return tainted, parent, tainted, parent
    tainted_p, parent_p = propagate(t, for_path=True)
    return tainted, parent, tainted_p, parent_p


# ------------------------------------------------------------------------------- graph dicts
_SRC, _PSRC = FEATURE_INDEX["is_source"], FEATURE_INDEX["is_param_source"]
_SINK, _SAN, _DEAD = FEATURE_INDEX["is_sink"], FEATURE_INDEX["is_sanitizer"], FEATURE_INDEX["dead"]
_PSINK, _PSAN = FEATURE_INDEX["is_path_sink"], FEATURE_INDEX["is_path_sanitizer"]


def taint_input_from_graph(graph: dict) -> TaintInput:
    """Read the roles back from a graph record's feature columns."""
    feat = graph["feat"]
    src, dst = graph["edge_index"]
    sink = [row[_SINK] > 0.5 for row in feat]
    return TaintInput(
        num_nodes=graph["num_nodes"], src=src, dst=dst, etype=graph["edge_type"],
        seed=[row[_SRC] > 0.5 or row[_PSRC] > 0.5 for row in feat],
        blocker=[row[_SAN] > 0.5 or s for row, s in zip(feat, sink)],
        sink=sink, dead=[row[_DEAD] > 0.5 for row in feat],
        path_sink=[row[_PSINK] > 0.5 for row in feat], path_sanitizer=[row[_PSAN] > 0.5 for row in feat])


def taint_reaches_sink(graph: dict) -> bool:
    """True when tainted data reaches a live sink over data-flow edges (see module docstring)."""
    t = taint_input_from_graph(graph)
    tainted, _, tainted_p, _ = taint_views(t)
    return bool(reached_sinks(t, tainted, tainted_p))


def taint_paths(graph: dict, max_paths: int = 10) -> list[list[int]]:
    """Up to ``max_paths`` source -> sink node paths (shortest per sink, sinks in node order)."""
    t = taint_input_from_graph(graph)
    tainted, parent, tainted_p, parent_p = taint_views(t)
    paths = []
    for sink, last in sorted(reached_sinks(t, tainted, tainted_p).items()):
        if len(paths) >= max_paths:
            break
        up = parent_p if t.is_path_sink(sink) else parent
        path = [sink, last]
        while up[path[-1]] >= 0:
            path.append(up[path[-1]])
        paths.append(path[::-1])
    return paths


def graph_stats(graph: dict) -> dict:
    """Summary numbers of one graph record, e.g. for input-drift monitoring."""
    feat = graph["feat"]

    def count(col: str) -> int:
        i = FEATURE_INDEX[col]
        return sum(1 for row in feat if row[i] > 0.5)

    etype = graph["edge_type"]
    flow = sum(1 for e in etype if e in FLOW_EDGE_TYPES)
    return {
        "num_nodes": graph["num_nodes"],
        "num_edges": len(etype),
        "num_flow_edges": flow,
        "num_dead_branch_edges": sum(1 for e in etype if e == EDGE_INDEX["dead_branch"]),
        "num_sources": count("is_source"),
        "num_param_sources": count("is_param_source"),
        "num_sinks": count("is_sink"),
        "num_sanitizers": count("is_sanitizer"),
        "num_path_sanitizers": count("is_path_sanitizer"),
        "num_tainted": count("is_tainted"),
        "num_dead": count("dead"),
        "reaches_sink": taint_reaches_sink(graph),
        "truncated": bool(feat and feat[0][FEATURE_INDEX["graph_truncated"]] > 0.5),
        "parse_ok": bool(graph["parse_ok"]),
    }
