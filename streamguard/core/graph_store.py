"""On-disk graph store: program graphs as numpy shards plus an index, read one graph at a time.

A JSON graph record (``streamguard.core.graphs.build_graph``) is converted once into fixed-dtype
arrays (`GraphArrays`) and appended to a store; training then reads graphs back by position
with positioned reads (``os.pread``), so a process holds only the batch it works on and its
memory does not grow with the number of graphs.

Layout of a store directory::

    index.json            {"format", "featurizer_version", "subtokens", "feat_dim", "count",
                           "lines", "sources": [{"name", "bytes"}], "shards": [{"name", "graphs"}]}
    meta.ndjson           one JSON object per graph: id, label, language, cwe, where, index, nodes, code_length
    shard-00000.safetensors   tensors node_ptr, edge_ptr (int64, graphs + 1), kind (int16),
                              feat (float16, nodes x F), subtok (int16, nodes x K, 0 = none),
                              edges (int32, edges x 2), edge_type (int8)

Shards are safetensors files (a JSON header with dtypes, shapes and byte offsets, then raw
little-endian data: ``safetensors.numpy.load_file`` reads them, nothing is pickled). They are
written and read here with the standard library and numpy only (this module ships in the
SageMaker source dir); a reader takes one graph's rows with positioned reads at the header's
offsets. ``sources`` names the JSONL files (and their sizes) the store was built from, so a
reader can tell whether it still describes the channel next to it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

STORE_FORMAT = "sg-graph-store-2"
STORE_DIRNAME = "graph_store"
INDEX = "index.json"
META = "meta.ndjson"
SHARD_GRAPHS = 2048
MAX_OPEN_SHARDS = 64
_ARRAYS = ("node_ptr", "edge_ptr", "kind", "feat", "subtok", "edges", "edge_type")
_DTYPES = {"node_ptr": np.int64, "edge_ptr": np.int64, "kind": np.int16, "feat": np.float16, "subtok": np.int16,
           "edges": np.int32, "edge_type": np.int8}
_ST_DTYPE = {np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
             np.dtype(np.int8): "I8", np.dtype(np.float16): "F16"}


def safetensors_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise arrays in the safetensors format (little-endian, C order)."""
    header: dict = {}
    blobs = []
    offset = 0
    for key, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[key] = {"dtype": _ST_DTYPE[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


class StoreError(ValueError):
    """A store that cannot be read (missing files, another format or featurizer); names the path."""


@dataclass
class GraphArrays:
    """One graph as arrays: ``kind [n]``, ``feat [n, F]``, ``subtok [n, K]``, ``edges [E, 2]``, ``edge_type [E]``."""

    kind: np.ndarray
    feat: np.ndarray
    subtok: np.ndarray
    edges: np.ndarray
    edge_type: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.kind.shape[0])


def graph_arrays(graph: dict, g=None) -> GraphArrays:
    """Validate a graph record and convert it to arrays.

    Raises:
        ValueError: naming the field when the graph is malformed or uses ids outside the vocabulary.
    """
    if g is None:
        from streamguard.core import graphs as g  # noqa: PLW0621 - the shipped featurizer
    n = graph.get("num_nodes")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"graph: num_nodes must be a positive integer, got {n!r}")
    try:
        kind = np.asarray(graph["kind"], dtype=np.int64)
        feat = np.asarray(graph["feat"], dtype=np.float32)
        ei = np.asarray(graph["edge_index"], dtype=np.int64)
        et = np.asarray(graph["edge_type"], dtype=np.int64).reshape(-1)
    except KeyError as exc:
        raise ValueError(f"graph: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"graph: a field is not a numeric array ({exc})") from None
    if kind.shape != (n,):
        raise ValueError(f"graph: 'kind' has {kind.size} entries for {n} nodes")
    if kind.size and (int(kind.min()) < 0 or int(kind.max()) >= g.NUM_NODE_KINDS):
        raise ValueError(f"graph: node kind ids must lie in [0, {g.NUM_NODE_KINDS})")
    if feat.shape != (n, g.NODE_FEAT_DIM):
        raise ValueError(f"graph: 'feat' has shape {tuple(feat.shape)}, expected ({n}, {g.NODE_FEAT_DIM})")
    if not np.isfinite(feat).all():
        raise ValueError("graph: 'feat' holds a non-finite value")
    if ei.size == 0:
        ei = ei.reshape(2, 0)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise ValueError(f"graph: 'edge_index' must be [sources, targets], got shape {tuple(ei.shape)}")
    if et.size != ei.shape[1]:
        raise ValueError(f"graph: {ei.shape[1]} edges but {et.size} edge types")
    if ei.size and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise ValueError(f"graph: edge endpoints must lie in [0, {n})")
    if et.size and (int(et.min()) < 0 or int(et.max()) >= g.NUM_EDGE_TYPES):
        raise ValueError(f"graph: edge type ids must lie in [0, {g.NUM_EDGE_TYPES})")
    k = g.SUBTOKENS["per_node"]
    subtok = np.zeros((n, k), dtype=np.int16)
    rows = graph.get("subtok", [])
    if not isinstance(rows, list):
        raise ValueError("graph: 'subtok' must be a list of [node, id, ...] rows")
    buckets = g.SUBTOKENS["buckets"]
    for row in rows:
        if (not isinstance(row, list) or len(row) < 2 or len(row) > k + 1
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in row)):
            raise ValueError(f"graph: 'subtok' row {row!r} is not [node, id, ...] with at most {k} ids")
        if not 0 <= row[0] < n or not all(1 <= v <= buckets for v in row[1:]):
            raise ValueError(f"graph: 'subtok' row {row!r} has a node outside [0, {n}) or an id outside "
                             f"[1, {buckets}]")
        subtok[row[0], :len(row) - 1] = row[1:]
    return GraphArrays(kind=kind.astype(np.int16), feat=feat.astype(np.float16), subtok=subtok,
                       edges=np.ascontiguousarray(ei.T, dtype=np.int32), edge_type=et.astype(np.int8))


def channel_sources(files: list[Path], root: Path) -> list[dict]:
    """The ``sources`` entry describing a channel's data files (relative name and size)."""
    return [{"name": f.relative_to(root).as_posix() if f != root else f.name, "bytes": f.stat().st_size}
            for f in files]


def _local_opener(path: str):
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return open(p, "wb")


class StoreWriter:
    """Append graphs to a new store; ``close`` writes the index. Holds at most one shard in memory.

    Args:
        root: the store directory (local path, or any path ``opener`` understands).
        featurizer_version: the version of the graphs written (every reader checks it).
        opener: ``opener(path) -> binary file`` (a context manager); local files by default.
        shard_graphs: graphs per shard.
    """

    def __init__(self, root: str | os.PathLike, featurizer_version: str, *, subtokens: dict, feat_dim: int,
                 opener: Callable[[str], object] | None = None, shard_graphs: int = SHARD_GRAPHS):
        self.root = str(root).rstrip("/")
        self.version = featurizer_version
        self.subtokens = dict(subtokens)
        self.feat_dim = feat_dim
        self.opener = opener or _local_opener
        self.shard_graphs = shard_graphs
        self.count = 0
        self.shards: list[dict] = []
        self._buf: list[GraphArrays] = []
        self._meta = self.opener(f"{self.root}/{META}")
        self._closed = False

    def add(self, arrays: GraphArrays, meta: dict) -> int:
        """Append one graph with its metadata; returns its position in the store."""
        self._buf.append(arrays)
        self._meta.write((json.dumps(meta, ensure_ascii=False, separators=(",", ":")) + "\n")
                         .encode("utf-8", "surrogatepass"))
        self.count += 1
        if len(self._buf) >= self.shard_graphs:
            self._flush()
        return self.count - 1

    def _flush(self) -> None:
        if not self._buf:
            return
        buf, self._buf = self._buf, []
        name = f"shard-{len(self.shards):05d}"
        nodes = np.cumsum([0] + [a.num_nodes for a in buf], dtype=np.int64)
        edges = np.cumsum([0] + [int(a.edges.shape[0]) for a in buf], dtype=np.int64)
        arrays = {
            "node_ptr": nodes, "edge_ptr": edges,
            "kind": np.concatenate([a.kind for a in buf]),
            "feat": np.concatenate([a.feat for a in buf]),
            "subtok": np.concatenate([a.subtok for a in buf]),
            "edges": np.concatenate([a.edges for a in buf]),
            "edge_type": np.concatenate([a.edge_type for a in buf]),
        }
        blob = safetensors_bytes({key: np.asarray(arr, dtype=_DTYPES[key]) for key, arr in arrays.items()})
        with self.opener(f"{self.root}/{name}.safetensors") as fh:
            fh.write(blob)
        self.shards.append({"name": name, "graphs": len(buf), "nodes": int(nodes[-1]), "edges": int(edges[-1])})

    def close(self, *, lines: int | None = None, sources: list[dict] | None = None) -> dict:
        """Flush the last shard and write ``index.json``; returns the index."""
        if self._closed:
            raise RuntimeError("StoreWriter: already closed")
        self._flush()
        self._meta.close()
        index = {"format": STORE_FORMAT, "featurizer_version": self.version, "subtokens": self.subtokens,
                 "feat_dim": self.feat_dim, "count": self.count, "lines": self.count if lines is None else lines,
                 "sources": sources or [], "shards": self.shards}
        with self.opener(f"{self.root}/{INDEX}") as fh:
            fh.write((json.dumps(index, indent=1) + "\n").encode())
        self._closed = True
        return index

    def abort(self) -> None:
        """Close without an index (a reader then refuses the directory)."""
        if not self._closed:
            self._meta.close()
            self._closed = True


class _Shard:
    __slots__ = ("fd", "base", "offsets", "node_ptr", "edge_ptr", "widths")

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY)
        try:
            (n,) = struct.unpack("<Q", os.pread(self.fd, 8, 0))
            header = json.loads(os.pread(self.fd, n, 8))
            self.base = 8 + n
            self.offsets: dict[str, int] = {}
            self.widths: dict[str, tuple[int, ...]] = {}
            for key in _ARRAYS:
                entry = header.get(key)
                if entry is None or entry["dtype"] != _ST_DTYPE[np.dtype(_DTYPES[key])]:
                    raise StoreError(f"{path}: tensor {key!r} missing or of another dtype")
                self.offsets[key] = self.base + int(entry["data_offsets"][0])
                self.widths[key] = tuple(int(d) for d in entry["shape"][1:])
            # The two pointer arrays are small (graphs + 1 entries): kept in memory.
            self.node_ptr = self._read("node_ptr", 0, int(header["node_ptr"]["shape"][0]))
            self.edge_ptr = self._read("edge_ptr", 0, int(header["edge_ptr"]["shape"][0]))
        except (OSError, ValueError, KeyError, struct.error) as exc:
            os.close(self.fd)
            raise StoreError(f"{path}: unreadable shard ({exc})") from None

    def _read(self, key: str, start: int, stop: int) -> np.ndarray:
        dtype = np.dtype(_DTYPES[key]).newbyteorder("<")
        row = dtype.itemsize * (int(np.prod(self.widths[key])) if self.widths[key] else 1)
        nbytes = (stop - start) * row
        data = os.pread(self.fd, nbytes, self.offsets[key] + start * row)
        if len(data) != nbytes:
            raise StoreError(f"shard tensor {key}: short read ({len(data)} of {nbytes} bytes)")
        return np.frombuffer(data, dtype=dtype).reshape((stop - start,) + self.widths[key])

    def get(self, i: int) -> GraphArrays:
        n0, n1 = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        e0, e1 = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return GraphArrays(kind=self._read("kind", n0, n1), feat=self._read("feat", n0, n1),
                           subtok=self._read("subtok", n0, n1), edges=self._read("edges", e0, e1),
                           edge_type=self._read("edge_type", e0, e1))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class GraphStore:
    """Read-only view of a store directory; ``store[i]`` reads graph ``i`` from disk."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        path = self.root / INDEX
        try:
            self.index = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{path}: no store index (the store was not finished)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path}: unreadable store index ({exc})") from None
        if self.index.get("format") != STORE_FORMAT:
            raise StoreError(f"{path}: store format {self.index.get('format')!r}, expected {STORE_FORMAT!r}")
        self.version = self.index.get("featurizer_version")
        self._starts = np.cumsum([0] + [s["graphs"] for s in self.index["shards"]], dtype=np.int64)
        if int(self._starts[-1]) != self.index["count"]:
            raise StoreError(f"{path}: shards hold {int(self._starts[-1])} graphs, the index says "
                             f"{self.index['count']}")
        self._shards: list[_Shard | None] = [None] * len(self.index["shards"])
        self._open: list[int] = []  # shards with open files, oldest first

    def __len__(self) -> int:
        return int(self.index["count"])

    def _shard(self, s: int) -> _Shard:
        shard = self._shards[s]
        if shard is None:
            if len(self._open) >= MAX_OPEN_SHARDS:  # bound the file descriptors held (one per shard)
                old = self._open.pop(0)
                self._shards[old].close()
                self._shards[old] = None
            try:
                shard = _Shard(self.root / f"{self.index['shards'][s]['name']}.safetensors")
            except OSError as exc:
                raise StoreError(f"{self.root}: shard {self.index['shards'][s]['name']} unreadable ({exc})") from None
            self._shards[s] = shard
            self._open.append(s)
        return shard

    def __getitem__(self, i: int) -> GraphArrays:
        if not 0 <= i < len(self):
            raise IndexError(f"graph {i} outside the store's {len(self)} graphs")
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._shard(s).get(i - int(self._starts[s]))

    def meta(self) -> Iterator[dict]:
        """The metadata rows, in store order (read lazily)."""
        with open(self.root / META, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def close(self) -> None:
        for s in self._shards:
            if s is not None:
                s.close()
        self._shards = [None] * len(self._shards)
        self._open = []

    def __getstate__(self):  # DataLoader workers get a fresh set of file descriptors
        return {"root": str(self.root)}

    def __setstate__(self, state):
        self.__init__(state["root"])


def remove_store(root: str | os.PathLike) -> None:
    shutil.rmtree(root, ignore_errors=True)
