"""Code gadgets (`streamguard.core.graphs.gadget`): the statements that reach a sink, dead code left out."""

from __future__ import annotations

import pytest

from streamguard.core.graphs import build_graph
from streamguard.core.graphs.gadget import code_gadget

JAVA_DEAD = """\
import java.sql.*;

public class Q {
    public void run(Connection conn, HttpServletRequest request) throws Exception {
        String name = request.getParameter("name");
        String banner = "hello";
        System.out.println(banner);
        Statement stmt = conn.createStatement();
        if (false) {
            stmt.execute("SELECT * FROM t WHERE n = '" + name + "'");
        } else {
            PreparedStatement ps = conn.prepareStatement("SELECT * FROM t WHERE n = ?");
            ps.setString(1, name);
            ps.execute();
        }
    }
}
"""

PY_HELPER = """\
import sqlite3
from flask import request

def build(term):
    unused = 42
    return "SELECT * FROM users WHERE name = '%s'" % term

def search(cursor):
    # read the term
    term = request.args.get("q")
    print("searching")
    cursor.execute(build(term))
"""

PY_NO_SINK = """\
def add(a, b):
    total = a + b
    if False:
        total = 0
    return total
"""


def test_java_slice_leaves_out_dead_code_and_unrelated_statements():
    g = code_gadget(JAVA_DEAD, "java")
    assert g.kind == "slice" and g.sinks == 1
    assert 'conn.prepareStatement("SELECT * FROM t WHERE n = ?");' in g.text
    assert "if (false) {" in g.text                    # control dependence of the live else branch
    assert "stmt.execute(" not in g.text               # the dead branch
    assert "banner" not in g.text                      # no flow into the sink
    assert "import" not in g.text


def test_python_slice_follows_helpers_and_drops_comments():
    g = code_gadget(PY_HELPER, "python")
    assert g.kind == "slice"
    lines = g.text.split("\n")
    assert 'term = request.args.get("q")' in lines
    assert "cursor.execute(build(term))" in lines
    assert "return \"SELECT * FROM users WHERE name = '%s'\" % term" in lines   # the helper's return
    assert "def build(term):" in lines
    assert not any("unused" in line or "print" in line or line.startswith("#") for line in lines)
    # source order is kept
    assert lines.index("def build(term):") < lines.index("def search(cursor):")


def test_no_sink_falls_back_to_the_live_function():
    g = code_gadget(PY_NO_SINK, "python")
    assert g.kind == "live" and g.sinks == 0
    assert g.text.split("\n") == ["def add(a, b):", "total = a + b", "if False:", "return total"]


def test_unreadable_code_falls_back_to_text_and_never_raises():
    g = code_gadget("))) ((( \x00 def", "python")
    assert g.kind in ("text", "live")
    assert code_gadget("", "java").text == ""


def test_unsupported_language_is_a_clear_error():
    with pytest.raises(ValueError, match="unsupported language"):
        code_gadget("x = 1", "cobol")


def test_line_tracking_leaves_the_graph_record_unchanged():
    # The IR's line numbers are for gadgets only: the graph record has no such field.
    graph = build_graph(PY_HELPER, "python")
    assert "lines" not in graph and graph["num_nodes"] > 10


def test_transformer_text_by_input_kind():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "training_entry"))
    import text_inputs

    gadget = text_inputs.transformer_text(PY_HELPER, "python", "gadget")
    assert "cursor.execute(build(term)) ;" not in gadget and " ; cursor.execute(build(term))" in gadget
    assert "print" not in gadget
    # models saved before gadgets read the whole text (imports and comment lines dropped)
    whole = text_inputs.transformer_text(PY_HELPER, "python", "code")
    assert 'print("searching")' in whole and "import" not in whole
    with pytest.raises(ValueError, match="unknown transformer text input"):
        text_inputs.transformer_text(PY_HELPER, "python", "tokens")


PY_RAISE_GUARD = """\
import subprocess
KNOWN = ("a", "b")

def check(host):
    if host not in KNOWN:
        raise ValueError("unknown host " + host)
    note = "checked"
    subprocess.run("ping " + host, shell=True)
    return note
"""


def test_early_exits_before_a_sink_are_kept_with_their_branch():
    lines = code_gadget(PY_RAISE_GUARD, "python").text.split("\n")
    assert "if host not in KNOWN:" in lines
    assert 'raise ValueError("unknown host " + host)' in lines
    assert 'note = "checked"' not in lines and "return note" not in lines
