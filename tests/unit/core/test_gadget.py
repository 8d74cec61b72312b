"""Code gadgets (`streamguard.core.graphs.gadget`): the statements that reach a sink, dead code left out."""

from __future__ import annotations

import pytest

from streamguard.core.graphs import build_graph
from streamguard.core.graphs.gadget import MARKERS, code_gadget

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


JAVA_VULN = """\
public class Q {
    public void run(java.sql.Connection conn, HttpServletRequest request) throws Exception {
        String name = request.getParameter("name");
        String q = "SELECT * FROM t WHERE n = '" + name + "'";
        conn.createStatement().executeQuery(q);
    }
}
"""

JAVA_BOUND = """\
public class Q {
    public void run(java.sql.Connection conn, HttpServletRequest request) throws Exception {
        String name = request.getParameter("name");
        java.sql.PreparedStatement ps = conn.prepareStatement("SELECT * FROM t WHERE n = ?");
        ps.setString(1, name);
        ps.executeQuery();
    }
}
"""

PY_VULN = """\
from flask import request

def search(cursor):
    name = request.args.get("name")
    q = "SELECT * FROM t WHERE n = '%s'" % name
    cursor.execute(q)
"""

PY_BOUND = """\
from flask import request

def search(cursor):
    name = request.args.get("name")
    cursor.execute("SELECT * FROM t WHERE n = %s", (name,))
"""


def _marks(text: str) -> list[set[str]]:
    return [{w for w in line.split() if w in MARKERS} for line in text.split("\n")]


@pytest.mark.parametrize("vuln, bound, lang", [(JAVA_VULN, JAVA_BOUND, "java"), (PY_VULN, PY_BOUND, "python")])
def test_markers_say_where_taint_enters_and_whether_it_reaches_a_sink(vuln, bound, lang):
    marked = code_gadget(vuln, lang, markers=True)
    plain = code_gadget(vuln, lang)
    assert not any(_marks(plain.text)[i] for i in range(len(plain.lines)))   # off by default
    assert marked.lines == plain.lines                                       # same lines, only prefixed
    for m_line, p_line in zip(marked.text.split("\n"), plain.text.split("\n")):
        assert m_line.endswith(p_line)
    by_line = _marks(marked.text)
    source_line = next(i for i, line in enumerate(marked.text.split("\n")) if "name =" in line)
    assert {"@source", "@tainted"} <= by_line[source_line]
    assert {"@sql", "@concat", "@tainted"} <= set().union(*by_line)
    assert any({"@sink", "@reached"} <= m for m in by_line)
    # The bound twin: the query is still a sink, but nothing tainted reaches it.
    bound_marks = _marks(code_gadget(bound, lang, markers=True).text)
    assert any("@sink" in m for m in bound_marks)
    assert not any("@reached" in m for m in bound_marks)
    assert any("@sanitizer" in m for m in bound_marks) or lang == "java"


def test_markers_are_written_in_a_fixed_order_and_never_on_dead_lines():
    text = code_gadget(JAVA_DEAD, "java", markers=True).text
    for line in text.split("\n"):
        words = [w for w in line.split() if w.startswith("@")]
        assert words == [m for m in MARKERS if m in words]
        assert "stmt.execute(" not in line
    # A model input kind of its own, so a saved model reads what it was trained on.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "training_entry"))
    import text_inputs

    assert "marked-gadget" in text_inputs.TEXT_INPUTS
    assert "@constant if (false)" in text_inputs.transformer_text(JAVA_DEAD, "java", "marked-gadget")
    assert "@" not in text_inputs.transformer_text(JAVA_DEAD, "java", "gadget")


def test_token_dropout_drops_code_words_and_keeps_markers_and_separators():
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "training_entry"))
    import text_inputs

    text = text_inputs.transformer_text(PY_VULN, "python", "marked-gadget")
    assert text_inputs.drop_code_words(text, 0.0, random.Random(0)) == text
    dropped = text_inputs.drop_code_words(text, 0.5, random.Random(0))
    words, kept = text.split(" "), dropped.split(" ")
    marks = [w for w in words if w in MARKERS or w == ";"]
    assert [w for w in kept if w in MARKERS or w == ";"] == marks        # every marker and separator stays
    code_words = len(words) - len(marks)
    assert 0 < len(kept) - len(marks) < code_words                       # some code words go, not all
    assert dropped == text_inputs.drop_code_words(text, 0.5, random.Random(0))   # seeded
