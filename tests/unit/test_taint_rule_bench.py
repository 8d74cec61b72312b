"""`benchmarks/taint_rule_real_data.py --transforms`: the rule scored against each variant's own label."""

from __future__ import annotations

import sys
from pathlib import Path

import streamguard.core.graphs as featurizer

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import taint_rule_real_data as bench  # noqa: E402

HEAD = "class A { void f(HttpServletRequest request, Connection conn) throws Exception {\n"
VULN = HEAD + '  conn.createStatement().executeQuery("SELECT * FROM t WHERE id = " + request.getParameter("id"));\n}}'
SAFE = HEAD + '  conn.createStatement().executeQuery("SELECT * FROM t WHERE id = 7");\n}}'


def _rec(code: str, label: int, **extra) -> dict:
    return {"code": code, "label": label, "language": "java", "origin": "input", **extra}


def test_rows_count_misses_and_false_alarms_per_transformation_and_origin():
    records = [_rec(VULN, 1), _rec(SAFE, 0),
               # a variant whose label the rule does not see: a miss, then a false alarm
               _rec(SAFE, 1, origin="transformed", transformation="via_helper", augmented_from="x"),
               _rec(VULN, 0, origin="transformed", transformation="sanitize", augmented_from="x"),
               _rec(VULN, 0, origin="transformed", transformation="sanitize", augmented_from="y"),
               _rec(SAFE, 0, origin="auto_counterfactual")]
    table = bench.by_transformation(featurizer, records).splitlines()
    assert table[0].startswith("| transformation | language | records | vulnerable | rule misses")
    rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:2]: line for line in table[2:]}
    assert rows[("(input)", "java")].endswith("| 2 | 1 | 0 | 0 | 1.0000 |")
    assert rows[("via_helper", "java")].endswith("| 1 | 1 | 1 | 0 | 0.0000 |")
    assert rows[("sanitize", "java")].endswith("| 2 | 0 | 0 | 2 | 0.0000 |")
    assert rows[("(auto_counterfactual)", "java")].endswith("| 1 | 0 | 0 | 0 | 1.0000 |")
    assert len(table) == 2 + 4
