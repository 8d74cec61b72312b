"""Graph building in `prepare`: one worker against a process pool, on the same records.

Times ``streamguard.data.prepare._add_graphs`` (what ``streamguard prepare`` runs) with
``--workers`` 1 and N on a seeded sample of the reference data, checks that both give identical
graphs, and prints wall times and the speed-up, and the CPU time of all processes (this one and
the workers): on a machine busy with other jobs wall times mostly measure the others, while the
pool's own overhead (worker start-up, pickling, receiving the graphs) shows in its extra CPU time.
Prints; asserts nothing.

    .venv/bin/python benchmarks/bench_prepare_graphs.py --data-dir /work/shared/data --records 2000 --workers 2 [--repeat 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FILES = ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz", "sven_python_cwe89_train.jsonl.gz")


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="alternate the runs this many times; best wall time counts")
    args = ap.parse_args(argv)
    from streamguard.data.prepare import _add_graphs

    recs = []
    for f in FILES:
        with gzip.open(Path(args.data_dir) / f, "rt", encoding="utf-8") as fh:
            recs += [json.loads(line) for line in fh if line.strip()]
    random.Random(args.seed).shuffle(recs)
    recs = [{"code": r["code"], "language": r["language"]} for r in recs[:args.records]]
    results = {}
    cpus: dict[int, list[float]] = {}
    for _ in range(max(1, args.repeat)):
        for workers in (1, args.workers):
            splits = {"train": [dict(r) for r in recs], "validation": [], "test": []}
            t0, c0 = time.monotonic(), _cpu()
            rep = _add_graphs(splits, [], {}, workers)
            wall, cpu = time.monotonic() - t0, _cpu() - c0
            if workers not in results or wall < results[workers][0]:
                results[workers] = (wall, rep, [r["graph"] for r in splits["train"]])
            cpus.setdefault(workers, []).append(cpu)
            print(f"workers={workers}: {len(recs)} graphs in {wall:.1f} s wall "
                  f"({len(recs) / wall:.0f} functions/s), {rep['cpu_seconds']} CPU-s building, "
                  f"{cpu:.2f} CPU-s in all processes", flush=True)
    same = results[1][2] == results[args.workers][2]
    print(f"speed-up with {args.workers} workers (best wall times): {results[1][0] / results[args.workers][0]:.2f}x "
          f"(identical graphs: {same})")
    one, pool = min(cpus[1]), min(cpus[args.workers])
    # What the pool costs beyond the builds themselves (worker start-up, pickling, the parent
    # receiving the graphs), independent of how busy the machine is.
    print(f"CPU of the pool over one process: {pool / one:.2f}x ({pool:.2f} vs {one:.2f} CPU-s); "
          f"on {args.workers} otherwise idle cores the speed-up is at most {args.workers * one / pool:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
