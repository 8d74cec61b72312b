#!/usr/bin/env python
"""Throughput and latency of `streamguard serve`: requests/s, p50/p99, single functions and batches of 32.

The server runs as its own process (`streamguard serve --model-dir DIR --port 0`), as a user
runs it; the client sends requests one at a time (no concurrency) from this process. Request
bodies are real functions from the reference data (`--data`, JSONL.gz with `code` and `language`)
or, without it, the generated sample data. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_serving.py --model-dir .streamguard/.../gnn/model \\
        --model-dir .../transformer/model --data ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_codes(data: str | None, n: int, seed: int) -> list[dict]:
    if data:
        files = sorted(Path(data).glob("*.jsonl.gz")) if Path(data).is_dir() else [Path(data)]
        rows = [json.loads(line) for f in files for line in gzip.open(f, "rt", encoding="utf-8")]
    else:
        from streamguard.data.synthetic import generate_samples

        rows = generate_samples(max(n, 100), seed=seed)
    random.Random(seed).shuffle(rows)
    return [{"id": str(r.get("id", i)), "code": r["code"], "language": r["language"]} for i, r in enumerate(rows[:n])]


def start_server(spec: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "streamguard.cli", "serve", *spec, "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"server did not start: {' '.join(spec)}")
    return proc, json.loads(line)["listening"]


def post(base: str, instances: list[dict]) -> float:
    body = json.dumps({"instances": instances}).encode()
    req = urllib.request.Request(base + "/invocations", data=body, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as resp:
        out = json.loads(resp.read())
    dt = time.perf_counter() - t0
    errors = [p for p in out["predictions"] if p.get("error")]
    if errors:
        print(f"  note: {len(errors)} instances answered with an error, e.g. {errors[0]['error']}", file=sys.stderr)
    return dt


def measure(base: str, codes: list[dict], batch: int, requests: int) -> dict:
    post(base, codes[:batch])  # warm-up (first forward pass, lazy imports)
    latencies = []
    t0 = time.perf_counter()
    for i in range(requests):
        start = (i * batch) % max(1, len(codes) - batch)
        latencies.append(post(base, codes[start:start + batch]))
    wall = time.perf_counter() - t0
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {"batch": batch, "requests": requests, "requests_per_s": requests / wall,
            "functions_per_s": requests * batch / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * p(0.99)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", action="append", default=[], help="unpacked model dir (repeat per model)")
    ap.add_argument("--model", action="append", default=[], help="registry spec, e.g. taint_flow_gnn@champion")
    ap.add_argument("--data", default=None, help="JSONL.gz file or dir of real code (default: generated samples)")
    ap.add_argument("--single-requests", type=int, default=200)
    ap.add_argument("--batch-requests", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serving.json"))
    args = ap.parse_args()
    specs = [["--model-dir", d] for d in args.model_dir] + [["--model", m] for m in args.model]
    if not specs:
        ap.error("pass --model-dir or --model")
    codes = load_codes(args.data, 32 * 8, args.seed)
    results = []
    for spec in specs:
        proc, base = start_server(spec)
        try:
            with urllib.request.urlopen(base + "/ping") as resp:
                variant = json.loads(resp.read())["variants"][0]
            for batch, n in ((1, args.single_requests), (32, args.batch_requests)):
                r = {"model": variant["model_type"], "model_version": variant["model_version"],
                     **measure(base, codes, batch, n)}
                results.append(r)
                print(f"{r['model']:12s} batch {batch:2d}: {r['requests_per_s']:7.1f} req/s "
                      f"{r['functions_per_s']:7.1f} functions/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms",
                      flush=True)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpus": os.cpu_count(), "data": args.data, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
