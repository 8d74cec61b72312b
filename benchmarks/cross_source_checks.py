"""Where the cross-source ceiling lies: checks on the SVEN predictions of finished `quality_real_data.py` runs.

    .venv/bin/python benchmarks/cross_source_checks.py --runs benchmarks/results/ctl13 benchmarks/results/ctl14 \\
        benchmarks/results/ctl15 --other benchmarks/results/t6k13

Each ``--runs`` folder is a ``--experiments cross_source`` run of one model (trained on the Juliet files,
scored on the SVEN Python functions); ``--other`` is one of the other model. Nothing is trained. Prints, as
TPR − FPR on SVEN:
- each run at its threshold (0.5) and at the best threshold picked on SVEN itself (an oracle: it says how much
  any threshold could give, it is not a method);
- the mean of the runs' scores (an ensemble of the seeds);
- each run's scores averaged with the other model's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def predictions(run: Path) -> dict[str, dict]:
    """id -> prediction row of the run's SVEN evaluation (``runs/juliet_to_sven_<model>/output``)."""
    found = sorted(run.glob("runs/juliet_to_sven_*/output/predictions.jsonl"))
    if len(found) != 1:
        raise SystemExit(f"{run}: expected one runs/juliet_to_sven_*/output/predictions.jsonl, found {len(found)}")
    rows = {}
    with found[0].open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            row = json.loads(line)
            if row.get("label") not in (0, 1) or not isinstance(row.get("score"), (int, float)):
                raise SystemExit(f"{found[0]}:{n}: a prediction needs a 0/1 label and a numeric score")
            rows[row["id"]] = row
    return rows


def youden(labels: dict[str, int], scores: dict[str, float], threshold: float = 0.5) -> float:
    """TPR − FPR of ``scores >= threshold``."""
    pos = [k for k, y in labels.items() if y == 1]
    neg = [k for k, y in labels.items() if y == 0]
    if not pos or not neg:
        raise SystemExit("TPR − FPR needs vulnerable and safe functions")
    return (sum(scores[k] >= threshold for k in pos) / len(pos)
            - sum(scores[k] >= threshold for k in neg) / len(neg))


def oracle(labels: dict[str, int], scores: dict[str, float]) -> tuple[float, float]:
    """The best TPR − FPR over all thresholds, and the threshold that gives it."""
    return max((youden(labels, scores, t), t) for t in sorted(set(scores.values())))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", type=Path, required=True, help="cross-source runs of one model (seeds)")
    p.add_argument("--other", type=Path, help="a cross-source run of the other model, to average with")
    args = p.parse_args(argv)
    runs = {run.name: predictions(run) for run in args.runs}
    ids = set.intersection(*(set(r) for r in runs.values()))
    if any(set(r) != ids for r in runs.values()):
        raise SystemExit("the runs scored different functions; compare runs of the same SVEN evaluation")
    labels = {k: next(iter(runs.values()))[k]["label"] for k in ids}
    print(f"SVEN functions: {len(ids)} ({sum(labels.values())} vulnerable)")
    print("| scores | TPR − FPR at 0.5 | best over thresholds (oracle) | at threshold |")
    print("|---|---|---|---|")
    for name, rows in runs.items():
        scores = {k: rows[k]["score"] for k in ids}
        best, at = oracle(labels, scores)
        print(f"| {name} | {youden(labels, scores):.3f} | {best:.3f} | {at:.3f} |")
    mean = {k: sum(r[k]["score"] for r in runs.values()) / len(runs) for k in ids}
    print(f"| mean of {', '.join(runs)} | {youden(labels, mean):.3f} | {oracle(labels, mean)[0]:.3f} | |")
    if args.other:
        other = predictions(args.other)
        if set(other) != ids:
            raise SystemExit(f"{args.other}: scored other functions than the runs")
        print(f"| {args.other.name} alone | {youden(labels, {k: other[k]['score'] for k in ids}):.3f} | | |")
        for name, rows in runs.items():
            both = {k: (rows[k]["score"] + other[k]["score"]) / 2 for k in ids}
            print(f"| mean of {name} and {args.other.name} | {youden(labels, both):.3f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
