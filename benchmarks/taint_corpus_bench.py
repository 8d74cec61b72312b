"""Accuracy of the taint rule (no learning) on the hand-written corpus in ``benchmarks/taint_corpus``.

The rule calls a function vulnerable when ``taint_reaches_sink`` holds on its graph. The corpus
is realistic servlet / Spring / JAX-RS / Flask / Django / FastAPI code written for evaluation only,
in vulnerable/safe twins; it is never used to choose rules. ``--baseline REV`` also scores the
featurizer of an older commit (its ``streamguard/core/graphs`` is exported with ``git archive``
into a temporary directory and imported under another name), to print before and after.

    .venv/bin/python benchmarks/taint_corpus_bench.py --baseline 5c44ddb [--per-case]
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = Path(__file__).resolve().parent / "taint_corpus"
LANGUAGES = {"java": "java.txt", "python": "python.txt"}


def load_corpus(directory: Path = CORPUS_DIR) -> list[dict]:
    """Cases ``{"id", "language", "label", "idiom", "code"}`` in file order.

    A language whose file the directory lacks has no cases; a directory with neither file is an error.
    """
    cases: list[dict] = []
    present = [(lang, fname) for lang, fname in LANGUAGES.items() if (directory / fname).is_file()]
    if not present:
        raise FileNotFoundError(f"{directory}: no corpus file ({', '.join(LANGUAGES.values())})")
    for lang, fname in present:
        cur = None
        for line in (directory / fname).read_text(encoding="utf-8").splitlines():
            if line.startswith("=== "):
                cid, label, idiom = (p.strip() for p in line[4:].split("|"))
                cur = {"id": cid, "language": lang, "label": int(label), "idiom": idiom, "lines": []}
                cases.append(cur)
            elif cur is not None:
                cur["lines"].append(line)
            elif line and not line.startswith("#"):
                raise ValueError(f"{fname}: text before the first case header: {line!r}")
    for c in cases:
        c["code"] = "\n".join(c.pop("lines")).strip("\n") + "\n"
    return cases


def _featurizer_at(rev: str, tmp: str):
    """Import ``streamguard/core/graphs`` as it was at git revision ``rev``.

    The package (with ``streamguard/core``, whose ``records`` module it imports relatively) is
    exported under another top-level name, so it does not shadow this checkout's ``streamguard``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "streamguard/__init__.py", "streamguard/core"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tmp, filter="data")
    (Path(tmp) / "streamguard").rename(Path(tmp) / "baseline_streamguard")
    sys.path.insert(0, tmp)
    return importlib.import_module("baseline_streamguard.core.graphs")


def score(featurizer, cases: list[dict]) -> tuple[dict, dict[str, bool]]:
    preds = {}
    for c in cases:
        g = featurizer.build_graph(c["code"], c["language"])
        preds[c["id"]] = bool(featurizer.taint_reaches_sink(g))
    return preds, {}


def metrics(cases: list[dict], preds: dict[str, bool]) -> dict:
    tp = sum(1 for c in cases if c["label"] == 1 and preds[c["id"]])
    fn = sum(1 for c in cases if c["label"] == 1 and not preds[c["id"]])
    fp = sum(1 for c in cases if c["label"] == 0 and preds[c["id"]])
    tn = sum(1 for c in cases if c["label"] == 0 and not preds[c["id"]])
    n = tp + fn + fp + tn
    tpr = tp / (tp + fn) if tp + fn else float("nan")
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    return {"n": n, "acc": (tp + tn) / n if n else float("nan"), "tpr": tpr, "fpr": fpr, "j": tpr - fpr}


def _row(name: str, m: dict) -> str:
    return f"| {name} | {m['n']} | {m['acc']:.3f} | {m['tpr']:.3f} | {m['fpr']:.3f} | {m['j']:.3f} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="git revision whose featurizer to score as 'before'")
    ap.add_argument("--per-case", action="store_true", help="print every case whose verdicts differ or are wrong")
    args = ap.parse_args(argv)
    cases = load_corpus()
    sys.path.insert(0, str(ROOT))
    current = importlib.import_module("streamguard.core.graphs")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            old = _featurizer_at(args.baseline, tmp)
            runs.append((f"before ({args.baseline}, {old.FEATURIZER_VERSION})", score(old, cases)[0]))
        runs.append((f"after ({current.FEATURIZER_VERSION})", score(current, cases)[0]))
    print(f"taint rule on the hand-written corpus: {sum(c['language'] == 'java' for c in cases)} Java, "
          f"{sum(c['language'] == 'python' for c in cases)} Python functions")
    print("| featurizer / slice | n | accuracy | TPR | FPR | TPR-FPR |")
    print("|---|---|---|---|---|---|")
    for name, preds in runs:
        print(_row(f"{name}: all", metrics(cases, preds)))
        for lang in LANGUAGES:
            print(_row(f"{name}: {lang}", metrics([c for c in cases if c["language"] == lang], preds)))
    by_idiom: dict[str, list[dict]] = defaultdict(list)
    for c in cases:
        by_idiom[c["idiom"]].append(c)
    print("\nper idiom (accuracy " + " -> ".join(name.split(" ")[0] for name, _ in runs) + ")")
    for idiom, cs in sorted(by_idiom.items()):
        accs = " -> ".join(f"{metrics(cs, p)['acc']:.2f}" for _, p in runs)
        print(f"  {idiom:16s} n={len(cs):3d}  {accs}")
    if args.per_case:
        print("\ncases (label, verdicts):")
        for c in cases:
            verdicts = [int(p[c["id"]]) for _, p in runs]
            if any(v != c["label"] for v in verdicts):
                print(f"  {c['id']:14s} label={c['label']} verdicts={verdicts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
