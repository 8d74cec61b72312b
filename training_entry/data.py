"""Channel data for the entry script: reading JSONL(.gz) records, graphs -> PyG `Data`, data loaders.

Records may be prepared (`{"id", "code", "label", ..., "graph"}`) or raw (`code` + `label`, maybe
`id`/`language`/`cwe`): every record is validated with `streamguard.core.records.normalize_record`,
and graphs are built with `streamguard.core.graphs.build_graph` (the featurizer preparation uses)
when a record has none or its featurizer version differs from the shipped one.
"""

from __future__ import annotations

import re

import gzip
import importlib
import io
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

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
    graph: Any = None               # PyG `Data` of the record's graph, only when the model needs graphs
    graph_nodes: int | None = None  # for input statistics
    error: str | None = None
    text: str | None = None         # the transformer's input text once computed (`attach_texts`)


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
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith((".jsonl", ".jsonl.gz")))
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
        need_graphs: keep (or build) each record's graph and check it converts to a PyG graph.
        strict: raise DataError on the first bad row (training); otherwise keep it as a Sample
            with `error` set, so that evaluation reports it instead of dropping it.
        limit: keep a seeded random subset of this many lines, in file order (smoke runs); the
            subset is drawn before validation so graphs are only built for the rows kept.
        seed: seed of that subset.
    """
    # Lines are decoded one at a time and dropped once converted: a prepared channel's graphs are
    # large as JSON dicts, and holding every decoded line would cost gigabytes on real data.
    chosen: set[int] | None = None
    if limit is not None:
        total = sum(1 for _ in _raw_lines(path))
        if limit < total:
            chosen = set(random.Random(seed).sample(range(total), limit))
    samples: list[Sample] = []
    for index, (where, line) in enumerate(_raw_lines(path)):
        if chosen is not None and index not in chosen:
            continue
        obj = _decode(line)
        try:
            if isinstance(obj, Exception):
                raise DataError(f"invalid JSON: {obj}")
            record = normalize_record(obj, require_label=require_label)
            sample = Sample(index=index, where=where, id=record["id"], code=record["code"], label=record["label"],
                            language=record["language"], cwe=record.get("cwe"))
            if need_graphs:
                graph = _graph_for(obj, record)
                # Converted (and so validated) now, so that errors name the line.
                sample.graph = graph_to_data(graph, record["label"])
                sample.graph_nodes = int(graph["num_nodes"])
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
    """GNN input width: one-hot node kind + node features."""
    g = graphs_module()
    return g.NUM_NODE_KINDS + g.NODE_FEAT_DIM


def graph_to_data(graph: dict, label: int | None = None):
    """Convert a graph record to `torch_geometric.data.Data` with `x = concat(one_hot(kind), feat)`.

    Raises:
        ValueError: naming the field when the graph is malformed or uses ids outside the vocabulary.
    """
    from torch_geometric.data import Data

    g = graphs_module()
    n = graph.get("num_nodes")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"graph: num_nodes must be a positive integer, got {n!r}")
    kind = torch.as_tensor(graph["kind"], dtype=torch.long)
    if kind.shape != (n,):
        raise ValueError(f"graph: 'kind' has {kind.numel()} entries for {n} nodes")
    if kind.numel() and (int(kind.min()) < 0 or int(kind.max()) >= g.NUM_NODE_KINDS):
        raise ValueError(f"graph: node kind ids must lie in [0, {g.NUM_NODE_KINDS})")
    feat = torch.as_tensor(graph["feat"], dtype=torch.float32)
    if feat.shape != (n, g.NODE_FEAT_DIM):
        raise ValueError(f"graph: 'feat' has shape {tuple(feat.shape)}, expected ({n}, {g.NODE_FEAT_DIM})")
    edge_index = torch.as_tensor(graph["edge_index"], dtype=torch.long).reshape(2, -1)
    edge_type = torch.as_tensor(graph["edge_type"], dtype=torch.long).reshape(-1)
    if edge_type.numel() != edge_index.size(1):
        raise ValueError(f"graph: {edge_index.size(1)} edges but {edge_type.numel()} edge types")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        raise ValueError(f"graph: edge endpoints must lie in [0, {n})")
    if edge_type.numel() and (int(edge_type.min()) < 0 or int(edge_type.max()) >= g.NUM_EDGE_TYPES):
        raise ValueError(f"graph: edge type ids must lie in [0, {g.NUM_EDGE_TYPES})")
    x = torch.cat([torch.nn.functional.one_hot(kind, g.NUM_NODE_KINDS).float(), feat], dim=1)
    data = Data(x=x, edge_index=edge_index, edge_type=edge_type, num_nodes=n)
    data.y = torch.tensor([-1 if label is None else label], dtype=torch.long)
    return data


# -------------------------------------------------------------------------------------- loaders
_BOILERPLATE = re.compile(r"^\s*(?:import\s|package\s|from\s+\S+\s+import\s|#|//|/?\*)")


def code_for_tokens(code: str) -> str:
    """The text the transformer reads: imports, package lines and comment lines dropped, whitespace
    collapsed.

    Files open with imports and headers; with a fixed token budget (`--max-length`) those would push
    the function bodies, where flows into sinks are written, past the truncation point.
    """
    kept = [line.strip() for line in code.splitlines() if line.strip() and not _BOILERPLATE.match(line)]
    return " ".join(" ".join(kept).split())


# What the transformer reads: "gadget" (the statements that reach a sink, `streamguard.core.graphs.
# gadget`; the default) or "code" (the whole text, `code_for_tokens`; models saved before gadgets).
TEXT_INPUTS = ("gadget", "code")
DEFAULT_TEXT_INPUT = "gadget"


def transformer_text(code: str, language: str | None, text_input: str = DEFAULT_TEXT_INPUT) -> str:
    """The text the transformer reads for one record, by input kind (see `TEXT_INPUTS`).

    A code gadget keeps its lines apart with " ; " (line breaks would be collapsed by the
    byte-level tokenizer's whitespace handling anyway; the separator keeps statement boundaries).
    """
    if text_input == "code":
        return code_for_tokens(code)
    if text_input != "gadget":
        raise ValueError(f"unknown transformer text input {text_input!r} (expected one of {TEXT_INPUTS})")
    from streamguard.core.graphs.gadget import code_gadget

    gadget = code_gadget(code, language or "python")
    return " ; ".join(" ".join(line.split()) for line in gadget.text.split("\n"))


def attach_texts(samples: Sequence[Sample], text_input: str = DEFAULT_TEXT_INPUT) -> None:
    """Compute each usable sample's transformer text once (epochs rebuild their datasets)."""
    for s in samples:
        if s.error is None and s.code is not None:
            s.text = transformer_text(s.code, s.language, text_input)


class CodeDataset(Dataset):
    """(code, label) pairs for the transformer; tokenised per batch by `TokenCollator`."""

    def __init__(self, samples: Sequence[Sample], text_input: str = DEFAULT_TEXT_INPUT):
        self.codes = [s.text if s.text is not None else transformer_text(s.code, s.language, text_input)
                      for s in samples]
        self.labels = [-1 if s.label is None else s.label for s in samples]

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> tuple[str, int]:
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


def make_dataset(model_type: str, samples: Sequence[Sample], text_input: str = DEFAULT_TEXT_INPUT):
    """The dataset of one split: a list of PyG graphs (GNN) or a `CodeDataset` (transformer)."""
    if model_type == "gnn":
        return [s.graph for s in samples]
    return CodeDataset(samples, text_input)


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
