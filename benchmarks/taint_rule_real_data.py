"""The taint rule alone (no learning) on the reference data, before and after a featurizer change.

Same rule and split as the taint-rule rows of ``quality_real_data.py``: a function is called
vulnerable when some node of its graph lies ``on_taint_path``; the in-distribution figures are on
the test split of ``prepare`` over all three reference files (group split, seed 13), the
cross-source ones on the raw SVEN Python file. ``--baseline REV`` scores the featurizer of an older
commit too (exported with ``git archive``, as in ``taint_corpus_bench.py``). No models are trained.

``--transforms N`` also prepares the training split with N program-transformation variants per
record and scores the rule on them against each variant's label (which comes from the
transformation's meaning), per transformation and language: where the rule already gets every
training label right, a model trained on those labels has nothing to learn that the rule lacks.

    .venv/bin/python benchmarks/taint_rule_real_data.py --data-dir /work/shared/data --baseline 5c44ddb
    .venv/bin/python benchmarks/taint_rule_real_data.py --data-dir /work/shared/data --transforms 2
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from taint_corpus_bench import _featurizer_at, metrics  # noqa: E402

ALL_FILES = ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz", "sven_python_cwe89_train.jsonl.gz")
SVEN = "sven_python_cwe89_train.jsonl.gz"


def _read(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def verdicts(featurizer, records: list[dict]) -> tuple[dict[str, bool], float]:
    col = featurizer.NODE_FEATURES.index("on_taint_path")
    out = {}
    t0 = time.perf_counter()
    for i, r in enumerate(records):
        g = featurizer.build_graph(r["code"], r.get("language") or "python")
        out[str(i)] = any(row[col] > 0 for row in g["feat"])
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--baseline", help="git revision whose featurizer to score as 'before'")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--transforms", type=int, default=0,
                    help="also score the rule on N transformation variants per training record")
    args = ap.parse_args(argv)
    data = Path(args.data_dir)
    from streamguard.data.prepare import prepare

    with tempfile.TemporaryDirectory() as tmp:
        prepare([str(data / f) for f in ALL_FILES], str(Path(tmp) / "ch"), seed=args.seed, with_graphs=False,
                transforms=args.transforms)
        test = _read(Path(tmp) / "ch" / "test" / "data.jsonl")
        sven = _read(data / SVEN)
        feats = []
        if args.baseline:
            feats.append(("before", _featurizer_at(args.baseline, tmp)))
        feats.append(("after", importlib.import_module("streamguard.core.graphs")))
        slices = {"in-distribution test": test,
                  "  test, Java": [r for r in test if r["language"] == "java"],
                  "  test, Python": [r for r in test if r["language"] == "python"],
                  "cross-source: raw SVEN Python": sven}
        print("| featurizer | slice | n | accuracy | TPR | FPR | TPR-FPR | s |")
        print("|---|---|---|---|---|---|---|---|")
        for name, fz in feats:
            for sname, recs in slices.items():
                pred, secs = verdicts(fz, recs)
                cases = [{"id": str(i), "label": int(r["label"])} for i, r in enumerate(recs)]
                m = metrics(cases, pred)
                print(f"| {name} ({fz.FEATURIZER_VERSION}) | {sname} | {m['n']} | {m['acc']:.4f} | {m['tpr']:.4f} | "
                      f"{m['fpr']:.4f} | {m['j']:.4f} | {secs:.0f} |", flush=True)
        if args.transforms:
            train = _read(Path(tmp) / "ch" / "train" / "data.jsonl")
            for name, fz in feats:
                print(f"\n{name} ({fz.FEATURIZER_VERSION}): the rule against the training labels, by transformation")
                print(by_transformation(fz, train))
    return 0


def by_transformation(featurizer, records: list[dict]) -> str:
    """A table: per (transformation, language), records, vulnerable ones, and where the rule disagrees
    with the label. Records that are no variant are named by their origin: ``(input)``, ``(counterfactual)``,
    ``(auto_counterfactual)``."""
    pred, _ = verdicts(featurizer, records)
    rows: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        kind = r.get("transformation") or f"({r.get('origin') or 'input'})"
        row = rows.setdefault((kind, r.get("language") or "python"), [0, 0, 0, 0])
        label, hit = int(r["label"]), pred[str(i)]
        row[0] += 1
        row[1] += label
        row[2] += int(label == 1 and not hit)
        row[3] += int(label == 0 and hit)
    out = ["| transformation | language | records | vulnerable | rule misses | rule false alarms | rule accuracy |",
           "|---|---|---|---|---|---|---|"]
    for (kind, lang), (n, pos, fn, fp) in sorted(rows.items()):
        out.append(f"| {kind} | {lang} | {n} | {pos} | {fn} | {fp} | {(n - fn - fp) / n:.4f} |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
