"""Peak memory of GNN training at 1x and 10x the reference data: flat, not growing with the dataset.

    nice -n 10 .venv/bin/python benchmarks/bench_gnn_memory.py --data-dir ../shared/data \\
        --out benchmarks/results/gnn_memory [--prepared DIR] [--scales 1,10] [--epochs 1]

1. The reference data (`../shared/data`, three files) is prepared once (`streamguard prepare`, group
   split, seed 13: graphs built and written into each channel's graph store), or taken from
   `--prepared` (a folder with `train/`, `validation/`, `test/` from an earlier prepare).
2. For each scale k, a train channel of k times the prepared train split: every record repeated k
   times with new ids (`<id>~<j>`); the graphs of the copies are those of the prepared store, copied
   shard by shard (same code, same graph), so the channel looks as `prepare` would have written it.
   The JSON lines of the copies carry no graph (the store does; the trainer reads only the store).
3. The training entry runs on it (validation and test channels as prepared) in a subprocess, as a
   SageMaker job would; its own peak RSS (`os.wait4` rusage), wall and CPU time, and the per-epoch
   seconds it prints are reported.

Nothing is asserted; the figures are printed and written to `<out>/summary.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FILES = ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz", "sven_python_cwe89_train.jsonl.gz")


def prepare_reference(data_dir: Path, out: Path) -> Path:
    from streamguard.data.prepare import prepare

    target = out / "prepared"
    if (target / "report.json").is_file():
        print(f"reusing {target}", flush=True)
        return target
    t0 = time.monotonic()
    prepare([str(data_dir / f) for f in FILES], str(target), seed=13)
    print(f"prepared {target} in {time.monotonic() - t0:.0f} s", flush=True)
    return target


def scaled_channel(prepared: Path, k: int, out: Path) -> Path:
    """``out/train-x<k>``: the prepared train split repeated k times with new ids, with its graph store."""
    from streamguard.core import graph_store as gstore

    if k == 1:
        return prepared / "train"
    dest = out / f"train-x{k}"
    if (dest / gstore.STORE_DIRNAME / gstore.INDEX).is_file():
        print(f"reusing {dest}", flush=True)
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    src_store = gstore.GraphStore(prepared / "train" / gstore.STORE_DIRNAME)
    meta = list(src_store.meta())
    store_dir = dest / gstore.STORE_DIRNAME
    store_dir.mkdir(parents=True)
    lines = 0
    size = 0
    shards = []
    with open(dest / "data.jsonl", "w", encoding="utf-8") as data, open(store_dir / gstore.META, "w",
                                                                          encoding="utf-8") as meta_out:
        with open(prepared / "train" / "data.jsonl", encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh]  # the 1x records without graphs are small
        for r in records:
            r.pop("graph", None)
        for j in range(k):
            for rec, m in zip(records, meta):
                new_id = f"{rec['id']}~{j}"
                text = json.dumps(dict(rec, id=new_id, group=f"{rec.get('group', rec['id'])}~{j}")) + "\n"
                data.write(text)
                size += len(text.encode("utf-8"))
                meta_out.write(json.dumps(dict(m, i=lines, where=f"data.jsonl:{lines + 1}", id=new_id)) + "\n")
                lines += 1
            # The shards of copy j are the 1x shards (byte for byte: same code, same graphs).
            for s in src_store.index["shards"]:
                name = f"shard-{len(shards):05d}"
                shutil.copyfile(prepared / "train" / gstore.STORE_DIRNAME / f"{s['name']}.safetensors",
                                store_dir / f"{name}.safetensors")
                shards.append(dict(s, name=name))
    index = dict(src_store.index, count=lines, lines=lines, shards=shards,
                 sources=[{"name": "data.jsonl", "bytes": size}])
    (store_dir / gstore.INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {dest}: {lines} records, {len(shards)} shards", flush=True)
    return dest


def train(name: str, train_dir: Path, prepared: Path, out: Path, args: argparse.Namespace) -> dict:
    run = out / "runs" / name
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cmd = [sys.executable, str(REPO / "training_entry" / "train_enhanced_models.py"), "--model-type", "gnn",
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--learning-rate", "0.002",
           "--patience", "0", "--checkpoint-dir", "none", "--progress-interval-s", "20",
           "--train", str(train_dir), "--validation", str(prepared / "validation"),
           "--model-dir", str(run / "model")]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", STREAMGUARD_GRAPH_SCRATCH=str(run))
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    stopped = False
    with open(run / "log.txt", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        hwm_kb = 0
        while True:
            # VmHWM: the child's own high-water mark since exec. ru_maxrss alone is not: Linux carries
            # the forking parent's RSS (this script, holding the 10x channel it just wrote) over exec.
            try:
                for line in open(f"/proc/{proc.pid}/status", encoding="ascii"):
                    if line.startswith("VmHWM:"):
                        hwm_kb = max(hwm_kb, int(line.split()[1]))
            except OSError:
                pass
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if args.time_limit_s and time.monotonic() - t0 > args.time_limit_s and not stopped:
                proc.terminate()  # the peak RSS of what ran so far is still in the rusage
                stopped = True
            time.sleep(1.0)
    wall = time.monotonic() - t0
    text = (run / "log.txt").read_text(encoding="utf-8", errors="replace")
    epochs = [float(m) for m in re.findall(r"Seconds=([\d.]+);", text)]
    samples = re.search(r"train=(\d+)", text)
    batches = re.findall(r"batch=(\d+)/(\d+)", text)
    result = {"name": name, "exit": os.waitstatus_to_exitcode(status), "train_records": int(samples.group(1))
              if samples else None, "peak_rss_mb": round(hwm_kb / 1024, 1), "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(wall, 1),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "epoch_s": epochs,
              "stopped_after_s": args.time_limit_s if stopped else None,
              "last_progress": f"{batches[-1][0]}/{batches[-1][1]} batches" if batches else None}
    print(f"[{name}] {json.dumps(result)}", flush=True)
    if result["exit"] != 0:
        print(text[-3000:], flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="/work/shared/data")
    p.add_argument("--out", default="benchmarks/results/gnn_memory")
    p.add_argument("--prepared", default=None, help="an already prepared channel root (train/validation/test)")
    p.add_argument("--scales", default="1,10")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-limit-s", type=float, default=None,
                   help="stop a run after this many seconds (its peak RSS so far is reported): the data is "
                        "loaded before the first batch, so memory that grows with the data shows by then")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prepared = Path(args.prepared) if args.prepared else prepare_reference(Path(args.data_dir), out)
    from streamguard.data.prepare import ensure_channel_store

    for split in ("train", "validation", "test"):
        ensure_channel_store(str(prepared / split))
    results = []
    for k in (int(x) for x in args.scales.split(",")):
        results.append(train(f"x{k}", scaled_channel(prepared, k, out), prepared, out, args))
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("\n| scale | train records | peak RSS (MB) | seconds per epoch | wall (s) | CPU (s) | stopped |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        stop = f"after {r['stopped_after_s']:.0f} s at {r['last_progress']}" if r["stopped_after_s"] else "no"
        print(f"| {r['name']} | {r['train_records']} | {r['peak_rss_mb']:.0f} | "
              f"{', '.join(f'{s:.0f}' for s in r['epoch_s']) or '—'} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | "
              f"{stop} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
