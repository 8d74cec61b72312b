"""SageMaker Processing entry: the graphs of the shard files this instance received.

    python3 graph_shards.py --input /opt/ml/processing/input/shards --output /opt/ml/processing/output/graphs

With ``S3DataDistributionType: ShardedByS3Key`` each instance gets some of the ``shard-NNNNN.jsonl``
objects; it writes ``graphs-NNNNN.jsonl`` (and ``timing-NNNNN.json``) for each to the output dir,
which SageMaker uploads to the job's output prefix. Runs from the unpacked source dir (the
featurizer is `streamguard.core`, shipped beside this file); never imports airflow.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from streamguard.core.graph_shards import build_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Program graphs of graph-shard files (SageMaker Processing).")
    ap.add_argument("--input", default="/opt/ml/processing/input/shards")
    ap.add_argument("--output", default="/opt/ml/processing/output/graphs")
    args = ap.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    results = build_dir(args.input, args.output)
    for r in results:
        print(f"{os.path.basename(r['graphs'])}: {r['records']} graph(s) in {r['seconds']} s "
              f"({r['cpu_seconds']} CPU-s)", flush=True)
    print(f"{len(results)} shard(s) on this instance", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
