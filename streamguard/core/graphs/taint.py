"""Source -> sink reachability over the data-flow edges of a graph, and graph statistics.

Semantics (the same in the builder's columns and in `taint_reaches_sink`): a live node is
tainted when it is a source (API or entry-function parameter), or when it is neither a sanitizer
nor a sink and a tainted node flows into it over a ``data_flow``, ``call_arg``, ``param_flow`` or
``return_flow`` edge. Dead nodes are never tainted, and ``dead_branch`` edges never carry taint. A
sink is reached when a tainted node flows into it over a ``sink_arg`` edge, i.e. into an argument
position that matters for that sink.

Sanitizers are sink-class specific. Every sink has a class (``sql``, ``command``, ``path``,
``ldap``, ``xpath``, ``html``, ``header``, ``redirect``, ``code``, ``url``, ``other``; see
``catalog.SINK_CLASSES``), and a sanitizer makes a value safe either for every class (parameter
binding, numeric parsing, a constant allow-list) or for the classes it lists (an HTML encoder for
``html`` only, a basename for ``path`` only). Taint is propagated once per sink class present in
the graph, with that class's sanitizers blocking; each sink is judged in its own class's view.
``is_tainted`` is the widest view, where only universal sanitizers block: the value still
carries attacker data that matters to some sink.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

from .catalog import SINK_CLASS_INDEX, SINK_CLASSES
from .vocab import EDGE_INDEX, FEATURE_INDEX, FLOW_EDGE_TYPES, SINK_EDGE_TYPE

PATH_CLASS = SINK_CLASS_INDEX["path"]
OTHER_CLASS = SINK_CLASS_INDEX["other"]


@dataclass(frozen=True)
class TaintInput:
    """Per-node roles and the typed edges the propagation needs."""

    num_nodes: int
    src: Sequence[int]
    dst: Sequence[int]
    etype: Sequence[int]
    seed: Sequence[bool]      # source or entry parameter
    blocker: Sequence[bool]   # sink or universal sanitizer: its result does not carry its inputs' taint
    sink: Sequence[bool]
    dead: Sequence[bool]
    sink_class: Sequence[int] = ()  # class id of each sink node (empty: every sink is "other")
    san_mask: Sequence[int] = ()    # bit c set: the node makes values safe for class c (empty: none)

    def blocks(self, node: int, cls: int | None) -> bool:
        """Whether ``node`` stops taint headed for a sink of class ``cls`` (None: the widest view)."""
        if self.blocker[node]:
            return True
        return cls is not None and bool(self.san_mask) and bool(self.san_mask[node] >> cls & 1)

    def class_of(self, node: int) -> int:
        return self.sink_class[node] if self.sink_class else OTHER_CLASS

    def live_classes(self) -> list[int]:
        """Classes of the live sinks that some sink_arg edge enters, in id order."""
        found = set()
        for d, e in zip(self.dst, self.etype):
            if e == SINK_EDGE_TYPE and self.sink[d] and not self.dead[d]:
                found.add(self.class_of(d))
        return sorted(found)

    def class_specific(self, cls: int) -> bool:
        """Whether any node sanitizes for ``cls`` only (else the class view is the widest view)."""
        return bool(self.san_mask) and any(m >> cls & 1 for m in self.san_mask)


def flow_adjacency(t: TaintInput) -> tuple[list[list[int]], list[list[int]]]:
    """(successors, predecessors) of every node over the taint-carrying edges (computed once per graph)."""
    n = t.num_nodes
    adj: list[list[int]] = [[] for _ in range(n)]
    radj: list[list[int]] = [[] for _ in range(n)]
    for s, d, e in zip(t.src, t.dst, t.etype):
        if e in FLOW_EDGE_TYPES:
            adj[s].append(d)
            radj[d].append(s)
    return adj, radj


def propagate(t: TaintInput, cls: int | None = None, adj: list[list[int]] | None = None) -> tuple[list[bool], list[int]]:
    """Forward taint propagation. Returns (tainted flags, BFS parent of each tainted node or -1).

    Args:
        cls: the sink class whose view to compute (its sanitizers block); None: the widest view.
        adj: `flow_adjacency` successors, when the caller has them already.
    """
    n = t.num_nodes
    if adj is None:
        adj = flow_adjacency(t)[0]
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
            if not tainted[v] and not t.dead[v] and not t.blocks(v, cls):
                tainted[v] = True
                parent[v] = u
                queue.append(v)
    return tainted, parent


def taint_views(t: TaintInput, adj: list[list[int]] | None = None,
                classes: list[int] | None = None) -> dict[int | None, tuple[list[bool], list[int]]]:
    """(tainted, parent) per live sink class, plus the widest view under key None."""
    if adj is None:
        adj = flow_adjacency(t)[0]
    wide = propagate(t, None, adj)
    views: dict[int | None, tuple[list[bool], list[int]]] = {None: wide}
    for cls in (t.live_classes() if classes is None else classes):
        views[cls] = propagate(t, cls, adj) if t.class_specific(cls) else wide
    return views


def reached_sinks(t: TaintInput, views: dict[int | None, tuple[list[bool], list[int]]]) -> dict[int, int]:
    """Live sinks reached by taint (each in its class's view) -> the smallest tainted node entering it."""
    out: dict[int, int] = {}
    for s, d, e in zip(t.src, t.dst, t.etype):
        if e != SINK_EDGE_TYPE or not t.sink[d] or t.dead[d]:
            continue
        view = views.get(t.class_of(d), views[None])[0]
        if view[s] and (d not in out or s < out[d]):
            out[d] = s
    return out


def flows_to_sink(t: TaintInput, cls: int | None = None, radj: list[list[int]] | None = None) -> list[bool]:
    """Nodes whose value reaches a live sink argument over data flow (tainted or not).

    Args:
        cls: only sinks of this class, whose sanitizers stop the flow; None: every class (union).
        radj: `flow_adjacency` predecessors, when the caller has them already.
    """
    if radj is None:
        radj = flow_adjacency(t)[1]
    if cls is None:
        out = [False] * t.num_nodes
        for c in t.live_classes():
            out = [a or b for a, b in zip(out, flows_to_sink(t, c, radj))]
        return out
    n = t.num_nodes
    queue = deque()
    hit = [False] * n
    for s, d, e in zip(t.src, t.dst, t.etype):
        if (e == SINK_EDGE_TYPE and t.sink[d] and not t.dead[d] and not t.dead[s] and not hit[s]
                and t.class_of(d) == cls):
            hit[s] = True
            queue.append(s)
    while queue:
        u = queue.popleft()
        if t.blocks(u, cls):  # a sanitizer's (or sink's) inputs do not pass through it
            continue
        for v in radj[u]:
            if not hit[v] and not t.dead[v]:
                hit[v] = True
                queue.append(v)
    return hit


# ------------------------------------------------------------------------------- graph dicts
_SRC, _PSRC = FEATURE_INDEX["is_source"], FEATURE_INDEX["is_param_source"]
_SINK, _SAN, _DEAD = FEATURE_INDEX["is_sink"], FEATURE_INDEX["is_sanitizer"], FEATURE_INDEX["dead"]
_PSINK, _PSAN = FEATURE_INDEX["is_path_sink"], FEATURE_INDEX["is_path_sanitizer"]
_PATH_BIT = 1 << PATH_CLASS


def _mask(classes) -> int:
    m = 0
    for c in classes:
        m |= 1 << SINK_CLASS_INDEX[c]
    return m


def taint_input_from_graph(graph: dict) -> TaintInput:
    """Read the roles back from a graph record: feature columns plus its ``classes`` entry.

    ``classes`` = ``{"sinks": [[node, class], ...], "sanitizers": [[node, [class, ...]], ...]}``
    names the class of every sink and the classes of every class-specific sanitizer; records
    without it (older featurizers) read as path / other sinks and path sanitizers.
    """
    feat = graph["feat"]
    src, dst = graph["edge_index"]
    n = graph["num_nodes"]
    sink = [row[_SINK] > 0.5 for row in feat]
    sink_class = [PATH_CLASS if row[_PSINK] > 0.5 else OTHER_CLASS for row in feat]
    san_mask = [_PATH_BIT if row[_PSAN] > 0.5 else 0 for row in feat]
    universal = [row[_SAN] > 0.5 for row in feat]
    classes = graph.get("classes") or {}
    for node, cls in classes.get("sinks", ()):
        sink_class[node] = SINK_CLASS_INDEX.get(cls, OTHER_CLASS)
    for node, names in classes.get("sanitizers", ()):
        san_mask[node] |= _mask(c for c in names if c in SINK_CLASS_INDEX)
        universal[node] = False
    return TaintInput(
        num_nodes=n, src=src, dst=dst, etype=graph["edge_type"],
        seed=[row[_SRC] > 0.5 or row[_PSRC] > 0.5 for row in feat],
        blocker=[u or s for u, s in zip(universal, sink)], sink=sink, dead=[row[_DEAD] > 0.5 for row in feat],
        sink_class=sink_class, san_mask=san_mask)


def taint_reaches_sink(graph: dict) -> bool:
    """True when tainted data reaches a live sink over data-flow edges (see module docstring)."""
    t = taint_input_from_graph(graph)
    return bool(reached_sinks(t, taint_views(t)))


def reached_sink_classes(graph: dict) -> list[str]:
    """The classes of the sinks that tainted data reaches (sorted, no repeats)."""
    t = taint_input_from_graph(graph)
    return sorted({SINK_CLASSES[t.class_of(s)] for s in reached_sinks(t, taint_views(t))})


def taint_paths(graph: dict, max_paths: int = 10) -> list[list[int]]:
    """Up to ``max_paths`` source -> sink node paths (shortest per sink, sinks in node order)."""
    t = taint_input_from_graph(graph)
    views = taint_views(t)
    paths = []
    for sink, last in sorted(reached_sinks(t, views).items()):
        if len(paths) >= max_paths:
            break
        up = views.get(t.class_of(sink), views[None])[1]
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
