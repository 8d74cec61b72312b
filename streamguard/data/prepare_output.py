"""Writing what `streamguard prepare` produces: the channels, their graph stores, the side files, the counts."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable

from streamguard.data import io
from streamguard.data.prepare_report import PrepareReport
from streamguard.data.split import SPLITS

# Field order of a prepared record (docs/architecture.md); extra provenance fields follow.
_RECORD_FIELDS = ("id", "code", "label", "language", "cwe", "group", "source", "origin")


def _output_record(rec: dict) -> dict:
    out = {k: rec.get(k) for k in _RECORD_FIELDS}
    for k in ("parent_id", "augmented_from", "transformation", "license", "graph"):
        if rec.get(k) is not None:
            out[k] = rec[k]
    return out


def _split_counts(splits: dict[str, list[dict]]) -> dict[str, dict[str, int]]:
    counts = {}
    for name in SPLITS:
        recs = splits[name]
        c = {"total": len(recs), "label_0": sum(r["label"] == 0 for r in recs),
             "label_1": sum(r["label"] == 1 for r in recs)}
        for origin in ("input", "counterfactual", "auto_counterfactual"):
            c[origin] = sum(r["origin"] == origin for r in recs)
        if any(r["origin"] == "transformed" for name in SPLITS for r in splits[name]):
            c["transformed"] = sum(r["origin"] == "transformed" for r in recs)
        c["groups"] = len({r["group"] for r in recs})
        counts[name] = c
    return counts


def _warnings(report: PrepareReport) -> list[str]:
    out = []
    for name, c in report.splits.items():
        if c["total"] == 0:
            out.append(f"split {name!r} is empty: too few groups for the requested ratios")
        elif min(c["label_0"], c["label_1"]) == 0:
            out.append(f"split {name!r} has only one label ({c['label_0']} safe, {c['label_1']} vulnerable)")
    if report.graphs and report.graphs["parse_failures"]:
        out.append(f"{report.graphs['parse_failures']} record(s) did not parse cleanly; "
                   "their graphs come from an error-tolerant parse")
    for split, st in ((report.graphs or {}).get("stores") or {}).items():
        if "error" in st:
            out.append(f"no graph store for {split}: {st['error']} (training converts the channel itself)")
    cut = (report.graphs or {}).get("truncated") or {}
    if cut.get("depth"):
        out.append(f"{cut['depth']} graph(s) were cut at a statement nested too deeply to follow "
                   "(the statements after it are kept; see graph['truncated'])")
    return out


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_dumps = _ENCODER.encode  # one encoder for every row (json.dumps with options builds one per call)


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/")] + list(parts))


def _write_lines(path: str, rows: Iterable[object], digest=None) -> int:
    """Write rows as JSON lines; returns the number of bytes written."""
    size = 0
    with io.open_for_write(path) as fh:
        for row in rows:
            data = row if isinstance(row, bytes) else (_dumps(row) + "\n").encode("utf-8", "surrogatepass")
            fh.write(data)
            size += len(data)
            if digest is not None:
                digest.update(data)
    return size


def _write_splits(out: str, splits: dict[str, list[dict]]) -> tuple[str, dict[str, int]]:
    """Write the channels; returns sha256 over (split name, file bytes) of all three, and each file's size."""
    digest = hashlib.sha256()
    sizes = {}
    for name in SPLITS:
        digest.update(f"{name}\n".encode())
        sizes[name] = _write_lines(_join(out, name, "data.jsonl"), (_output_record(r) for r in splits[name]), digest)
    return digest.hexdigest(), sizes


def _write_graph_stores(out: str, splits: dict[str, list[dict]], sizes: dict[str, int]) -> dict:
    """Each channel's graphs, converted once into an on-disk store beside its data.jsonl
    (``<split>/graph_store/``, see ``streamguard.core.graph_store``): training reads graphs from it
    one at a time instead of decoding the JSON lines into memory."""
    from streamguard.core import graph_store as gstore
    from streamguard.core import graphs as g

    stats = {}
    for name in SPLITS:
        root = _join(out, name, gstore.STORE_DIRNAME)
        writer = gstore.StoreWriter(root, g.FEATURIZER_VERSION, subtokens=g.SUBTOKENS, feat_dim=g.NODE_FEAT_DIM,
                                    opener=io.open_for_write)
        try:
            for line, rec in enumerate(splits[name]):
                try:
                    arrays = gstore.graph_arrays(rec["graph"], g)
                except (ValueError, TypeError, AttributeError) as exc:
                    raise ValueError(f"{name}/data.jsonl:{line + 1} (record {rec['id']!r}): {exc}") from None
                writer.add(arrays, {"i": line, "where": f"data.jsonl:{line + 1}", "id": rec["id"],
                                    "label": rec.get("label"), "language": rec.get("language"),
                                    "cwe": rec.get("cwe"), "nodes": arrays.num_nodes,
                                    "code_length": len(rec["code"])})
        except ValueError as exc:
            # No index is written, so no reader uses the partial store: training converts the
            # channel itself and reports the same graph with its line.
            writer.abort()
            if io._local_path(root) is not None:  # noqa: SLF001
                gstore.remove_store(io._local_path(root))  # noqa: SLF001
            stats[name] = {"error": str(exc)}
            continue
        index = writer.close(lines=len(splits[name]), sources=[{"name": "data.jsonl", "bytes": sizes[name]}])
        stats[name] = {"graphs": index["count"], "shards": len(index["shards"])}
    return stats


def _write_side_files(out: str, quarantine: Iterable[dict], duplicates: list[dict],
                      report: PrepareReport, started: float) -> None:
    _write_lines(_join(out, "quarantine.jsonl"), quarantine)
    _write_lines(_join(out, "duplicates.jsonl"), duplicates)
    report.elapsed_s = round(time.monotonic() - started, 3)
    with io.open_for_write(_join(out, "report.json")) as fh:
        fh.write((json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str) + "\n").encode())


def _reason_summary(reasons: dict[str, int]) -> str:
    return ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"

