"""Taint analysis on code written the way services are written: robustness to deep nesting and padding,
the API catalog, and the precision items. Each item has a vulnerable and a safe twin in Java and Python."""

from __future__ import annotations

import pytest

from streamguard.core.graphs import NODE_FEATURES, build_graph, taint_reaches_sink

TRUNCATED = NODE_FEATURES.index("graph_truncated")

J_HEAD = ("class A { void f(HttpServletRequest request, Connection conn) throws Exception {\n"
          '  String p = request.getParameter("id");\n')
J_SINK = '  conn.createStatement().executeQuery("SELECT * FROM t WHERE id = " + p);\n}}'
J_SAFE = '  conn.createStatement().executeQuery("SELECT * FROM t WHERE id = 7");\n}}'
P_HEAD = "def view(request):\n    p = request.args.get('id')\n"
P_SINK = "    cursor.execute('SELECT * FROM t WHERE id = ' + p)\n"
P_SAFE = "    cursor.execute('SELECT * FROM t WHERE id = %s', (p,))\n"


def _verdict(code: str, language: str) -> tuple[bool, dict]:
    g = build_graph(code, language)
    return taint_reaches_sink(g), g


# ------------------------------------------------------------------------------ robustness
@pytest.mark.parametrize("terms", [600, 5000])
@pytest.mark.parametrize("language", ["java", "python"])
def test_padding_before_the_sink_does_not_hide_the_flow(terms, language):
    pad = " + ".join(['"x"'] * terms)
    if language == "java":
        vuln = J_HEAD + f"  String junk = {pad};\n" + J_SINK
        safe = J_HEAD + f"  String junk = {pad};\n" + J_SAFE
    else:
        vuln = P_HEAD + f"    junk = {pad}\n" + P_SINK
        safe = P_HEAD + f"    junk = {pad}\n" + P_SAFE
    hit, g = _verdict(vuln, language)
    assert g["parse_ok"] is True
    assert hit is True
    # Nothing was cut for depth: the deep build followed the whole expression.
    assert "depth" not in g["truncated"]
    assert _verdict(safe, language)[0] is False


@pytest.mark.parametrize("kind", ["ifs", "parens"])
def test_java_deep_nesting_keeps_the_statements_after_the_nest(kind):
    n = 3000
    if kind == "ifs":
        nest = "".join("  if (p != null) {\n" for _ in range(n)) + "  int x = 1;\n" + "  }\n" * n
    else:
        nest = "  int y = " + "(" * n + "1" + ")" * n + ";\n"
    hit, g = _verdict(J_HEAD + nest + J_SINK, "java")
    assert hit is True and g["parse_ok"] is True
    assert _verdict(J_HEAD + nest + J_SAFE, "java")[0] is False


@pytest.mark.parametrize("kind", ["ifs", "parens"])
def test_python_nesting_beyond_cpython_limits_is_cut_and_recorded(kind):
    # CPython itself refuses 100+ indentation levels and 200+ nested brackets: the too-deep part
    # becomes `pass`, the cut is recorded, and the statements after it are still analysed.
    n = 1000
    if kind == "ifs":
        nest = "".join("    " * (i + 1) + "if p:\n" for i in range(n)) + "    " * (n + 1) + "x = 1\n"
    else:
        nest = "    y = " + "(" * n + "1" + ")" * n + "\n"
    hit, g = _verdict(P_HEAD + nest + P_SINK, "python")
    assert hit is True
    assert g["truncated"] == ["depth"] and g["parse_ok"] is False
    assert all(row[TRUNCATED] == 1.0 for row in g["feat"])  # graph_truncated on every node
    assert _verdict(P_HEAD + nest + P_SAFE, "python")[0] is False


def test_a_statement_beyond_any_stack_is_cut_and_the_rest_kept(monkeypatch):
    # Force the deep build to be as shallow as the normal one: the padded statement is cut, the
    # truncation is on the record, and the sink after it is still found.
    from streamguard.core.graphs import builder

    monkeypatch.setattr(builder, "_DEEP_RECURSION_LIMIT", 0)
    pad = " + ".join(['"x"'] * 5000)
    hit, g = _verdict(J_HEAD + f"  String junk = {pad};\n" + J_SINK, "java")
    assert hit is True
    assert "depth" in g["truncated"]


def test_untruncated_graphs_say_so():
    g = build_graph(J_HEAD + J_SINK, "java")
    assert g["truncated"] == []
