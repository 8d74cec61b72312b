"""Counterfactual augmentation: explicit twins, automatic SQL rewrites (re-parsed), counts."""

from __future__ import annotations

import ast

import pytest

from streamguard.data.augment import augment_splits
from streamguard.data.counterfactuals import auto_counterfactual, java_sql, parses, python_sql

JAVA_VULN = """import java.sql.*;

public class Repo {
    public ResultSet find(Connection conn, String name) throws SQLException {
        Statement stmt = null;
        stmt = conn.createStatement();
        ResultSet rs = stmt.executeQuery("select * from users where name='" + name + "'");
        return rs;
    }
}
"""

JAVA_PREPARED_CONCAT = """public class Repo {
    public void add(Connection conn, String data) throws Exception {
        PreparedStatement ps = conn.prepareStatement("insert into users(name) values ('" + data + "')");
        ps.executeUpdate();
    }
}
"""

JAVA_SAFE = """public class Repo {
    public int count(Connection conn, HttpServletRequest request) throws Exception {
        String data = "";
        data = request.getParameter("name");
        PreparedStatement sqlStatement = conn.prepareStatement("select * from users where name=? and age > ?");
        sqlStatement.setString(1, data);
        sqlStatement.setInt(2, Integer.parseInt(request.getParameter("age")));
        ResultSet rs = sqlStatement.executeQuery();
        return rs.getRow();
    }
}
"""


@pytest.mark.parametrize("code,expected", [
    ('def f(cur, game):\n    cur.execute("SELECT x FROM moves WHERE gameID = %d;" % game)\n',
     'cur.execute("SELECT x FROM moves WHERE gameID = %s;", (game,))'),
    ("def f(c, content):\n    c.execute(\"insert into posts values('%s')\" % content)\n",
     'c.execute("insert into posts values(%s)", (content,))'),
    ("def f(cur, s):\n    return cur.execute(\"SELECT d FROM r WHERE id = '\" + str(s.id) + \"'\").fetchone()\n",
     'cur.execute("SELECT d FROM r WHERE id = %s", (s.id,))'),
    ('def f(db, id):\n    db.execute("DELETE FROM playlist where id={id};".format(id=id))\n',
     'db.execute("DELETE FROM playlist where id=%s;", (id,))'),
    ("import sqlite3\ndef f(db, a, b):\n    db.execute(\"insert into m values('{}', '{}')\".format(a, b))\n",
     'db.execute("insert into m values(?, ?)", (a, b))'),
    ("def f(db, uid):\n    q = f\"SELECT * FROM users WHERE id = '{uid}' AND n LIKE '10%'\"\n    db.execute(q)\n",
     "db.execute(q, (uid,))"),
])
def test_python_vulnerable_to_parameterized(code, expected):
    out = python_sql.make_parameterized(code)
    assert out is not None and expected in out
    ast.parse(out)


def test_python_variable_query_keeps_literal_percent():
    code = "def f(db, uid):\n    q = f\"SELECT * FROM u WHERE id = '{uid}' AND n LIKE '10%'\"\n    db.execute(q)\n"
    assert "q = \"SELECT * FROM u WHERE id = %s AND n LIKE '10%%'\"" in python_sql.make_parameterized(code)


@pytest.mark.parametrize("code", [
    'def f(c):\n    c.execute("SELECT 1")\n',                                       # constant query
    "def f(c, v):\n    c.execute(\"SELECT * FROM t WHERE n LIKE '%\" + v + \"%'\")\n",  # inside a literal
    'def f(c, v):\n    q = "SELECT * FROM t WHERE a = "\n    q += v\n    c.execute(q)\n',  # grown with +=
    "def f(:\n",                                                                    # not Python
])
def test_python_no_rewrite(code):
    assert python_sql.make_parameterized(code) is None


def test_python_parameterized_to_vulnerable_and_constants_skipped():
    code = 'def f(cur, uid):\n    cur.execute("SELECT * FROM t WHERE id = %s AND b = %s", (uid, other(uid)))\n'
    out = python_sql.make_concatenated(code)
    assert out is not None and ", (uid" not in out and "uid" in out
    ast.parse(out)
    const = 'def f(cur):\n    uid = "admin"\n    cur.execute("SELECT * FROM t WHERE id = %s", (uid,))\n'
    assert python_sql.make_concatenated(const) is None
    literal = 'def f(cur):\n    cur.execute("SELECT * FROM t WHERE id = %s", (5,))\n'
    assert python_sql.make_concatenated(literal) is None


def test_java_statement_to_prepared():
    out = java_sql.make_parameterized(JAVA_VULN)
    assert out is not None and java_sql.parses(out)
    assert 'PreparedStatement sgPrepared1 = conn.prepareStatement("select * from users where name=?");' in out
    assert "sgPrepared1.setString(1, name);" in out
    assert "ResultSet rs = sgPrepared1.executeQuery();" in out


def test_java_prepared_concat_to_bound():
    out = java_sql.make_parameterized(JAVA_PREPARED_CONCAT)
    assert out is not None and java_sql.parses(out)
    assert 'conn.prepareStatement("insert into users(name) values (?)");' in out
    assert "ps.setString(1, data);" in out


def test_java_prepared_to_concatenated():
    out = java_sql.make_concatenated(JAVA_SAFE)
    assert out is not None and java_sql.parses(out)
    assert "setString" not in out and "setInt" not in out
    assert "name='\" + data + \"' and age > \" + Integer.parseInt(request.getParameter(\"age\")) + \"\"" in out
    constant = JAVA_SAFE.replace('data = request.getParameter("name");', 'data = "foo";') \
        .replace('Integer.parseInt(request.getParameter("age"))', "3")
    assert java_sql.make_concatenated(constant) is None


def test_auto_counterfactual_only_for_sql_cwe_and_reparsed():
    made = auto_counterfactual(JAVA_VULN, "java", 1, "CWE-89")
    assert made is not None and made.label == 0 and made.valid
    assert auto_counterfactual(JAVA_VULN, "java", 1, "CWE-78") is None
    assert parses("def f():\n    return 1\n", "python") and not parses("def f(:\n", "python")
    assert parses(JAVA_VULN, "java") and not parses("class A { void f( }", "java")


def test_auto_counterfactual_rejected_when_unparsable(monkeypatch):
    import streamguard.data.counterfactuals as cf

    monkeypatch.setitem(cf._REWRITERS, "python", (lambda c: c + "\ndef broken(:\n", None, python_sql.parses))
    made = cf.auto_counterfactual("def f():\n    return 1\n", "python", 1)
    assert made is not None and not made.valid
    rec = {"id": "r", "code": "def f():\n    return 1\n", "label": 1, "language": "python", "cwe": None,
           "group": "r", "source": None, "origin": "input"}
    stats = augment_splits({"train": [rec], "validation": [], "test": []})
    assert stats.rejected_auto == 1 and stats.auto == 0


def _record(i, code, label, **extra):
    return {"id": f"r{i}", "code": code, "label": label, "language": "python", "cwe": "CWE-89",
            "group": f"g{i}", "source": "t", "origin": "input", **extra}


def test_augment_counts_and_skips():
    vuln = 'def f(cur, v):\n    cur.execute("SELECT * FROM a WHERE x = \'%s\'" % v)\n'
    safe_twin = python_sql.make_parameterized(vuln)
    other = 'def g(cur, v):\n    cur.execute("SELECT * FROM b WHERE y = \'%s\'" % v)\n'
    splits = {
        "train": [_record(1, vuln, 1), _record(2, "def h():\n    return 2\n", 1, counterfactual="def h():\n    return 3\n")],
        "validation": [_record(3, safe_twin, 0)],   # the auto twin of r1 already exists here
        "test": [_record(4, other, 1)],
    }
    stats = augment_splits(splits)
    # r1's safe twin already exists (r3): skipped; r3 gets a vulnerable twin, r4 a safe one
    assert stats.explicit == 1 and stats.auto == 2 and stats.skipped_duplicate == 1
    assert stats.skipped[0]["id"] == "r1-acf" and stats.skipped[0]["kept_id"] == "r3"
    assert splits["validation"][1]["label"] == 1 and splits["validation"][1]["parent_id"] == "r3"
    assert [r["origin"] for r in splits["train"]] == ["input", "input", "counterfactual"]
    twin = splits["train"][2]
    assert twin == {**twin, "id": "r2-cf", "label": 0, "group": "g2", "parent_id": "r2"}
    auto = splits["test"][1]
    assert auto["origin"] == "auto_counterfactual" and auto["label"] == 0 and auto["group"] == "g4"
    assert all("counterfactual" not in r for recs in splits.values() for r in recs)
    # off switch
    plain = {"train": [_record(1, vuln, 1)], "validation": [], "test": []}
    assert augment_splits(plain, auto=False).auto == 0 and len(plain["train"]) == 1


def test_prepare_reports_auto_counterfactuals(tmp_path):
    import json

    from streamguard.data.prepare import prepare

    rows = [_record(i, f'def f{i}(cur, v):\n    cur.execute("SELECT * FROM t{i} WHERE x = \'%s\'" % v)\n', 1)
            for i in range(10)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({k: r[k] for k in ("id", "code", "label", "language", "cwe")}) + "\n"
                            for r in rows))
    on = prepare([str(path)], str(tmp_path / "on"), with_graphs=False)
    off = prepare([str(path)], str(tmp_path / "off"), with_graphs=False, auto_counterfactuals=False)
    assert on.augmented["auto"] == 10 and off.augmented["auto"] == 0
    assert sum(c["auto_counterfactual"] for c in on.splits.values()) == 10
    assert sum(c["label_0"] for c in on.splits.values()) == 10
