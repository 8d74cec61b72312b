"""A trained model (GNN or transformer) against the taint rule on the hand-written corpus (``benchmarks/taint_corpus``).

    .venv/bin/python benchmarks/gnn_corpus_bench.py --model <model dir> --out benchmarks/results/corpus \\
        [--family 'jdbcTemplate\\.'] [--per-case]

The corpus is evaluation data only: it is never used for training, augmentation or choosing rules.
Each case is scored by the training entry in ``--mode evaluate`` (a subprocess, as the evaluation
job runs it; graphs built from the raw code by the shipped featurizer and the catalog in effect,
``STREAMGUARD_CATALOG`` / ``STREAMGUARD_EXTRA_CATALOGS``) and by the rule (``taint_reaches_sink``
on the same graphs, same catalog). Printed per language and overall: n, TPR, FPR and TPR - FPR.
``--family REGEX`` also reports the cases whose code matches REGEX (e.g. the Spring JdbcTemplate
calls after removing that family from the catalog): how many of its vulnerable functions each
flags. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from taint_corpus_bench import load_corpus  # noqa: E402


def rates(rows: list[tuple[int, int]]) -> dict:
    """``rows``: (label, prediction) pairs -> n, TPR, FPR, TPR - FPR, accuracy."""
    pos = [p for y, p in rows if y == 1]
    neg = [p for y, p in rows if y == 0]
    tpr = sum(pos) / len(pos) if pos else None
    fpr = sum(neg) / len(neg) if neg else None
    acc = sum(int(y == p) for y, p in rows) / len(rows) if rows else None
    return {"n": len(rows), "pos": len(pos), "neg": len(neg), "tpr": tpr, "fpr": fpr,
            "tpr_minus_fpr": None if tpr is None or fpr is None else tpr - fpr, "accuracy": acc}


def _f(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a trained model dir (or model.tar.gz): GNN or transformer")
    p.add_argument("--out", required=True)
    p.add_argument("--family", default=None, help="regex over the code: report these cases on their own")
    p.add_argument("--extra-corpus", default=None,
                   help="another folder of hand-written cases in the same format (java.txt / python.txt)")
    p.add_argument("--per-case", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = load_corpus()
    for c in cases:
        c["set"] = "corpus"
    if args.extra_corpus:
        for c in load_corpus(Path(args.extra_corpus)):
            c["set"] = "extra"
            cases.append(c)
    corpus = out / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": c["id"], "code": c["code"], "label": c["label"],
                                          "language": c["language"]}) + "\n" for c in cases), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(REPO / "training_entry" / "train_enhanced_models.py"), "--mode",
                           "evaluate", "--model", args.model, "--test", str(corpus), "--output-data-dir",
                           str(out / "eval")], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-3000:])
        return done.returncode
    preds = {r["id"]: r for r in map(json.loads, (out / "eval" / "predictions.jsonl").read_text().splitlines())}

    from streamguard.core.graphs import FEATURIZER_VERSION, build_graph, taint_reaches_sink

    rows = []
    for c in cases:
        rule = int(taint_reaches_sink(build_graph(c["code"], c["language"])))
        pr = preds[c["id"]]
        rows.append({"id": c["id"], "set": c["set"], "language": c["language"], "idiom": c["idiom"], "label": c["label"],
                     "rule": rule, "gnn": pr["pred"], "score": pr["score"],
                     "family": bool(args.family and re.search(args.family, c["code"]))})
    base = [r for r in rows if r["set"] == "corpus"]
    groups = {"java": [r for r in base if r["language"] == "java"],
              "python": [r for r in base if r["language"] == "python"], "all": base}
    if args.extra_corpus:
        groups["extra cases"] = [r for r in rows if r["set"] == "extra"]
    summary = {"featurizer_version": FEATURIZER_VERSION, "model": args.model, "groups": {}}
    print(f"featurizer {FEATURIZER_VERSION}; model {args.model}")
    print("| cases | n (vuln/safe) | rule TPR | rule FPR | rule TPR−FPR | model TPR | model FPR | model TPR−FPR |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in groups.items():
        rule = rates([(r["label"], r["rule"]) for r in rs])
        gnn = rates([(r["label"], r["gnn"]) for r in rs])
        summary["groups"][name] = {"rule": rule, "gnn": gnn}
        print(f"| {name} | {rule['n']} ({rule['pos']}/{rule['neg']}) | {_f(rule['tpr'])} | {_f(rule['fpr'])} | "
              f"{_f(rule['tpr_minus_fpr'])} | {_f(gnn['tpr'])} | {_f(gnn['fpr'])} | {_f(gnn['tpr_minus_fpr'])} |")
    if args.family:
        fam = [r for r in rows if r["family"]]
        vul = [r for r in fam if r["label"] == 1]
        summary["family"] = {"regex": args.family, "cases": [r["id"] for r in fam],
                             "vulnerable": len(vul), "rule_flags": sum(r["rule"] for r in vul),
                             "gnn_flags": sum(r["gnn"] for r in vul),
                             "safe": len(fam) - len(vul),
                             "gnn_flags_safe": sum(r["gnn"] for r in fam if r["label"] == 0)}
        f = summary["family"]
        print(f"\nfamily /{args.family}/: {len(fam)} cases, {f['vulnerable']} vulnerable: rule flags "
              f"{f['rule_flags']}, the model flags {f['gnn_flags']}; of its {f['safe']} safe cases the model flags "
              f"{f['gnn_flags_safe']}")
    if args.per_case:
        for r in rows:
            print(f"{r['id']:<28} {r['idiom']:<22} label={r['label']} rule={r['rule']} gnn={r['gnn']} "
                  f"score={r['score']:.3f}{' family' if r['family'] else ''}")
    summary["rows"] = rows
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
