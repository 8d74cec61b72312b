"""Taint-Flow GNN: typed-edge message passing over program graphs with per-graph attention pooling.

A node enters as `Linear(feat) + Embedding(kind) [+ Embedding(role(kind))] + mean(Embedding(subtokens))`:
`x` holds the featurizer's float columns, `kind` the node-kind id (its language-neutral role, for
models built with `kind_roles`, is looked up from it), `subtok` up to K hashed identifier/literal
subtoken ids (0 = none; see `streamguard.core.graphs.subtokens`), all built by
`data.graph_to_data`. Edges carry a relation id (`edge_type`, ids into the featurizer's `EDGE_TYPES`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing, global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.utils import scatter, softmax

from .common import BatchOutput, EntryModel, ModelOptions, NewModel


def _graphs():
    """The shipped featurizer (looked up at call time, so a test's stand-in module is seen)."""
    return importlib.import_module("streamguard.core.graphs")


def featurizer_info() -> dict:
    """The shipped featurizer's vocabulary (`node_vocab.json`)."""
    g = _graphs()
    return {"featurizer_version": g.FEATURIZER_VERSION, "graph_format": g.GRAPH_FORMAT_VERSION,
            "subtokens": dict(g.SUBTOKENS), "node_kinds": list(g.NODE_KINDS),
            "node_features": list(g.NODE_FEATURES), "edge_types": list(g.EDGE_TYPES),
            "num_node_kinds": g.NUM_NODE_KINDS, "node_feat_dim": g.NODE_FEAT_DIM,
            "num_edge_types": g.NUM_EDGE_TYPES}


def check_node_vocab(model_dir: Path) -> None:
    """A GNN only fits graphs from the featurizer it was trained with: compare vocabularies.

    Raises:
        EntryError: no `node_vocab.json`, or one that differs from the shipped featurizer.
    """
    from entry_errors import EntryError

    path = model_dir / "node_vocab.json"
    if not path.is_file():
        raise EntryError(f"{model_dir}: GNN model without node_vocab.json")
    saved = json.loads(path.read_text(encoding="utf-8"))
    current = featurizer_info()
    for key in ("graph_format", "subtokens", "node_kinds", "node_features", "edge_types"):
        if saved.get(key) != current[key]:
            raise EntryError(f"{path}: the model's {key} differ from the shipped featurizer "
                             f"(model {saved.get('featurizer_version')}, "
                             f"featurizer {current['featurizer_version']}); "
                             "retrain instead of fine-tuning or evaluating it")


class RelationalConv(MessagePassing):
    """One relational graph convolution (R-GCN style) with a per-relation linear message.

    Messages along an edge of relation r are `W_r h_src`, averaged per (target node, relation)
    as in R-GCN, plus a root transform `W_0 h_dst`. Instead of a loop over relations, every node
    is projected once for all relations (`N x R x C`) and the graph is treated as a bipartite graph
    from (node, relation) pairs to nodes, so one gather + scatter does the whole layer; this is
    what keeps it fast on CPU without pyg-lib's segment matmul.
    """

    def __init__(self, channels: int, num_relations: int):
        super().__init__(aggr="add")
        self.channels = channels
        self.num_relations = num_relations
        self.rel_lin = nn.Linear(channels, channels * num_relations, bias=False)
        self.root_lin = nn.Linear(channels, channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        n = x.size(0)
        rel = self.rel_lin(x).view(n * self.num_relations, self.channels)
        src, dst = edge_index
        pair = src * self.num_relations + edge_type
        # R-GCN normalisation 1/|N_r(dst)|: messages are averaged per target node and relation.
        slot = dst * self.num_relations + edge_type
        deg = scatter(torch.ones_like(slot, dtype=x.dtype), slot, dim=0,
                      dim_size=n * self.num_relations, reduce="sum")
        norm = deg[slot].reciprocal()
        out = self.propagate(torch.stack([pair, dst]), x=(rel, x), norm=norm,
                             size=(n * self.num_relations, n))
        return out + self.root_lin(x)

    def message(self, x_j: Tensor, norm: Tensor) -> Tensor:
        return x_j * norm.unsqueeze(-1)


class GatedAttentionPool(nn.Module):
    """Gated attention pooling (Ilse et al. 2018) normalised within each graph.

    `a_i = w^T (tanh(V h_i) * sigmoid(U h_i))`, then `softmax(a, batch)`: the weights of the
    nodes of one graph sum to 1, and nodes of different graphs never compete.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.v = nn.Linear(channels, channels)
        self.u = nn.Linear(channels, channels)
        self.w = nn.Linear(channels, 1)

    def forward(self, h: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
        gate = self.w(torch.tanh(self.v(h)) * torch.sigmoid(self.u(h))).squeeze(-1)
        weights = softmax(gate.float(), batch, num_nodes=h.size(0), dim=0)
        pooled = scatter(h * weights.to(h.dtype).unsqueeze(-1), batch, dim=0, dim_size=num_graphs, reduce="sum")
        return pooled, weights


class EnhancedTaintFlowGNN(EntryModel):
    """Graph classifier over typed program graphs.

    Args:
        in_channels: float node feature size (`NODE_FEAT_DIM`).
        num_kinds: node-kind vocabulary size (`NUM_NODE_KINDS`); 0: no kind embedding.
        num_subtoken_buckets: subtoken buckets (`SUBTOKENS["buckets"]`); 0: no subtoken embedding.
        hidden_channels: width of every layer.
        num_relations: number of edge types in the graphs. Each relation also gets a reverse
            relation internally, so information flows both along and against data/control flow.
        num_layers: message-passing layers (each residual + LayerNorm).
        num_classes: output classes (2: safe / vulnerable).
        dropout: dropout after every layer and in the head.
        readout_columns: node-feature columns whose maximum over each graph the head also reads
            (the featurizer's 0/1 flags, `FLAG_FEATURES`; empty: none, as in models saved before
            it existed). A flag (a sink reached on a taint path, a known sink at all, a sanitizer)
            then reaches the classifier as it is, not only mixed by message passing, so the model
            can learn when to follow the analysis and when (no known sink) to go by names and
            argument flows. Sizes and positions are left out: their maxima say how large a
            function is, which differs between code bases, not whether it is vulnerable.
        embedding_std: standard deviation the kind and subtoken embeddings start from. 0 starts
            them at zero, so a kind or subtoken that training never sees (Python's node kinds,
            for a model trained on Java only) adds nothing at inference instead of a random
            vector: an unused row gets no gradient and stays zero; a used one learns as before.
        kind_roles: the language-neutral role id of every node kind (the featurizer's `KIND_ROLES`,
            one per kind id; empty: no role embedding, as in models saved before it existed). Each
            node then also adds its role's embedding, which Java's `method_invocation` and
            Python's `Call` share, so what a model learned on one language reaches the other even
            where the language's own kind embedding was never trained. The mapping is saved with
            the model's kwargs, so a saved model keeps the roles it was trained with.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 64, num_relations: int | None = None,
                 num_layers: int = 3, num_classes: int = 2, dropout: float = 0.1, num_kinds: int = 0,
                 num_subtoken_buckets: int = 0, readout_columns: Sequence[int] = (), embedding_std: float = 0.1,
                 kind_roles: Sequence[int] = ()):
        super().__init__()
        if num_relations is None:
            from streamguard.core.graphs import NUM_EDGE_TYPES

            num_relations = NUM_EDGE_TYPES
        if min(in_channels, hidden_channels, num_relations, num_layers, num_classes) < 1:
            raise ValueError("EnhancedTaintFlowGNN: sizes must be positive, got "
                             f"in={in_channels} hidden={hidden_channels} relations={num_relations} "
                             f"layers={num_layers} classes={num_classes}")
        if num_kinds < 0 or num_subtoken_buckets < 0:
            raise ValueError("EnhancedTaintFlowGNN: num_kinds and num_subtoken_buckets must be >= 0")
        if not embedding_std >= 0:
            raise ValueError(f"EnhancedTaintFlowGNN: embedding_std must be >= 0, got {embedding_std}")
        roles = [int(r) for r in kind_roles]
        if roles and (len(roles) != num_kinds or min(roles) < 0):
            raise ValueError(f"EnhancedTaintFlowGNN: kind_roles needs one role id >= 0 per node kind "
                             f"({num_kinds}), got {len(roles)}")
        self.num_relations = num_relations
        self.input = nn.Linear(in_channels, hidden_channels)
        self.kind_embedding = nn.Embedding(num_kinds, hidden_channels) if num_kinds else None
        self.register_buffer("kind_roles", torch.tensor(roles, dtype=torch.long), persistent=False)
        self.role_embedding = nn.Embedding(max(roles) + 1, hidden_channels) if roles else None
        # Bucket 0 pads: excluded from the mean, and a node without subtokens adds nothing.
        self.subtoken_embedding = (nn.EmbeddingBag(num_subtoken_buckets + 1, hidden_channels, mode="mean",
                                                   padding_idx=0) if num_subtoken_buckets else None)
        # Embeddings start at the scale of the flags' projection (not N(0, 1), which would drown
        # the featurizer's flags at the start of training), or at zero; the padding bucket stays zero.
        for emb in (self.kind_embedding, self.role_embedding, self.subtoken_embedding):
            if emb is not None:
                if embedding_std:
                    nn.init.normal_(emb.weight, std=embedding_std)
                else:
                    nn.init.zeros_(emb.weight)
                if getattr(emb, "padding_idx", None) is not None:
                    with torch.no_grad():
                        emb.weight[emb.padding_idx].zero_()
        self.convs = nn.ModuleList(RelationalConv(hidden_channels, 2 * num_relations) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_channels) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.attention = GatedAttentionPool(hidden_channels)
        # Readout = [add, mean, max, attention]; the LayerNorm tames add-pool's growth with graph size.
        self.readout_norm = nn.LayerNorm(4 * hidden_channels)
        cols = [int(c) for c in readout_columns]
        if any(not 0 <= c < in_channels for c in cols):
            raise ValueError(f"EnhancedTaintFlowGNN: readout_columns must lie in [0, {in_channels}), got {cols}")
        self.register_buffer("readout_columns", torch.tensor(cols, dtype=torch.long), persistent=False)
        head_in = 4 * hidden_channels + len(cols)
        self.head = nn.Sequential(
            nn.Linear(head_in, hidden_channels), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden_channels, num_classes),
        )

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None,
                edge_type: Tensor | None = None, kind: Tensor | None = None,
                subtok: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Classify every graph of a batch.

        Args:
            x: `[N, in_channels]` node features.
            edge_index: `[2, E]` (source, target) node indices.
            batch: `[N]` graph id of every node (None: one graph).
            edge_type: `[E]` relation ids (None: all relation 0).
            kind: `[N]` node-kind ids (required when the model has a kind embedding).
            subtok: `[N, K]` subtoken bucket ids, 0 = none (required with a subtoken embedding).

        Returns:
            `(logits [G, num_classes], extras)` with `extras["node_importance"]` (`[N]`, attention
            weights summing to 1 within each graph) and `extras["graph_embedding"]` (`[G, 4*hidden]`,
            plus the graph maxima of `readout_columns`).
        """
        if batch is None:
            batch = x.new_zeros(x.size(0), dtype=torch.long)
        if edge_type is None:
            edge_type = edge_index.new_zeros(edge_index.size(1))
        num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        # Reverse edges as their own relations (ids R..2R-1).
        rev_index = edge_index.flip(0)
        all_index = torch.cat([edge_index, rev_index], dim=1)
        all_type = torch.cat([edge_type, edge_type + self.num_relations])

        h = self.input(x)
        if self.kind_embedding is not None:
            if kind is None:
                raise ValueError("EnhancedTaintFlowGNN: this model needs node kinds (kind=...)")
            h = h + self.kind_embedding(kind)
            if self.role_embedding is not None:
                h = h + self.role_embedding(self.kind_roles[kind])
        if self.subtoken_embedding is not None:
            if subtok is None:
                raise ValueError("EnhancedTaintFlowGNN: this model needs node subtokens (subtok=...)")
            if subtok.numel():
                h = h + self.subtoken_embedding(subtok)
        h = torch.nn.functional.gelu(h)
        for conv, norm in zip(self.convs, self.norms):
            h = h + self.dropout(torch.nn.functional.gelu(norm(conv(h, all_index, all_type))))

        attn, weights = self.attention(h, batch, num_graphs)
        readout = torch.cat([
            global_add_pool(h, batch, size=num_graphs),
            global_mean_pool(h, batch, size=num_graphs),
            global_max_pool(h, batch, size=num_graphs),
            attn,
        ], dim=-1)
        graph_embedding = self.readout_norm(readout)
        if self.readout_columns.numel():
            # Flags are 0/1 already: no normalisation, so a flag stays a flag.
            flags = global_max_pool(x.index_select(1, self.readout_columns), batch, size=num_graphs)
            graph_embedding = torch.cat([graph_embedding, flags], dim=-1)
        logits = self.head(graph_embedding)
        return logits, {"node_importance": weights, "graph_embedding": graph_embedding}

    # ------------------------------------------------------------------ the training entry's hooks
    model_type = "gnn"
    needs_graphs = True

    @classmethod
    def from_config(cls, options: ModelOptions, train_samples: Sequence = ()) -> NewModel:
        """A new GNN sized by `options`, its input and vocabulary sizes from the shipped featurizer."""
        g = _graphs()
        kwargs = {"in_channels": g.NODE_FEAT_DIM, "hidden_channels": options.hidden_size,
                  "num_relations": g.NUM_EDGE_TYPES, "num_layers": options.num_layers, "num_classes": 2,
                  "dropout": options.dropout, "num_kinds": g.NUM_NODE_KINDS,
                  "num_subtoken_buckets": g.SUBTOKENS["buckets"],
                  "readout_columns": [g.NODE_FEATURES.index(f) for f in g.FLAG_FEATURES] if options.input_readout else [],
                  "embedding_std": options.embedding_std}
        if options.kind_roles:
            kwargs["kind_roles"] = list(g.KIND_ROLES)
        return NewModel(cls(**kwargs), None, kwargs)

    def forward_batch(self, batch: Any, device: torch.device, net: nn.Module | None = None) -> BatchOutput:
        """A PyG `Batch` (`data.GraphDataset`) through the model."""
        batch = batch.to(device)
        run = self if net is None else net
        logits, _ = run(batch.x, batch.edge_index, batch.batch, batch.edge_type, batch.kind, batch.subtok)
        return BatchOutput(logits, batch.y)

    @classmethod
    def check_model_dir(cls, model_dir: Path) -> None:
        check_node_vocab(model_dir)

    @classmethod
    def companion_json(cls) -> dict[str, Any]:
        return {"node_vocab.json": featurizer_info()}

    @classmethod
    def saved_config(cls, *, max_length: int, text_input: str | None, pretrained: str | None) -> dict:
        return {**super().saved_config(max_length=max_length, text_input=text_input, pretrained=pretrained),
                "featurizer_version": _graphs().FEATURIZER_VERSION}
