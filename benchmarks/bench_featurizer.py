"""Featurizer speed: functions per second and the cost relative to parsing alone, per language.

Parsing alone is what the featurizer cannot avoid: tree-sitter-java's ``parse`` for Java,
``ast.parse`` for Python. ``build_graph`` is timed on the same records, one core, in this process
(the first 20 records warm up caches and are not timed); times are CPU seconds of this process,
the best of ``--repeat`` rounds in which parsing and building alternate. Prints; asserts nothing.

    .venv/bin/python benchmarks/bench_featurizer.py --data-dir /work/shared/data [--limit 2000] [--repeat 3] [--baseline REV] [--profile]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = {"java": ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz"), "python": ("sven_python_cwe89_train.jsonl.gz",)}


def load(data_dir: Path, language: str, limit: int, seed: int) -> list[str]:
    codes = []
    for f in FILES[language]:
        with gzip.open(data_dir / f, "rt", encoding="utf-8") as fh:
            codes += [json.loads(line)["code"] for line in fh if line.strip()]
    random.Random(seed).shuffle(codes)
    return codes[:limit]


def _time(fn, items) -> float:
    # CPU time of this process: on a machine shared with other jobs, wall time mostly measures them.
    t0 = time.process_time()
    for x in items:
        fn(x)
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--limit", type=int, default=2000, help="records per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of parse-then-build; the best of each counts")
    ap.add_argument("--profile", action="store_true", help="print the top functions of a cProfile run")
    ap.add_argument("--baseline", help="also time the featurizer of this git revision (git archive), in the same rounds")
    args = ap.parse_args(argv)
    from streamguard.core.graphs import FEATURIZER_VERSION, build_graph
    from streamguard.core.graphs.java_syntax import parser

    builders = {"this checkout": build_graph}
    if args.baseline:
        import tempfile

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from taint_corpus_bench import _featurizer_at

        fz = _featurizer_at(args.baseline, tempfile.mkdtemp(prefix="sg-bench-"))
        builders = {f"{args.baseline} ({fz.FEATURIZER_VERSION})": fz.build_graph, **builders}

    print(f"featurizer {FEATURIZER_VERSION}; one core; {args.limit} records per language; best of {args.repeat} rounds")
    print("| featurizer | language | records | parse only (functions/CPU-s) | build_graph (functions/CPU-s) "
          "| CPU-ms / function | build / parse |")
    print("|---|---|---|---|---|---|---|")
    for lang in ("java", "python"):
        codes = load(Path(args.data_dir), lang, args.limit + 20, args.seed)
        warm, codes = codes[:20], codes[20:]
        for build in builders.values():
            for c in warm:
                build(c, lang)
        if lang == "java":
            p = parser()

            def parse(c):
                p.parse(c.encode("utf-8", "replace"))
        else:
            def parse(c):
                try:
                    ast.parse(c)
                except SyntaxError:
                    pass
        # Parsing and each featurizer alternate, and the best of --repeat rounds counts for each:
        # other jobs on the machine slow them alike within a round, so the ratios stay comparable.
        t_parse = float("inf")
        t_build = {name: float("inf") for name in builders}
        for _ in range(max(1, args.repeat)):
            t_parse = min(t_parse, _time(parse, codes))
            for name, build in builders.items():
                t_build[name] = min(t_build[name], _time(lambda c: build(c, lang), codes))
        n = len(codes)
        for name, t in t_build.items():
            print(f"| {name} | {lang} | {n} | {n / t_parse:.0f} | {n / t:.0f} | {1000 * t / n:.2f} | "
                  f"{t / t_parse:.1f}x |", flush=True)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            for c in codes[:300]:
                build_graph(c, lang)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
