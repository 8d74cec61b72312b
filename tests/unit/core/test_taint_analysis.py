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


# ------------------------------------------------------------------------------ the catalog
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from streamguard.core.graphs import FEATURIZER_VERSION, catalog  # noqa: E402
from streamguard.core.graphs.taint import reached_sink_classes  # noqa: E402

CATALOG = json.loads(catalog.DEFAULT_PATH.read_text(encoding="utf-8"))


def _trimmed(tmp_path: Path, edit) -> catalog.Catalog:
    doc = json.loads(json.dumps(CATALOG))
    edit(doc)
    p = tmp_path / "trimmed.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    return catalog.load(default=p)


J_JDBC = J_HEAD + J_SINK
P_DBAPI = P_HEAD + P_SINK


def test_a_trimmed_catalog_changes_the_verdict(tmp_path):
    def no_sql_sinks(doc):
        for lang in ("java", "python"):
            doc[lang]["sinks"] = [e for e in doc[lang]["sinks"] if e["class"] != "sql"]

    assert _verdict(J_JDBC, "java")[0] and _verdict(P_DBAPI, "python")[0]
    trimmed = _trimmed(tmp_path, no_sql_sinks)
    with catalog.using(trimmed):
        hit_j, gj = _verdict(J_JDBC, "java")
        hit_p, _ = _verdict(P_DBAPI, "python")
    assert hit_j is False and hit_p is False
    # The record says which catalog built it.
    assert gj["v"] != FEATURIZER_VERSION and gj["v"].endswith(trimmed.digest[:12])
    assert _verdict(J_JDBC, "java")[0]  # back to the default outside the block


def test_a_trimmed_source_list_changes_the_verdict(tmp_path):
    def no_get_parameter(doc):
        doc["java"]["sources"][0]["methods"].remove("getParameter")
        doc["python"]["request_attributes"].remove("args")

    code_j = J_HEAD.replace("Connection conn", "int unused").replace("void f(", "void g(") + J_SINK
    with catalog.using(_trimmed(tmp_path, no_get_parameter)):
        # Java: the entry method's HttpServletRequest is no String-like source parameter.
        assert _verdict(code_j, "java")[0] is False
        assert _verdict("def view():\n    p = request.args.get('id')\n" + P_SINK, "python")[0] is False
    assert _verdict(code_j, "java")[0] is True


def test_an_extra_catalog_adds_a_project_wrapper(tmp_path):
    extra = {"format": 1, "name": "acme", "version": "1",
             "java": {"sinks": [{"methods": ["runReport"], "receivers": ["ReportDb"], "args": [0], "class": "sql"}]},
             "python": {"sinks": [{"functions": ["acme.db.run"], "args": [0], "class": "sql"}]}}
    p = tmp_path / "acme.json"
    p.write_text(json.dumps(extra), encoding="utf-8")
    jcode = J_HEAD + '  ReportDb.runReport("SELECT * FROM r WHERE id = " + p);\n}}'
    pcode = P_HEAD + "    acme.db.run('SELECT * FROM r WHERE id = ' + p)\n"
    jsafe = J_HEAD + '  ReportDb.runReport("SELECT * FROM r WHERE id = 1");\n}}'
    assert not _verdict(jcode, "java")[0] and not _verdict(pcode, "python")[0]
    with catalog.using(catalog.load([p])):
        assert _verdict(jcode, "java")[0] and _verdict(pcode, "python")[0]
        assert not _verdict(jsafe, "java")[0]


def test_the_extra_catalog_environment_variable_is_read_in_a_fresh_process(tmp_path):
    import os
    import subprocess
    import sys

    extra = {"format": 1, "name": "acme", "version": "1",
             "python": {"sinks": [{"functions": ["acme.db.run"], "args": [0], "class": "sql"}]}}
    p = tmp_path / "acme.json"
    p.write_text(json.dumps(extra), encoding="utf-8")
    script = ("from streamguard.core.graphs import FEATURIZER_VERSION, build_graph, taint_reaches_sink; "
              "g = build_graph(\"def f(request):\\n    acme.db.run('x' + request.args['a'])\\n\", 'python'); "
              "print(FEATURIZER_VERSION, g['v'], taint_reaches_sink(g))")
    env = dict(os.environ, STREAMGUARD_EXTRA_CATALOGS=str(p))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    assert out[0] == out[1] != FEATURIZER_VERSION and out[2] == "True"


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["java"]["sinks"][0].update({"class": "sqll"}), "sink 'class' must be one of"),
    (lambda d: d["python"]["sanitizers"][0].update({"classes": ["htm"]}), "sanitizer 'classes'"),
    (lambda d: d["java"]["sinks"][0].update({"args": "first"}), "'args' must be"),
    (lambda d: d["java"]["sources"][1].update({"receiver": "(unclosed"}), "not a valid regular expression"),
    (lambda d: d["java"]["sinks"].append({"class": "sql"}), "an entry needs"),
    (lambda d: d.update({"format": 2}), "format"),
])
def test_a_bad_catalog_says_where_and_why(tmp_path, edit, needle):
    with pytest.raises(catalog.CatalogError, match="catalog .*trimmed.json") as info:
        _trimmed(tmp_path, edit)
    assert needle in str(info.value)


def test_catalog_hash_is_part_of_the_featurizer_version_and_ships_in_the_source_dir():
    assert FEATURIZER_VERSION.endswith("+" + catalog.DEFAULT_DIGEST[:12])
    from streamguard.sourcedir import sourcedir_members

    names = [name for name, _ in sourcedir_members()]
    assert "streamguard/core/graphs/catalog.json" in names


# Sink-specific sanitizers: an encoder covers its own sink class only.
SAN_TWINS = [
    ("java", "html encoder before SQL", True,
     J_HEAD + '  String e = StringEscapeUtils.escapeHtml4(p);\n'
              '  conn.createStatement().executeQuery("SELECT * FROM t WHERE n = \'" + e + "\'");\n}}'),
    ("java", "SQL encoder with a codec before SQL", False,
     J_HEAD + '  String e = ESAPI.encoder().encodeForSQL(new MySQLCodec(MySQLCodec.Mode.STANDARD), p);\n'
              '  conn.createStatement().executeQuery("SELECT * FROM t WHERE n = \'" + e + "\'");\n}}'),
    ("java", "html encoder before a response writer", False,
     J_HEAD + '  response.getWriter().println("<b>" + Encode.forHtml(p) + "</b>");\n}}'),
    ("java", "LDAP encoder before a command", True,
     J_HEAD + '  Runtime.getRuntime().exec("finger " + ESAPI.encoder().encodeForLDAP(p));\n}}'),
    ("java", "URL encoding before a header", False,
     J_HEAD + '  response.setHeader("X-Q", URLEncoder.encode(p, "UTF-8"));\n}}'),
    ("java", "basename before SQL", True,
     J_HEAD + '  conn.createStatement().execute("DELETE FROM f WHERE n = \'" + FilenameUtils.getName(p) + "\'");\n}}'),
    ("python", "html.escape before SQL", True,
     P_HEAD + "    cursor.execute(\"SELECT * FROM t WHERE n = '\" + html.escape(p) + \"'\")\n"),
    ("python", "shlex.quote before a shell", False, P_HEAD + "    os.system('ls ' + shlex.quote(p))\n"),
    ("python", "html.escape before a shell", True, P_HEAD + "    os.system('ls ' + html.escape(p))\n"),
    ("python", "LDAP filter escaping before ldap3 search", False,
     P_HEAD + "    conn.search('dc=x', '(uid=' + escape_filter_chars(p) + ')')\n"),
    ("python", "shlex.quote before an LDAP search", True,
     P_HEAD + "    conn.search('dc=x', '(uid=' + shlex.quote(p) + ')')\n"),
]


@pytest.mark.parametrize("language,what,want,code", SAN_TWINS, ids=[t[1] for t in SAN_TWINS])
def test_sanitizers_cover_their_own_sink_classes(language, what, want, code):
    assert _verdict(code, language)[0] is want, what


def test_reached_sink_classes_name_the_class():
    g = build_graph(J_HEAD + '  response.sendRedirect("/next?u=" + p);\n  Runtime.getRuntime().exec(p);\n}}', "java")
    assert reached_sink_classes(g) == ["command", "redirect"]


# Framework coverage: one vulnerable/safe twin per family the catalog names.
FRAMEWORK_TWINS = [
    ("java", "spring jdbcTemplate.query",
     'class C { List<P> f(@RequestParam("c") String c) { return jdbcTemplate.query("SELECT * FROM p WHERE c = \'" + c + "\'", m); } }',
     'class C { List<P> f(@RequestParam("c") String c) { return jdbcTemplate.query("SELECT * FROM p WHERE c = ?", m, c); } }'),
    ("java", "JAX-RS @QueryParam into XPath",
     'class C { String f(@QueryParam("q") Map<String, String> q) throws Exception { return xpath.evaluate("/a[@n=\'" + q + "\']", doc); } }',
     'class C { String f(@QueryParam("q") Map<String, String> q) throws Exception { return xpath.evaluate("/a[@n=\'x\']", doc); } }'),
    ("java", "JPA createNativeQuery",
     J_HEAD + '  em.createNativeQuery("SELECT * FROM t WHERE id = " + p).getResultList();\n}}',
     J_HEAD + '  em.createNativeQuery("SELECT * FROM t WHERE id = ?1").setParameter(1, p).getResultList();\n}}'),
    ("java", "JNDI search",
     J_HEAD + '  ctx.search("ou=people", "(uid=" + p + ")", controls);\n}}',
     J_HEAD + '  ctx.search("ou=people", "(uid=" + ESAPI.encoder().encodeForLDAP(p) + ")", controls);\n}}'),
    ("java", "Path.resolve",
     J_HEAD + '  Files.readAllBytes(Paths.get("/srv").resolve(p));\n}}',
     J_HEAD + '  Files.readAllBytes(Paths.get("/srv").resolve(FilenameUtils.getName(p)));\n}}'),
    ("python", "Django extra",
     "def v(request):\n    c = request.GET['c']\n    return Order.objects.extra(where=['total > ' + c])\n",
     "def v(request):\n    c = request.GET['c']\n    return Order.objects.extra(where=['total > %s'], params=[c])\n"),
    ("python", "SQLAlchemy text",
     "def v(request):\n    n = request.args['n']\n    return s.execute(text('SELECT * FROM i WHERE n = ' + n))\n",
     "def v(request):\n    n = request.args['n']\n    return s.execute(text('SELECT * FROM i WHERE n = :n'), {'n': n})\n"),
    ("python", "sqlite3 executescript",
     "def v(request):\n    n = request.form['n']\n    conn.executescript('DELETE FROM t WHERE n = ' + n)\n",
     "def v(request):\n    n = request.form['n']\n    conn.execute('DELETE FROM t WHERE n = ?', (n,))\n"),
    ("python", "lxml xpath",
     "def v(request):\n    n = request.GET['n']\n    return tree.xpath('//u[@n=\"' + n + '\"]')\n",
     "def v(request):\n    n = request.GET['n']\n    return tree.xpath('//u[@n=$n]', n=n)\n"),
    ("python", "pathlib",
     "def v(request):\n    n = request.args['n']\n    return pathlib.Path(n).read_text()\n",
     "def v(request):\n    n = request.args['n']\n    return pathlib.Path(pathlib.Path(n).name).read_text()\n"),
]


@pytest.mark.parametrize("language,what,vuln,safe", FRAMEWORK_TWINS, ids=[t[1] for t in FRAMEWORK_TWINS])
def test_framework_apis_from_the_catalog(language, what, vuln, safe):
    assert _verdict(vuln, language)[0] is True, what
    assert _verdict(safe, language)[0] is False, what


# ------------------------------------------------------------------------------ constant propagation
def _j(body: str) -> str:
    return ("class A { void f(HttpServletRequest request, Connection conn) throws Exception {\n"
            '  String param = request.getParameter("id");\n  String bar;\n' + body +
            '  conn.createStatement().executeQuery("SELECT * FROM t WHERE n = " + bar);\n}}')


def _p(body: str) -> str:
    return ("def view(request):\n    param = request.args.get('id')\n" + body +
            "    cursor.execute('SELECT * FROM t WHERE n = ' + bar)\n")


CONST_TWINS = [
    # (what, language, safe variant, vulnerable variant)
    ("local in an if condition", "java",
     _j('  int num = 86;\n  if ((7 * 42) - num > 200) bar = "ok"; else bar = param;\n'),
     _j('  int num = 106;\n  if ((7 * 42) - num > 200) bar = "ok"; else bar = param;\n')),
    ("local in a ternary", "java",
     _j('  int num = 196;\n  bar = (7 * 18) + num > 200 ? "ok" : param;\n'),
     _j('  int num = 6;\n  bar = (7 * 18) + num > 200 ? "ok" : param;\n')),
    ("charAt selects the live case", "java",
     _j('  String g = "ABC";\n  switch (g.charAt(1)) {\n  case \'A\': bar = param; break;\n'
        '  case \'B\': bar = "ok"; break;\n  default: bar = param; break;\n  }\n'),
     _j('  String g = "ABC";\n  switch (g.charAt(2)) {\n  case \'A\': bar = param; break;\n'
        '  case \'B\': bar = "ok"; break;\n  default: bar = param; break;\n  }\n')),
    ("equals and split of constants", "java",
     _j('  String mode = "a-b".split("-")[1];\n  if (mode.equals("b")) bar = "ok"; else bar = param;\n'),
     _j('  String mode = "a-b".split("-")[0];\n  if (mode.equals("b")) bar = "ok"; else bar = param;\n')),
    ("a reassigned local is no constant", "java",
     _j('  int num = 86;\n  num = num + 0;\n  bar = "ok";\n  if (num > 1000) bar = param;\n'),
     _j('  int num = 86;\n  if (param.isEmpty()) num = 2000;\n  bar = "ok";\n  if (num > 1000) bar = param;\n')),
    ("local in an if condition", "python",
     _p("    num = 86\n    if (7 * 42) - num > 200:\n        bar = 'ok'\n    else:\n        bar = param\n"),
     _p("    num = 106\n    if (7 * 42) - num > 200:\n        bar = 'ok'\n    else:\n        bar = param\n")),
    ("local in a conditional expression", "python",
     _p("    strict = True\n    bar = 'ok' if strict else param\n"),
     _p("    strict = False\n    bar = 'ok' if strict else param\n")),
    ("match on a constant picks the live case", "python",
     _p("    kind = 'csv'\n    match kind:\n        case 'csv':\n            bar = 'ok'\n        case _:\n"
        "            bar = param\n"),
     _p("    kind = 'xml'\n    match kind:\n        case 'csv':\n            bar = 'ok'\n        case _:\n"
        "            bar = param\n")),
    ("string methods and len on constants", "python",
     _p("    k = 'a-b'.split('-')[1].upper()\n    bar = 'ok' if k == 'B' and len('abc') == 3 else param\n"),
     _p("    k = 'a-b'.split('-')[0].upper()\n    bar = 'ok' if k == 'B' and len('abc') == 3 else param\n")),
    ("a loop-updated local is no constant", "python",
     _p("    n = 1\n    bar = 'ok'\n    if n > 5:\n        bar = param\n"),
     _p("    n = 1\n    for _ in range(9):\n        n = n + 1\n    bar = 'ok'\n    if n > 5:\n        bar = param\n")),
]


@pytest.mark.parametrize("what,language,safe,vuln", CONST_TWINS, ids=[f"{t[1]}-{t[0]}" for t in CONST_TWINS])
def test_constant_locals_decide_control_flow(what, language, safe, vuln):
    hit_safe, g = _verdict(safe, language)
    assert g["parse_ok"] is True
    assert hit_safe is False, what
    assert _verdict(vuln, language)[0] is True, what


# ------------------------------------------------------------------------------ containers with mutation
def _jc(body: str, read: str) -> str:
    return ("class A { void f(HttpServletRequest request, Connection conn) throws Exception {\n"
            '  String param = request.getParameter("id");\n' + body + f"  String bar = {read};\n"
            '  conn.createStatement().executeQuery("SELECT * FROM t WHERE n = " + bar);\n}}')


def _pc(body: str, read: str) -> str:
    return ("def view(request):\n    param = request.args.get('id')\n" + body + f"    bar = {read}\n"
            "    cursor.execute('SELECT * FROM t WHERE n = ' + bar)\n")


_J_LIST = ('  List<String> l = new ArrayList<String>();\n  l.add("a");\n  l.add(param);\n  l.add("b");\n'
           '  l.remove(0);\n')
_J_MAP = '  Map<String, String> m = new HashMap<>();\n  m.put("a", "x");\n  m.put("b", param);\n'
_P_LIST = "    items = ['a', 'b']\n    items.insert(0, param)\n"
_P_DICT = "    d = {'cmd': 'uptime', 'user': param}\n"
CONTAINER_TWINS = [
    ("list remove shifts", "java", _jc(_J_LIST, "l.get(1)"), _jc(_J_LIST, "l.get(0)")),
    ("list add at an index shifts", "java", _jc(_J_LIST + '  l.add(0, "c");\n', "l.get(0)"),
     _jc(_J_LIST + '  l.add(0, "c");\n', "l.get(1)")),
    ("list set replaces", "java", _jc(_J_LIST + '  l.set(0, "c");\n', "l.get(0)"),
     _jc(_J_LIST + '  l.set(1, param);\n', "l.get(1)")),
    ("map remove drops the key", "java", _jc(_J_MAP + '  m.remove("b");\n', 'm.getOrDefault("b", "d")'),
     _jc(_J_MAP + '  m.remove("a");\n', 'm.getOrDefault("b", "d")')),
    ("map get of another key", "java", _jc(_J_MAP, 'm.get("a")'), _jc(_J_MAP, 'm.get("b")')),
    ("array with a literal index", "java",
     _jc('  String[] a = new String[3];\n  a[0] = "x";\n  a[1] = param;\n', "a[0]"),
     _jc('  String[] a = new String[3];\n  a[0] = "x";\n  a[1] = param;\n', "a[1]")),
    ("non-literal index falls back to the container", "java",
     _jc('  String[] a = new String[3];\n  a[0] = "x";\n  a[1] = param;\n  int i = param.length();\n', '"x"'),
     _jc('  String[] a = new String[3];\n  a[0] = "x";\n  a[1] = param;\n  int i = param.length();\n', "a[i]")),
    ("list insert and pop(0)", "python", _pc(_P_LIST + "    items.pop(0)\n", "items[0]"),
     _pc(_P_LIST + "    items.pop()\n", "items[0]")),
    ("pop returns the element", "python", _pc(_P_LIST, "items.pop()"), _pc(_P_LIST, "items.pop(0)")),
    ("negative index", "python", _pc(_P_LIST, "items[-1]"), _pc(_P_LIST, "items[-3]")),
    ("dict pop and get", "python", _pc(_P_DICT + "    d.pop('user')\n", "d.get('user', 'nobody')"),
     _pc(_P_DICT + "    d.pop('cmd')\n", "d.get('user', 'nobody')")),
    ("dict get default", "python", _pc(_P_DICT, "d.get('other', 'x')"), _pc(_P_DICT, "d.get('other', param)")),
]


@pytest.mark.parametrize("what,language,safe,vuln", CONTAINER_TWINS, ids=[f"{t[1]}-{t[0]}" for t in CONTAINER_TWINS])
def test_containers_track_literal_index_mutations(what, language, safe, vuln):
    assert _verdict(safe, language)[0] is False, what
    assert _verdict(vuln, language)[0] is True, what


# ------------------------------------------------------------------------------ helpers across classes
def _jh(call: str, helper_body: str, static: bool = False) -> str:
    mod = "static " if static else ""
    return ("public class Servlet extends HttpServlet {\n"
            "  void doPost(HttpServletRequest request, Connection conn) throws Exception {\n"
            '    String param = request.getParameter("id");\n'
            f"    String bar = {call};\n"
            '    conn.createStatement().executeQuery("SELECT * FROM t WHERE n = " + bar);\n  }\n'
            f"  private {mod}class Helper {{\n    {mod}String doSomething(HttpServletRequest request, String param) {{\n"
            f"      {helper_body}\n    }}\n  }}\n}}\n")


def _ph(call: str, helper_body: str, deco: str = "") -> str:
    first = "" if deco else "self, "
    return (f"class Helper:\n    {deco}\n    def do(" + first + "param):\n        " + helper_body + "\n\n\n"
            "def view(request):\n    param = request.args.get('id')\n" + f"    bar = {call}\n"
            "    cursor.execute('SELECT * FROM t WHERE n = ' + bar)\n")


HELPER_TWINS = [
    ("nested class instance", "java", _jh("new Helper().doSomething(request, param)", 'return "safe!";'),
     _jh("new Helper().doSomething(request, param)", "return param.trim();")),
    ("nested class static", "java", _jh("Helper.doSomething(request, param)", 'return "safe!";', static=True),
     _jh("Helper.doSomething(request, param)", "return param;", static=True)),
    ("local of a file class", "java",
     _jh("h.doSomething(request, param)", 'return "safe!";').replace(
         "    String bar =", "    Helper h = new Helper();\n    String bar ="),
     _jh("h.doSomething(request, param)", "return param;").replace(
         "    String bar =", "    Helper h = new Helper();\n    String bar =")),
    ("instance of a file class", "python", _ph("Helper().do(param)", "return 'safe'"),
     _ph("Helper().do(param)", "return param.strip()")),
    ("staticmethod", "python", _ph("Helper.do(param)", "return 'safe'", "@staticmethod"),
     _ph("Helper.do(param)", "return param or 'x'", "@staticmethod")),
    ("local bound to an instance", "python", _ph("h.do(param)", "return 'safe'").replace(
        "    bar = h", "    h = Helper()\n    bar = h"),
     _ph("h.do(param)", "return param").replace("    bar = h", "    h = Helper()\n    bar = h")),
]


@pytest.mark.parametrize("what,language,safe,vuln", HELPER_TWINS, ids=[f"{t[1]}-{t[0]}" for t in HELPER_TWINS])
def test_helpers_in_other_classes_of_the_file_are_linked(what, language, safe, vuln):
    hit, g = _verdict(safe, language)
    assert g["parse_ok"] is True
    assert hit is False, what
    assert _verdict(vuln, language)[0] is True, what


# ------------------------------------------------------------------------------ taint through strings and wrappers
def _js(body: str, sink_expr: str) -> str:
    return ("class A { void f(HttpServletRequest request, Connection conn) throws Exception {\n"
            '  String param = request.getParameter("id");\n' + body +
            f"  conn.createStatement().executeQuery({sink_expr});\n}}}}")


def _ps(body: str, sink_expr: str) -> str:
    return "def view(request):\n    param = request.args.get('id')\n" + body + f"    cursor.execute({sink_expr})\n"


STRING_TWINS = [
    ("StringBuilder append/insert/reverse", "java",
     _js('  StringBuilder sb = new StringBuilder("SELECT ");\n  sb.append("1").insert(0, "").reverse().reverse();\n',
         "sb.toString()"),
     _js('  StringBuilder sb = new StringBuilder("SELECT ");\n  sb.append(param).insert(0, "").reverse().reverse();\n',
         "sb.toString()")),
    ("StringBuilder replace", "java",
     _js('  StringBuilder sb = new StringBuilder("SELECT x");\n  sb.replace(7, 8, "1");\n', "sb.toString()"),
     _js('  StringBuilder sb = new StringBuilder("SELECT x");\n  sb.replace(7, 8, param);\n', "sb.toString()")),
    ("String.format", "java", _js("", 'String.format("SELECT %s", "1")'), _js("", 'String.format("SELECT %s", param)')),
    ("String.join", "java", _js("", 'String.join(",", "a", "b")'), _js("", 'String.join(",", "a", param)')),
    ("substring and split", "java", _js('  String s = "a,b".split(",")[0].substring(0, 1);\n', '"SELECT " + s'),
     _js('  String s = param.split(",")[0].substring(0, 1);\n', '"SELECT " + s')),
    ("Base64 round trip", "java",
     _js('  String e = Base64.getEncoder().encodeToString("1".getBytes());\n'
         '  String d = new String(Base64.getDecoder().decode(e), StandardCharsets.UTF_8);\n', '"SELECT " + d'),
     _js('  String e = Base64.getEncoder().encodeToString(param.getBytes());\n'
         '  String d = new String(Base64.getDecoder().decode(e), StandardCharsets.UTF_8);\n', '"SELECT " + d')),
    ("URL decoding", "java", _js('  String d = URLDecoder.decode("1", "UTF-8");\n', '"SELECT " + d'),
     _js('  String d = URLDecoder.decode(param, "UTF-8");\n', '"SELECT " + d')),
    ("Optional and requireNonNull", "java",
     _js('  String d = Optional.ofNullable("1").orElse("2");\n', '"SELECT " + Objects.requireNonNull(d)'),
     _js('  String d = Optional.ofNullable(param).orElse("2");\n', '"SELECT " + Objects.requireNonNull(d)')),
    ("f-string", "python", _ps("", "f\"SELECT {'1'}\""), _ps("", "f'SELECT {param}'")),
    ("percent and format", "python", _ps("    q = 'SELECT %s' % '1'\n", "'{} {}'.format(q, 2)"),
     _ps("    q = 'SELECT %s' % param\n", "'{} {}'.format(q, 2)")),
    ("join and split", "python", _ps("    parts = 'a b'.split()\n", "' '.join(['SELECT', parts[0]])"),
     _ps("    parts = param.split()\n", "' '.join(['SELECT', parts[0]])")),
    ("base64 and unquote", "python",
     _ps("    d = base64.b64decode(base64.b64encode(b'1')).decode()\n", "'SELECT ' + urllib.parse.unquote(d)"),
     _ps("    d = base64.b64decode(base64.b64encode(param.encode())).decode()\n",
         "'SELECT ' + urllib.parse.unquote(d)")),
]


@pytest.mark.parametrize("what,language,safe,vuln", STRING_TWINS, ids=[f"{t[1]}-{t[0]}" for t in STRING_TWINS])
def test_taint_survives_string_operations_and_wrappers(what, language, safe, vuln):
    hit, g = _verdict(safe, language)
    assert g["parse_ok"] is True
    assert hit is False, what
    assert _verdict(vuln, language)[0] is True, what


PREPARED_TWINS = [
    ("java", "prepareStatement with a built query",
     J_HEAD + '  PreparedStatement ps = conn.prepareStatement("SELECT * FROM t WHERE id = ?");\n'
              '  ps.setString(1, p);\n  ps.executeQuery();\n}}',
     J_HEAD + '  String sql = "SELECT * FROM t WHERE id = \'" + p + "\'";\n'
              '  PreparedStatement ps = conn.prepareStatement(sql);\n  ps.executeQuery();\n}}'),
    ("java", "prepareCall with a built call",
     J_HEAD + '  CallableStatement cs = conn.prepareCall("{call refresh(?)}");\n  cs.setString(1, p);\n'
              '  cs.execute();\n}}',
     J_HEAD + '  CallableStatement cs = conn.prepareCall("{call " + p + "(?)}");\n  cs.setInt(1, 7);\n'
              '  cs.execute();\n}}'),
    ("python", "execute with bound parameters",
     P_HEAD + "    sql = 'SELECT * FROM t WHERE id = ?'\n    cursor.execute(sql, (p,))\n",
     P_HEAD + "    sql = 'SELECT * FROM t WHERE id = ' + p\n    cursor.execute(sql, ())\n"),
]


@pytest.mark.parametrize("language,what,safe,vuln", PREPARED_TWINS, ids=[t[1] for t in PREPARED_TWINS])
def test_the_query_string_of_a_prepared_statement_is_a_sink(language, what, safe, vuln):
    assert _verdict(safe, language)[0] is False, what
    assert _verdict(vuln, language)[0] is True, what


# ------------------------------------------------------------------------------ receivers by declared type
_TYPED_HEAD = "class A {\n  private JdbcTemplate db;\n  void f(HttpServletRequest request, Connection conn) throws Exception {\n"
# (what, safe, vulnerable): the receiver's name says nothing; its declared type (a local, a parameter,
# a field, `this.field`, an outer class's field) is what makes the call a source or a sink.
TYPED_TWINS = [
    ("ResultSet local as a source",
     '    ResultSet q = conn.createStatement().executeQuery("SELECT n FROM u");\n    String v = q.getString(1);\n'
     '    conn.createStatement().execute("DELETE FROM t WHERE n = \'x\'");\n  }\n}',
     '    ResultSet q = conn.createStatement().executeQuery("SELECT n FROM u");\n    String v = q.getString(1);\n'
     '    conn.createStatement().execute("DELETE FROM t WHERE n = \'" + v + "\'");\n  }\n}'),
    ("JdbcTemplate field",
     '    db.update("DELETE FROM t WHERE n = ?", request.getParameter("n"));\n  }\n}',
     '    db.update("DELETE FROM t WHERE n = \'" + request.getParameter("n") + "\'");\n  }\n}'),
    ("JdbcTemplate this.field",
     '    this.db.query("SELECT * FROM t WHERE n = ?", mapper, request.getParameter("n"));\n  }\n}',
     '    this.db.query("SELECT * FROM t WHERE n = \'" + request.getParameter("n") + "\'", mapper);\n  }\n}'),
    ("JdbcTemplate parameter",
     '  }\n  void g(NamedParameterJdbcTemplate t1, HttpServletRequest r) {\n'
     '    t1.update("DELETE FROM t WHERE n = :n", Map.of("n", r.getParameter("n")));\n  }\n}',
     '  }\n  void g(NamedParameterJdbcTemplate t1, HttpServletRequest r) {\n'
     '    t1.update("DELETE FROM t WHERE n = \'" + r.getParameter("n") + "\'", Map.of());\n  }\n}'),
    ("JdbcTemplate field seen from an inner class",
     '  }\n  class In {\n    void m(HttpServletRequest r) { db.update("DELETE FROM t WHERE n = ?", r.getParameter("n")); }\n  }\n}',
     '  }\n  class In {\n    void m(HttpServletRequest r) { db.update("DELETE FROM t WHERE n = " + r.getParameter("n")); }\n  }\n}'),
    ("DirContext parameter",
     '  }\n  void g(DirContext d, HttpServletRequest r) { d.lookup("cn=admin"); }\n}',
     '  }\n  void g(DirContext d, HttpServletRequest r) { d.lookup("cn=" + r.getParameter("n")); }\n}'),
]


def _java_twin(head: str, what: str, safe: str, vuln: str) -> None:
    assert _verdict(head + vuln, "java")[0] is True, what
    assert _verdict(head + safe, "java")[0] is False, what


@pytest.mark.parametrize("what,safe,vuln", TYPED_TWINS, ids=[t[0] for t in TYPED_TWINS])
def test_java_receivers_are_known_by_their_declared_type(what, safe, vuln):
    _java_twin(_TYPED_HEAD, what, safe, vuln)


def test_a_local_of_another_type_shadows_the_field_of_that_name():
    code = _TYPED_HEAD + ('    StringBuilder db = new StringBuilder();\n'
                          '    db.update("x" + request.getParameter("n"));\n  }\n}')
    assert _verdict(code, "java")[0] is False


def test_receiver_types_is_checked_in_a_catalog(tmp_path):
    with pytest.raises(catalog.CatalogError, match="receiver_types"):
        _trimmed(tmp_path, lambda d: d["java"]["sources"][1].update({"receiver_types": "ResultSet"}))


_WRITER_HEAD = "class A { void f(HttpServletRequest request, HttpServletResponse response) throws Exception {\n"
# (what, safe, vulnerable): a local bound once to a call stands for that call when it receives one.
ALIAS_TWINS = [
    ("response writer held in a local",
     '  PrintWriter out = response.getWriter();\n  out.println("<b>" + Encode.forHtml(request.getParameter("n")) + "</b>");\n}}',
     '  PrintWriter out = response.getWriter();\n  out.println("<b>" + request.getParameter("n") + "</b>");\n}}'),
    ("a file writer is no page",
     '  PrintWriter out = new PrintWriter(new FileWriter("/tmp/log"));\n  out.println(request.getParameter("n"));\n}}',
     '  PrintWriter out = response.getWriter();\n  out.println(request.getParameter("n"));\n}}'),
    ("output stream held in a local",
     '  ServletOutputStream os = response.getOutputStream();\n  os.print("<p>fixed</p>");\n}}',
     '  ServletOutputStream os = response.getOutputStream();\n  os.print("<p>" + request.getParameter("n") + "</p>");\n}}'),
]


@pytest.mark.parametrize("what,safe,vuln", ALIAS_TWINS, ids=[t[0] for t in ALIAS_TWINS])
def test_a_local_bound_once_to_a_call_is_classified_as_that_call(what, safe, vuln):
    _java_twin(_WRITER_HEAD, what, safe, vuln)


def test_a_reassigned_local_is_not_taken_for_its_first_value():
    code = _WRITER_HEAD + ('  PrintWriter out = response.getWriter();\n  out = new PrintWriter(System.err);\n'
                           '  out.println(request.getParameter("n"));\n}}')
    assert _verdict(code, "java")[0] is False
