"""Channel data for the entry script: reading JSONL(.gz) records, graphs -> PyG `Data`, data loaders.

Records may be prepared (`{"id", "code", "label", ..., "graph"}`) or raw (`code` + `label`, maybe
`id`/`language`/`cwe`): every record is validated with `streamguard.core.records.normalize_record`,
and graphs are built with `streamguard.core.graphs.build_graph` (the featurizer preparation uses)
when a record has none or its featurizer version differs from the shipped one.

Graphs never pile up in memory: `read_samples(..., need_graphs=True)` uses the channel's own graph
store (`graph_store/` written by `streamguard prepare`, see `streamguard.core.graph_store`) when it
describes exactly the channel's files with the shipped featurizer, and otherwise converts the
channel once, line by line, into a store in scratch space. Each `Sample` then holds a reference
into the store, and the GNN datasets read one graph at a time from disk.
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import atexit
import os
import tempfile

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

import text_inputs

from streamguard.core import graph_store as gstore
from streamguard.core.records import RecordError, normalize_record


class DataError(ValueError):
    """Unusable channel data; the message names the file, the line and the reason."""


@dataclass
class Sample:
    """One input row. `error` is set (and the rest may be None) when the row could not be used."""

    index: int
    where: str                      # "file:line"
    id: str | None = None
    code: str | None = None
    label: int | None = None
    language: str | None = None
    cwe: str | None = None
    graph: Any = None               # the record's graph (a `GraphRef` into a store, or a PyG `Data`)
    graph_nodes: int | None = None  # for input statistics
    error: str | None = None
    text: str | None = None         # the transformer's input text once computed (`attach_texts`)
    code_length: int | None = None  # kept when `code` is dropped (GNN samples do not need the text)

    def length(self) -> int:
        """Length of the code in characters."""
        return len(self.code) if self.code is not None else (self.code_length or 0)


@dataclass(frozen=True)
class GraphRef:
    """Graph ``index`` of a `streamguard.core.graph_store.GraphStore`."""

    store: Any
    index: int


def graphs_module():
    """The shipped featurizer (imported lazily: the transformer path does not need tree-sitter)."""
    return importlib.import_module("streamguard.core.graphs")


def list_data_files(path: str | Path) -> list[Path]:
    """The JSONL(.gz) files of a channel: the file itself, or every *.jsonl / *.jsonl.gz below a dir."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError(f"{p}: no such file or directory")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith((".jsonl", ".jsonl.gz"))
                   and gstore.STORE_DIRNAME not in f.relative_to(p).parts)
    if not files:
        raise DataError(f"{p}: no *.jsonl or *.jsonl.gz files in this channel")
    return files


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _raw_lines(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield `("file:line", text)` for every non-blank line of a channel, lazily."""
    for file in list_data_files(path):
        with _open_text(file) as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield f"{file}:{lineno}", line


def _decode(line: str) -> Any | Exception:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return exc


def iter_lines(path: str | Path) -> Iterator[tuple[str, Any | Exception]]:
    """Yield `("file:line", decoded JSON or the decode error)` for every non-blank line of a channel."""
    for where, line in _raw_lines(path):
        yield where, _decode(line)


def _graph_for(obj: dict, record: dict) -> dict:
    g = graphs_module()
    graph = obj.get("graph")
    if isinstance(graph, dict) and graph.get("v") == g.FEATURIZER_VERSION:
        return graph
    # Missing graph, or one from another featurizer version: rebuild with the shipped featurizer.
    return g.build_graph(record["code"], record["language"])


def read_samples(path: str | Path, *, require_label: bool = True, need_graphs: bool = False,
                 strict: bool = True, limit: int | None = None, seed: int = 0) -> list[Sample]:
    """Read and validate the records of a channel.

    Args:
        path: a JSONL(.gz) file or a directory of them.
        require_label: records without a label are errors (training) or allowed (inference).
        need_graphs: keep (or build) each record's graph in a graph store (see the module docstring);
            each sample's ``graph`` is then a `GraphRef` and its ``code`` is dropped (``code_length`` kept).
        strict: raise DataError on the first bad row (training); otherwise keep it as a Sample
            with `error` set, so that evaluation reports it instead of dropping it.
        limit: keep a seeded random subset of this many lines, in file order (smoke runs); the
            subset is drawn before validation so graphs are only built for the rows kept.
        seed: seed of that subset.
    """
    if need_graphs:
        store = channel_store(path)
        if store is not None:
            return _samples_from_store(store, limit, seed)
    # Lines are decoded one at a time and dropped once converted: a prepared channel's graphs are
    # large as JSON dicts, and holding every decoded line would cost gigabytes on real data.
    chosen: set[int] | None = None
    if limit is not None:
        total = sum(1 for _ in _raw_lines(path))
        if limit < total:
            chosen = set(random.Random(seed).sample(range(total), limit))
    g = graphs_module() if need_graphs else None
    writer = _scratch_writer() if need_graphs else None
    samples: list[Sample] = []
    try:
        for index, (where, line) in enumerate(_raw_lines(path)):
            if chosen is not None and index not in chosen:
                continue
            obj = _decode(line)
            try:
                if isinstance(obj, Exception):
                    raise DataError(f"invalid JSON: {obj}")
                record = normalize_record(obj, require_label=require_label)
                sample = Sample(index=index, where=where, id=record["id"], code=record["code"],
                                label=record["label"], language=record["language"], cwe=record.get("cwe"))
                if need_graphs:
                    # Converted (and so validated) now, so that errors name the line.
                    arrays = gstore.graph_arrays(_graph_for(obj, record), g)
                    sample.graph_nodes = arrays.num_nodes
                    sample.code_length, sample.code = len(sample.code), None
                    sample.graph = writer.add(arrays, {"i": index})
                elif isinstance(obj.get("graph"), dict) and isinstance(obj["graph"].get("num_nodes"), int):
                    sample.graph_nodes = obj["graph"]["num_nodes"]
            except (RecordError, DataError, ValueError, TypeError, KeyError) as exc:
                message = f"{where}: {exc}"
                if strict:
                    raise DataError(message) from exc
                raw = obj if isinstance(obj, dict) else {}
                samples.append(Sample(index=index, where=where, id=_str_or_none(raw.get("id")),
                                      label=_label_or_none(raw), language=_str_or_none(raw.get("language")),
                                      cwe=_str_or_none(raw.get("cwe")), error=message))
                continue
            samples.append(sample)
    except BaseException:
        if writer is not None:
            writer.abort()
            gstore.remove_store(writer.root)
        raise
    if writer is not None:
        writer.close()
        store = gstore.GraphStore(writer.root)
        for s in samples:
            if s.error is None:
                s.graph = GraphRef(store, s.graph)
    return samples


def _scratch_root() -> Path:
    base = os.environ.get("STREAMGUARD_GRAPH_SCRATCH") or os.environ.get("TMPDIR") or tempfile.gettempdir()
    return Path(base)


def _scratch_writer() -> gstore.StoreWriter:
    """A store in scratch space for a channel without a usable prepared store; removed at exit."""
    g = graphs_module()
    root = Path(tempfile.mkdtemp(prefix="sg-graphs-", dir=_scratch_root()))
    atexit.register(gstore.remove_store, root)
    return gstore.StoreWriter(root, g.FEATURIZER_VERSION, subtokens=g.SUBTOKENS, feat_dim=g.NODE_FEAT_DIM)


def channel_store(path: str | Path) -> gstore.GraphStore | None:
    """The channel's prepared graph store, when it describes exactly this channel's files and was
    built by the shipped featurizer; None otherwise (the caller then converts the channel)."""
    p = Path(path)
    root = p / gstore.STORE_DIRNAME if p.is_dir() else p.parent / gstore.STORE_DIRNAME
    if not (root / gstore.INDEX).is_file():
        return None
    try:
        store = gstore.GraphStore(root)
    except gstore.StoreError:
        return None
    g = graphs_module()
    base = p if p.is_dir() else p.parent
    if (store.version != g.FEATURIZER_VERSION or store.index.get("subtokens") != g.SUBTOKENS
            or store.index.get("sources") != gstore.channel_sources(list_data_files(p), base)):
        return None
    return store


def _samples_from_store(store: gstore.GraphStore, limit: int | None, seed: int) -> list[Sample]:
    """Samples of a prepared store (every row valid: prepare quarantines bad records)."""
    chosen: set[int] | None = None
    total = int(store.index["lines"])
    if limit is not None and limit < total:
        chosen = set(random.Random(seed).sample(range(total), limit))
    samples = []
    base = store.root.parent
    for pos, m in enumerate(store.meta()):
        index = int(m["i"])
        if chosen is not None and index not in chosen:
            continue
        samples.append(Sample(index=index, where=f"{base}/{m['where']}", id=m["id"], label=m.get("label"),
                              language=m.get("language"), cwe=m.get("cwe"), graph=GraphRef(store, pos),
                              graph_nodes=m.get("nodes"), code_length=m.get("code_length")))
    return samples


def _str_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _label_or_none(raw: dict) -> int | None:
    value = raw.get("label")
    return value if value in (0, 1) and not isinstance(value, float) else None


def label_counts(samples: Sequence[Sample], num_classes: int = 2) -> list[int]:
    """How many samples carry each label (unlabelled and error rows are not counted)."""
    counts = [0] * num_classes
    for s in samples:
        if s.error is None and s.label is not None:
            counts[s.label] += 1
    return counts


# --------------------------------------------------------------------------------------- graphs
def node_feature_size() -> int:
    """Width of the GNN's float node features (`x`); node kinds and subtokens come as ids."""
    return graphs_module().NODE_FEAT_DIM


def graph_to_data(graph: dict, label: int | None = None):
    """Convert a graph record to `torch_geometric.data.Data` (`x` = feat, `kind`, `subtok`, edges).

    Raises:
        ValueError: naming the field when the graph is malformed or uses ids outside the vocabulary.
    """
    return arrays_to_data(gstore.graph_arrays(graph, graphs_module()), label)


def arrays_to_data(a: gstore.GraphArrays, label: int | None = None):
    """`Data(x [n, F] float32, kind [n], subtok [n, K], edge_index [2, E], edge_type [E], y [1])`.

    ``feat`` passes through float16 (the store's dtype) on every path, so a graph read from a store
    and one built at serving time give the model identical inputs.
    """
    from torch_geometric.data import Data

    n = a.num_nodes
    data = Data(x=torch.from_numpy(np.asarray(a.feat, dtype=np.float16).astype(np.float32)),
                kind=torch.from_numpy(a.kind.astype(np.int64)),
                subtok=torch.from_numpy(a.subtok.astype(np.int64)),
                edge_index=torch.from_numpy(np.ascontiguousarray(a.edges.T, dtype=np.int64)),
                edge_type=torch.from_numpy(a.edge_type.astype(np.int64)), num_nodes=n)
    data.y = torch.tensor([-1 if label is None else label], dtype=torch.long)
    return data


def hide_sinks(a: gstore.GraphArrays) -> gstore.GraphArrays:
    """The graph as the featurizer would draw it if the catalog knew none of its sinks.

    Sink flags and the sink-dependent columns (`flows_to_sink`, `on_taint_path`) are cleared,
    `sink_arg` edges become `call_arg` edges (an argument of a library call), and a former sink
    that a tainted argument enters is tainted itself (taint passes through unknown calls). The
    label stays the record's own: the code is exactly as vulnerable as before. Training on some
    graphs drawn this way (`--sink-dropout`) makes the model recognise sinks from their names and
    argument flows as well as from the catalog's flags, so it can flag a sink the catalog misses.
    """
    g = graphs_module()
    col = {name: i for i, name in enumerate(g.NODE_FEATURES)}
    et_index = {name: i for i, name in enumerate(g.EDGE_TYPES)}
    feat = np.array(a.feat, dtype=np.float16, copy=True)
    edge_type = np.array(a.edge_type, copy=True)
    sink_arg = edge_type == et_index["sink_arg"]
    if sink_arg.any():
        tainted = feat[:, col["is_tainted"]] > 0.5
        src, dst = a.edges[sink_arg, 0], a.edges[sink_arg, 1]
        feat[dst[tainted[src]], col["is_tainted"]] = 1.0
        edge_type[sink_arg] = et_index["call_arg"]
    for name in ("is_sink", "is_path_sink", "flows_to_sink", "on_taint_path"):
        feat[:, col[name]] = 0.0
    return gstore.GraphArrays(kind=a.kind, feat=feat, subtok=a.subtok, edges=a.edges, edge_type=edge_type)


# The columns that say where tainted data comes from and where it goes: what the featurizer would not
# draw if its catalog knew none of a graph's sources (`hide_sources`).
SOURCE_COLUMNS = ("is_source", "is_param_source", "is_tainted", "on_taint_path")


def hide_sources(a: gstore.GraphArrays) -> gstore.GraphArrays:
    """The graph as the featurizer would draw it if the catalog knew none of its sources.

    The source flags (library sources and parameters) and what follows from them (`is_tainted`,
    `on_taint_path`) are cleared; everything else stays, `flows_to_sink` included (which values
    reach a sink does not depend on where they came from). The label stays the record's own: the
    code is as vulnerable as before. Training on some graphs drawn this way (`--source-dropout`)
    makes the model judge what reaches a sink (a constant, or a value from anywhere else) as well as
    the catalog's verdict, so it can flag code whose untrusted input arrives by a route the catalog
    does not list (a session, a form object, an attribute).
    """
    g = graphs_module()
    col = {name: i for i, name in enumerate(g.NODE_FEATURES)}
    feat = np.array(a.feat, dtype=np.float16, copy=True)
    for name in SOURCE_COLUMNS:
        feat[:, col[name]] = 0.0
    return gstore.GraphArrays(kind=a.kind, feat=feat, subtok=a.subtok, edges=a.edges, edge_type=a.edge_type)


class GraphDataset(Dataset):
    """The graphs of some samples, read from their store one at a time (or kept `Data` objects).

    ``sink_dropout`` > 0 (training only): each time a graph is read, with that probability it is
    drawn as if the catalog knew none of its sinks (`hide_sinks`); the draw is seeded by
    ``seed`` and the position, so an epoch is reproducible. ``source_dropout`` > 0 likewise draws it
    as if the catalog knew none of its sources (`hide_sources`), from a draw of its own (both may
    apply to one graph).
    """

    def __init__(self, samples: Sequence[Sample], *, sink_dropout: float = 0.0, source_dropout: float = 0.0,
                 seed: int = 0):
        self.refs = [s.graph for s in samples]
        self.labels = [s.label for s in samples]
        self.sink_dropout = sink_dropout
        self.source_dropout = source_dropout
        self.seed = seed

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int):
        ref = self.refs[i]
        if isinstance(ref, GraphRef):
            arrays = ref.store[ref.index]
            if self.sink_dropout and random.Random(self.seed * 1_000_003 + i).random() < self.sink_dropout:
                arrays = hide_sinks(arrays)
            if self.source_dropout and random.Random(self.seed * 1_000_003 + i + 500_009).random() < self.source_dropout:
                arrays = hide_sources(arrays)
            return arrays_to_data(arrays, self.labels[i])
        return ref


# -------------------------------------------------------------------------------------- loaders
class CodeDataset(Dataset):
    """(code, label) pairs for the transformer; tokenised per batch by `TokenCollator`."""

    def __init__(self, samples: Sequence[Sample], text_input: str = text_inputs.DEFAULT_TEXT_INPUT, *,
                 token_dropout: float = 0.0, seed: int = 0):
        self.codes = [s.text if s.text is not None else text_inputs.transformer_text(s.code, s.language, text_input)
                      for s in samples]
        self.labels = [-1 if s.label is None else s.label for s in samples]
        self.token_dropout = token_dropout
        self.seed = seed

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> tuple[str, int]:
        if self.token_dropout:
            rng = random.Random(self.seed * 1_000_003 + i)
            return text_inputs.drop_code_words(self.codes[i], self.token_dropout, rng), self.labels[i]
        return self.codes[i], self.labels[i]


class TokenCollator:
    """Tokenise a batch with dynamic padding (a class, not a lambda, so worker processes can pickle it)."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, batch: list[tuple[str, int]]) -> dict[str, torch.Tensor]:
        codes, labels = zip(*batch)
        enc = self.tokenizer(list(codes), truncation=True, max_length=self.max_length, padding=True,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "y": torch.tensor(labels, dtype=torch.long)}


def make_dataset(model_type: str, samples: Sequence[Sample], text_input: str = text_inputs.DEFAULT_TEXT_INPUT, *,
                 sink_dropout: float = 0.0, source_dropout: float = 0.0, token_dropout: float = 0.0, seed: int = 0):
    """The dataset of one split: a `GraphDataset` (GNN) or a `CodeDataset` (transformer)."""
    if model_type == "gnn":
        return GraphDataset(samples, sink_dropout=sink_dropout, source_dropout=source_dropout, seed=seed)
    return CodeDataset(samples, text_input, token_dropout=token_dropout, seed=seed)


def language_sampler(samples: Sequence[Sample], balance: float,
                     seed: int) -> tuple[Sampler, dict[str, tuple[float, float]]]:
    """A seeded sampler that draws each language more evenly than it occurs (``--language-balance``).

    A sample of a language with ``n`` training samples is drawn with weight ``n ** -balance``, with
    replacement, ``len(samples)`` draws an epoch: 0 keeps the languages' shares as they are, 1 gives
    every language the same share, 0.5 lies between (the shares go with the square roots of the counts).
    Returns the sampler and, per language, its share of ``samples`` and its expected share of an
    epoch's draws.
    """
    from torch.utils.data import WeightedRandomSampler

    langs = [s.language or "unknown" for s in samples]
    counts: dict[str, int] = {}
    for lang in langs:
        counts[lang] = counts.get(lang, 0) + 1
    weight = {lang: n ** -balance for lang, n in counts.items()}
    weights = torch.tensor([weight[lang] for lang in langs], dtype=torch.double)
    total = float(weights.sum())
    shares = {lang: (counts[lang] / len(langs), counts[lang] * weight[lang] / total) for lang in sorted(counts)}
    sampler = WeightedRandomSampler(weights, num_samples=len(samples), replacement=True,
                                    generator=torch.Generator().manual_seed(seed))
    return sampler, shares


def make_loader(model_type: str, dataset, *, batch_size: int, shuffle: bool = False,
                sampler: Sampler | None = None, tokenizer=None, max_length: int = 256,
                num_workers: int = 0, seed: int = 0) -> DataLoader:
    """A DataLoader for either model; shuffling is seeded so runs are reproducible."""
    generator = torch.Generator().manual_seed(seed) if shuffle and sampler is None else None
    common = {"batch_size": batch_size, "shuffle": shuffle and sampler is None, "sampler": sampler,
              "num_workers": num_workers, "generator": generator}
    if model_type == "gnn":
        from torch_geometric.loader import DataLoader as GraphLoader

        return GraphLoader(dataset, **common)
    if tokenizer is None:
        raise ValueError("a transformer loader needs a tokenizer")
    return DataLoader(dataset, collate_fn=TokenCollator(tokenizer, max_length), **common)
