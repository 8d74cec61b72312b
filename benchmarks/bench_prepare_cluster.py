"""Sharded preparation on the Celery deployment: wall time with 1 worker against 2 (records/s, speed-up).

For each ``--workers`` count, brings up `scripts/cluster.sh` with that many Celery workers of one
task slot each (one slot per machine's worth of work), triggers `streamguard_training` through the
REST API on a seeded sample of the reference data with ``prepare_shards`` graph shards, and times
the preparation from the task instances: ``plan_data`` start to ``prepare_data`` end, and the graph
phase (first ``build_graphs`` start to last end). The run is then marked failed (the models are not
the point) and the cluster taken down. Prints; asserts nothing. Both worker counts share this
machine's cores: on a machine busy with other work the speed-up says little about separate machines.

    .venv/bin/python benchmarks/bench_prepare_cluster.py --workers 1 2 --records 4000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz", "sven_python_cwe89_train.jsonl.gz")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def sample(data_dir: Path, n: int, seed: int, out: Path) -> int:
    recs = []
    for name in FILES:
        with gzip.open(data_dir / name, "rt", encoding="utf-8") as fh:
            recs += [line for line in fh if line.strip()]
    random.Random(seed).shuffle(recs)
    recs = recs[:n] if n else recs
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        fh.writelines(recs)
    return len(recs)


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_once(workers: int, data: Path, shards: int, keep: bool) -> dict:
    import httpx

    state = Path(tempfile.mkdtemp(prefix=f"sg-bench-cluster-{workers}w-", dir="/tmp"))
    state.chmod(0o755)
    pg, redis, api, health, trig = free_ports(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMGUARD_"))}
    env.update(STREAMGUARD_CLUSTER_DIR=str(state), STREAMGUARD_PYTHON=sys.executable,
               STREAMGUARD_CLUSTER_PG_PORT=str(pg), STREAMGUARD_CLUSTER_REDIS_PORT=str(redis),
               STREAMGUARD_CLUSTER_API_PORT=str(api), STREAMGUARD_CLUSTER_SCHEDULER_HEALTH_PORT=str(health),
               STREAMGUARD_CLUSTER_TRIGGERER_LOG_PORT=str(trig), STREAMGUARD_CLUSTER_WORKERS=str(workers),
               STREAMGUARD_CLUSTER_WORKER_CONCURRENCY="1", STREAMGUARD_CLUSTER_WAIT_SECONDS="400",
               STREAMGUARD_INPUT_ROOTS=str(data.parent), AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="600")
    cluster = ["bash", str(REPO / "scripts" / "cluster.sh")]
    try:
        subprocess.run(cluster + ["up"], env=env, check=True, capture_output=True, timeout=900)
        base = f"http://127.0.0.1:{api}"
        password = json.loads((state / "secrets" / "passwords.json").read_text())["admin"]
        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}).json()
        http = httpx.Client(base_url=f"{base}/api/v2", headers={"Authorization": f"Bearer {token['access_token']}"},
                            timeout=60)
        while http.get("/dags/streamguard_training").status_code != 200:
            time.sleep(1)
        http.patch("/dags/streamguard_training", json={"is_paused": False}).raise_for_status()
        conf = {"data_uri": data.as_uri(), "models": ["gnn"], "gnn_epochs": 1, "prepare_shards": shards}
        r = http.post("/dags/streamguard_training/dagRuns", json={"logical_date": None, "conf": conf})
        r.raise_for_status()
        run = r.json()["dag_run_id"]
        path = f"/dags/streamguard_training/dagRuns/{run}"
        while True:
            tis = http.get(f"{path}/taskInstances", params={"limit": 200}).json()["task_instances"]
            states = {(t["task_id"], t["map_index"]): t for t in tis}
            prep = states.get(("prepare_data", -1))
            if prep and prep["state"] in ("success", "failed", "upstream_failed"):
                break
            if http.get(path).json()["state"] == "failed":
                raise RuntimeError("the run failed before preparation finished")
            time.sleep(2)
        if prep["state"] != "success":
            raise RuntimeError(f"prepare_data ended {prep['state']}; logs under {state}")
        http.patch(path, json={"state": "failed"})  # stop here: training is not benchmarked
        graphs = [t for t in tis if t["task_id"] == "build_graphs"]
        report = http.get(f"{path}/taskInstances/prepare_data/xcomEntries/return_value",
                          params={"deserialize": True}).json()["value"]
        report = (json.loads(report) if isinstance(report, str) else report)["report"]
        plan = states[("plan_data", -1)]
        return {
            "workers": workers, "records": report["graphs"]["built"] + report["graphs"]["errors"],
            "prep_s": ts(prep["end_date"]) - ts(plan["start_date"]),
            "graph_s": max(ts(t["end_date"]) for t in graphs) - min(ts(t["start_date"]) for t in graphs),
            "graph_cpu_s": report["graphs"]["cpu_seconds"], "shards": len(graphs),
            "hosts": sorted({t["hostname"] for t in graphs}),
        }
    finally:
        subprocess.run(cluster + ["down"], env=env, capture_output=True, timeout=300)
        if not keep:
            shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--records", type=int, default=4000, help="seeded sample size (0: all records)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shards", type=int, default=0, help="graph shards (0: 2 per worker of the largest count)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep each cluster's state directory")
    args = ap.parse_args(argv)
    shards = args.shards or 2 * max(args.workers)
    with tempfile.TemporaryDirectory(prefix="sg-bench-data-") as tmp:
        os.chmod(tmp, 0o755)
        data = Path(tmp) / "sample.jsonl.gz"
        n = sample(Path(args.data_dir), args.records, args.seed, data)
        print(f"{n} records from {args.data_dir} (seed {args.seed}), {shards} graph shards; "
              f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
        results = [run_once(w, data, shards, args.keep) for w in args.workers]
    first = results[0]
    print(f"{'workers':>7} {'records':>7} {'prep s':>7} {'records/s':>9} {'graphs s':>8} {'graph CPU-s':>11} "
          f"{'speed-up':>8}  hosts")
    for r in results:
        print(f"{r['workers']:>7} {r['records']:>7} {r['prep_s']:>7.1f} {r['records'] / r['prep_s']:>9.1f} "
              f"{r['graph_s']:>8.1f} {r['graph_cpu_s']:>11.1f} {first['prep_s'] / r['prep_s']:>7.2f}x  "
              f"{','.join(r['hosts'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
