"""Write the shipped catalog without one family of sinks (for the catalog-ablation experiment).

    .venv/bin/python benchmarks/catalog_ablation.py --family jdbc_template --out benchmarks/results/ablation/catalog.json

Then prepare, train and score with ``STREAMGUARD_CATALOG=<that file>`` in the environment, so that
preparation, training and scoring all classify calls with the trimmed catalog (its digest is part of
``FEATURIZER_VERSION``, so graphs of the two catalogs never mix):

    STREAMGUARD_CATALOG=$PWD/benchmarks/results/ablation/catalog.json nice -n 10 .venv/bin/python \\
        benchmarks/quality_real_data.py --data-dir ../shared/data --out benchmarks/results/ablation \\
        --models gnn --experiments in_dist ...
    STREAMGUARD_CATALOG=... .venv/bin/python benchmarks/gnn_corpus_bench.py --model <its model dir> \\
        --extra-corpus benchmarks/ablation_corpus --family 'jdbcTemplate|JdbcTemplate' ...

Families: ``jdbc_template`` (Spring ``JdbcTemplate``/``NamedParameterJdbcTemplate``: the query/update/
batchUpdate entry and the ``queryFor*`` methods of the JDBC entry).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "streamguard" / "core" / "graphs" / "catalog.json"


def without_jdbc_template(cat: dict) -> dict:
    sinks = []
    for entry in cat["java"]["sinks"]:
        if "JdbcTemplate" in entry.get("note", "") and set(entry.get("methods", [])) <= {"query", "update",
                                                                                          "batchUpdate"}:
            continue  # the JdbcTemplate-only entry
        methods = entry.get("methods")
        if methods:
            kept = [m for m in methods if not m.startswith("queryFor")]
            if not kept:
                continue
            entry = dict(entry, methods=kept)
        sinks.append(entry)
    out = json.loads(json.dumps(cat))
    out["java"]["sinks"] = sinks
    out["name"] = cat["name"] + "-without-jdbc-template"
    return out


FAMILIES = {"jdbc_template": without_jdbc_template}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", choices=sorted(FAMILIES), default="jdbc_template")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    cat = json.loads(CATALOG.read_text(encoding="utf-8"))
    trimmed = FAMILIES[args.family](cat)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(trimmed, indent=1) + "\n", encoding="utf-8")
    removed = len(cat["java"]["sinks"]) - len(trimmed["java"]["sinks"])
    print(f"wrote {out}: {removed} java sink entr{'y' if removed == 1 else 'ies'} removed, queryFor* dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
