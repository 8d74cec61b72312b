"""Taint-flow graph featurizer: source code -> typed program graph for the Taint-Flow GNN.

Shipped inside the SageMaker source dir: imports only the standard library, numpy, tree_sitter
and tree_sitter_java. The record shape is in ``docs/architecture.md``; node kinds, features, edge
types and the taint semantics are described in this package's README.md.
"""

from .builder import DEFAULT_MAX_NODES, build_graph, normalize_language
from .taint import graph_stats, taint_paths, taint_reaches_sink
from .vocab import (EDGE_TYPES, FEATURIZER_VERSION, FLAG_FEATURES, GRAPH_FORMAT_VERSION, KIND_ROLES, NODE_FEAT_DIM, NODE_FEATURES,
                    NODE_KINDS, NODE_ROLES, NUM_EDGE_TYPES, NUM_NODE_KINDS, SUBTOKENS)

__all__ = [
    "DEFAULT_MAX_NODES", "EDGE_TYPES", "FEATURIZER_VERSION", "FLAG_FEATURES", "GRAPH_FORMAT_VERSION", "KIND_ROLES", "NODE_FEATURES",
    "NODE_FEAT_DIM", "NODE_KINDS", "NODE_ROLES", "NUM_EDGE_TYPES", "NUM_NODE_KINDS", "SUBTOKENS", "build_graph", "graph_stats", "normalize_language", "taint_paths",
    "taint_reaches_sink",
]
