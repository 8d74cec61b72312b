#!/usr/bin/env python
"""`streamguard scan` on the reference data's code: functions/s per model, and how findings match the labels.

Every record of the reference data (`--data`, default ../shared/data) is written as one source
file (Juliet: a Java class; SVEN: a Python function) into a temporary tree, which is scanned the
way a user scans a checkout (`scan_paths`: discovery, function extraction, scoring, findings).
Figures per model: functions/s (whole scan, wall clock), and on the files: precision / recall of
"has a finding" against the record's label, and for the GNN's findings on vulnerable records
how often the CWE rule chosen from the sink equals the record's CWE (Juliet's CWE-23/36 count as
CWE-22, CWE-80/81/83 as CWE-79). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_scan.py --model-dir GNN_DIR --model-dir TRANSFORMER_DIR [--limit 2000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAME_CWE = {"CWE-23": "CWE-22", "CWE-36": "CWE-22", "CWE-80": "CWE-79", "CWE-81": "CWE-79", "CWE-83": "CWE-79"}


def main() -> int:
    from streamguard.scanning.scan import scan_paths
    from streamguard.serving.models import load_model_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", action="append", required=True, help="unpacked model dir (repeat per model)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=2000, help="records (seeded sample; 0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scan.json"))
    args = ap.parse_args()

    rows = []
    for f in sorted(Path(args.data).glob("*.jsonl.gz")):
        rows += [dict(json.loads(line), _file=f.name) for line in gzip.open(f, "rt", encoding="utf-8")]
    seen, unique = set(), []
    for r in rows:  # the two Juliet files share the CWE-89 records
        if r["id"] not in seen:
            seen.add(r["id"])
            unique.append(r)
    random.Random(args.seed).shuffle(unique)
    if args.limit:
        unique = unique[:args.limit]
    handlers = [load_model_dir(d) for d in args.model_dir]
    results = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-scan-") as tmp:
        labels = {}
        for i, r in enumerate(unique):
            ext = ".java" if r["language"] == "java" else ".py"
            path = Path(tmp, "src", r["language"], f"r{i:05d}{ext}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(r["code"], encoding="utf-8")
            labels[path.relative_to(tmp).as_posix()] = (r["label"], r.get("cwe"))
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for handler_set in [[h] for h in handlers] + ([handlers] if len(handlers) > 1 else []):
                name = "+".join(h.model_type for h in handler_set)
                t0 = time.perf_counter()
                res = scan_paths(["src"], handler_set)
                wall = time.perf_counter() - t0
                flagged = {f.unit.path.as_posix() for f in res.findings}
                tp = sum(1 for p, (y, _) in labels.items() if y == 1 and p in flagged)
                fp = sum(1 for p, (y, _) in labels.items() if y == 0 and p in flagged)
                pos = sum(1 for y, _ in labels.values() if y == 1)
                cwe_hits = cwe_total = 0
                for f in res.findings:
                    y, cwe = labels[f.unit.path.as_posix()]
                    if y == 1 and f.model == "gnn" and f.flow and cwe:
                        cwe_total += 1
                        cwe_hits += f.rule_id == SAME_CWE.get(cwe, cwe)
                r = {"models": name, "versions": [h.version for h in handler_set], "files": res.files,
                     "functions": res.functions, "seconds": wall, "functions_per_s": res.functions / wall,
                     "errors": len(res.errors), "findings": len(res.findings),
                     "file_precision": tp / (tp + fp) if tp + fp else None,
                     "file_recall": tp / pos if pos else None,
                     "cwe_rule_agreement": cwe_hits / cwe_total if cwe_total else None, "cwe_checked": cwe_total}
                results.append(r)
                print(json.dumps(r), flush=True)
        finally:
            os.chdir(cwd)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpus": os.cpu_count(), "records": len(unique), "results": results},
                                         indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
