"""Graph building in `prepare`: one worker against a process pool, on the same records.

Times ``streamguard.data.prepare._add_graphs`` (what ``streamguard prepare`` runs) with
``--workers`` 1 and N on a seeded sample of the reference data, checks that both give identical
graphs, and prints wall times and the speed-up. Prints; asserts nothing.

    .venv/bin/python benchmarks/bench_prepare_graphs.py --data-dir /work/shared/data --records 2000 --workers 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FILES = ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz", "sven_python_cwe89_train.jsonl.gz")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from streamguard.data.prepare import _add_graphs

    recs = []
    for f in FILES:
        with gzip.open(Path(args.data_dir) / f, "rt", encoding="utf-8") as fh:
            recs += [json.loads(line) for line in fh if line.strip()]
    random.Random(args.seed).shuffle(recs)
    recs = [{"code": r["code"], "language": r["language"]} for r in recs[:args.records]]
    results = {}
    for workers in (1, args.workers):
        splits = {"train": [dict(r) for r in recs], "validation": [], "test": []}
        t0 = time.monotonic()
        rep = _add_graphs(splits, workers)
        results[workers] = (time.monotonic() - t0, rep, [r["graph"] for r in splits["train"]])
        print(f"workers={workers}: {len(recs)} graphs in {results[workers][0]:.1f} s wall "
              f"({len(recs) / results[workers][0]:.0f} functions/s), {rep['cpu_seconds']} CPU-s", flush=True)
    same = results[1][2] == results[args.workers][2]
    print(f"speed-up with {args.workers} workers: {results[1][0] / results[args.workers][0]:.2f}x "
          f"(identical graphs: {same})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
