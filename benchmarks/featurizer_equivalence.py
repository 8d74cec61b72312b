"""Same graphs before and after: `build_graph` of this checkout against a git revision, record by record.

Builds the graph of every input with the featurizer of ``--baseline`` (its ``streamguard/core/graphs``
exported with ``git archive``, as in ``taint_corpus_bench.py``) and with this checkout's, and
compares the records whole (nodes, kinds, features and flags, edges, taint columns, sink classes,
truncation), plus ``taint_reaches_sink`` on each. Inputs: a seeded sample of ``../shared/data``
(``--records``, Java and all of SVEN's Python), the whole ``benchmarks/taint_corpus``, the test
snippets of ``tests/support/graph_snippets.py``, this repository's own Python files, and a few
pathological inputs (5,000-term concatenations, deep nesting, a graph past ``max_nodes``).
Baseline results are cached per revision and input (a digest each) under ``--cache``.

    .venv/bin/python benchmarks/featurizer_equivalence.py --baseline 2c079fd --records 3000

Prints the number of inputs compared and every difference; exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FILES = ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz", "sven_python_cwe89_train.jsonl.gz")


def _pathological() -> list[tuple[str, str, str, int]]:
    java_pad = " + ".join(['"x"'] * 5000)
    py_pad = " + ".join(['"x"'] * 5000)
    nest_java = "if (a) {" * 300 + "x = 1;" + "}" * 300
    nest_py = "".join("    " * i + "if a:\n" for i in range(90)) + "    " * 90 + "x = 1\n"
    big = "\n".join(f"  String v{i} = request.getParameter(\"p{i}\") + v{i - 1 if i else 0};" for i in range(400))
    return [
        ("pad-java", "java", 'class A { void f(HttpServletRequest request, Statement s) throws Exception {\n'
         f'  String junk = {java_pad};\n  s.execute("SELECT " + request.getParameter("id"));\n}}}}', 2000),
        ("pad-python", "python", f'def f(request, cur):\n    junk = {py_pad}\n'
         '    cur.execute("SELECT " + request.args["id"])\n', 2000),
        ("nest-java", "java", "class A { void f(boolean a) { int x; " + nest_java + " } }", 2000),
        ("nest-python", "python", "def f(a):\n" + "\n".join("    " + l for l in nest_py.splitlines()) + "\n", 2000),
        ("big-java", "java", "class A { void f(HttpServletRequest request, Statement s) throws Exception {\n"
         + big + "\n  s.execute(v399);\n}}", 300),
        ("unparsable-python", "python", "def f(:\n  print 'x'\n  cur.execute(q % x\n", 2000),
        ("broken-java", "java", "class A { void f( { x = ; s.execute(request.getParameter(\"a\") }", 2000),
        ("empty", "python", "", 2000),
    ]


def inputs(data_dir: Path, records: int, seed: int) -> list[tuple[str, str, str, int]]:
    """(id, language, code, max_nodes) of every input, in a fixed order."""
    from taint_corpus_bench import load_corpus

    out: list[tuple[str, str, str, int]] = []
    java, python = [], []
    for f in FILES:
        with gzip.open(data_dir / f, "rt", encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if line.strip():
                    r = json.loads(line)
                    (python if r["language"] == "python" else java).append((f"{f}:{i}", r["language"], r["code"]))
    random.Random(seed).shuffle(java)
    n_java = max(0, records - len(python))
    out += [(i, lang, code, 2000) for i, lang, code in java[:n_java] + python]
    out += [(f"corpus:{c['id']}", c["language"], c["code"], 2000) for c in load_corpus()]
    from tests.support.graph_snippets import JAVA, PYTHON

    out += [(f"snippet:java:{k}", "java", code, 2000) for k, (code, _) in JAVA.items()]
    out += [(f"snippet:python:{k}", "python", code, 2000) for k, (code, _) in PYTHON.items()]
    for p in sorted((ROOT / "streamguard").rglob("*.py")):
        out.append((f"repo:{p.relative_to(ROOT)}", "python", p.read_text(encoding="utf-8"), 2000))
    out += _pathological()
    return out


def digest(fz, lang: str, code: str, max_nodes: int) -> tuple[str, bool]:
    g = fz.build_graph(code, lang, max_nodes=max_nodes)
    blob = json.dumps(g, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), bool(fz.taint_reaches_sink(g))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare against")
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--records", type=int, default=3000, help="shared-data records (all Python, the rest Java)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "sg-featurizer-equivalence"))
    args = ap.parse_args(argv)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.baseline], check=True, capture_output=True,
                         text=True).stdout.strip()
    items = inputs(Path(args.data_dir), args.records, args.seed)
    cache = Path(args.cache) / f"{rev}.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}

    def key(lang: str, code: str, m: int) -> str:
        return hashlib.sha256(f"{lang}\0{m}\0{code}".encode()).hexdigest()

    missing = [(lang, code, m) for _, lang, code, m in items if key(lang, code, m) not in known]
    if missing:
        from taint_corpus_bench import _featurizer_at

        base = _featurizer_at(rev, tempfile.mkdtemp(prefix="sg-equiv-"))
        for lang, code, m in missing:
            known[key(lang, code, m)] = digest(base, lang, code, m)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    before = {i: known[key(lang, code, m)] for i, lang, code, m in items}
    import streamguard.core.graphs as now

    diffs = 0
    langs = {"java": 0, "python": 0}
    for i, lang, code, m in items:
        langs[lang] += 1
        after = list(digest(now, lang, code, m))
        if after != list(before[i]):
            diffs += 1
            print(f"DIFFERENT {i}: graph {'same' if after[0] == before[i][0] else 'differs'}, "
                  f"taint_reaches_sink {before[i][1]} -> {after[1]}")
    print(f"{len(items)} inputs ({langs['java']} Java, {langs['python']} Python) against {rev[:12]}: "
          f"{diffs} different")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
