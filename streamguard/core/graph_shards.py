"""Graph shards: the program graphs of a file of ``[code, language]`` rows, one JSON line per row.

The costly step of preparation, cut out so that it runs anywhere: a mapped Airflow task
(`streamguard.data.prepare.build_graph_shard`) or an instance of a SageMaker Processing job that
receives some of the shard files (`ShardedByS3Key`) and runs ``training_entry/graph_shards.py``.
Both call `build_shard`, so their output is the same bytes. Standard library and the featurizer
only: this module travels in the SageMaker source dir.
"""

from __future__ import annotations

import json
import os
import time

from streamguard.core.archive import atomic_path

# The row encoding of `streamguard.data.prepare` (compact, UTF-8, lone surrogates kept).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
SHARD_PREFIX, GRAPHS_PREFIX, SUFFIX = "shard-", "graphs-", ".jsonl"


class ShardError(ValueError):
    """A shard file that is not one (bad name, or a row that is not ``[code, language]``)."""


def graphs_name(shard: str) -> str:
    """``shard-00003.jsonl`` -> ``graphs-00003.jsonl``."""
    base = os.path.basename(shard)
    if not (base.startswith(SHARD_PREFIX) and base.endswith(SUFFIX)):
        raise ShardError(f"{shard!r} is not a shard file ({SHARD_PREFIX}NNNNN{SUFFIX})")
    return GRAPHS_PREFIX + base[len(SHARD_PREFIX):]


def graph_or_error(code: str, language: str) -> dict:
    """The graph, or ``{"error": "<type>: <message>"}``: one record never stops the others."""
    from streamguard.core.graphs import build_graph

    try:
        return build_graph(code, language)
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError: quarantined by preparation
        return {"error": f"{type(exc).__name__}: {exc}"}


def build_shard(shard: str, target: str) -> dict:
    """Write the graphs of ``shard`` to ``target``; returns ``{"graphs", "records", "cpu_seconds", "seconds"}``."""
    wall0, cpu0 = time.monotonic(), time.process_time()
    rows = []
    with open(shard, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                code, language = json.loads(raw.decode("utf-8", "surrogatepass"))
                if not isinstance(code, str) or not isinstance(language, str):
                    raise TypeError("code and language must be strings")
            except (ValueError, TypeError) as exc:
                raise ShardError(f"{shard}:{number}: not a shard row ([code, language]): {exc}") from exc
            rows.append((code, language))
    with atomic_path(target) as tmp, open(tmp, "wb") as out:  # a shard's graphs appear whole or not at all
        for code, language in rows:
            out.write((_ENCODER.encode(graph_or_error(code, language)) + "\n").encode("utf-8", "surrogatepass"))
    return {"graphs": target, "records": len(rows), "cpu_seconds": round(time.process_time() - cpu0, 3),
            "seconds": round(time.monotonic() - wall0, 3)}


def build_dir(shards_dir: str, out_dir: str) -> list[dict]:
    """Every shard file under ``shards_dir`` (what one instance received) -> ``out_dir``; a
    ``timing-NNNNN.json`` beside each graphs file carries its timing."""
    results = []
    names = sorted(n for _root, _dirs, files in os.walk(shards_dir) for n in files
                   if n.startswith(SHARD_PREFIX) and n.endswith(SUFFIX))
    paths = {n: os.path.join(root, n) for root, _dirs, files in os.walk(shards_dir) for n in files}
    for name in names:
        target = os.path.join(out_dir, graphs_name(name))
        result = build_shard(paths[name], target)
        with open(os.path.join(out_dir, "timing-" + name[len(SHARD_PREFIX):-len(SUFFIX)] + ".json"), "w") as fh:
            json.dump(dict(result, graphs=os.path.basename(target)), fh, sort_keys=True)
        results.append(result)
    return results
