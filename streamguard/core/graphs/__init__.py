"""Taint-flow graph featurizer: source code -> typed program graph for the Taint-Flow GNN.

Shipped inside the SageMaker source dir, so it imports only the standard library, numpy-free
pure Python, tree_sitter and tree_sitter_java. See ``docs/architecture.md`` for the record shape.

Modules: `vocab` (fixed kind/feature/edge vocabularies), `rules` (sources, sinks, sanitizers),
`consts` (condition folding), `ir` (graph under construction, def-use machinery),
`python_frontend` / `java_frontend` / `tokens` (parsers), `taint` (reachability, statistics),
`builder` (`build_graph`).
"""

from .builder import DEFAULT_MAX_NODES, build_graph, normalise_language
from .taint import graph_stats, taint_paths, taint_reaches_sink
from .vocab import (EDGE_TYPES, FEATURIZER_VERSION, NODE_FEAT_DIM, NODE_FEATURES, NODE_KINDS, NUM_EDGE_TYPES,
                    NUM_NODE_KINDS)

__all__ = [
    "DEFAULT_MAX_NODES", "EDGE_TYPES", "FEATURIZER_VERSION", "NODE_FEATURES", "NODE_FEAT_DIM", "NODE_KINDS",
    "NUM_EDGE_TYPES", "NUM_NODE_KINDS", "build_graph", "graph_stats", "normalise_language", "taint_paths",
    "taint_reaches_sink",
]
