"""The taint-flow graph featurizer: reachability semantics, robustness, vocabulary, record invariants."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamguard.core import graphs
from streamguard.core.graphs import (EDGE_TYPES, FEATURIZER_VERSION, NODE_FEAT_DIM, NODE_FEATURES, NODE_KINDS,
                                     NUM_EDGE_TYPES, NUM_NODE_KINDS, build_graph, graph_stats, taint_paths,
                                     taint_reaches_sink)
from tests.support.graph_snippets import JAVA, PYTHON

REPO = Path(__file__).resolve().parents[3]
JULIET = Path("/work/shared/data/juliet_java_cwe89.jsonl.gz")
F = {name: i for i, name in enumerate(NODE_FEATURES)}
E = {name: i for i, name in enumerate(EDGE_TYPES)}
ALL_SNIPPETS = [(name, code, "java", want) for name, (code, want) in JAVA.items()] + [
    (name, code, "python", want) for name, (code, want) in PYTHON.items()]


def assert_valid(g: dict) -> None:
    """Every record invariant the GNN input conversion relies on."""
    assert set(g) == {"v", "language", "parse_ok", "num_nodes", "kind", "feat", "subtok", "edge_index", "edge_type",
                      "truncated", "classes"}
    k, buckets = graphs.SUBTOKENS["per_node"], graphs.SUBTOKENS["buckets"]
    assert all(2 <= len(row) <= k + 1 and 0 <= row[0] < g["num_nodes"] and all(1 <= b <= buckets for b in row[1:])
               for row in g["subtok"])
    assert [row[0] for row in g["subtok"]] == sorted({row[0] for row in g["subtok"]})
    assert g["truncated"] == sorted(g["truncated"]) and set(g["truncated"]) <= {"budget", "depth", "size"}
    assert g["v"] == FEATURIZER_VERSION
    n = g["num_nodes"]
    assert isinstance(n, int) and n > 0
    assert len(g["kind"]) == n and all(isinstance(k, int) and 0 <= k < NUM_NODE_KINDS for k in g["kind"])
    assert len(g["feat"]) == n and all(len(row) == NODE_FEAT_DIM for row in g["feat"])
    assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for row in g["feat"] for x in row)
    src, dst = g["edge_index"]
    assert len(src) == len(dst) == len(g["edge_type"])
    assert all(0 <= s < n for s in src) and all(0 <= d < n for d in dst)
    assert all(isinstance(t, int) and 0 <= t < NUM_EDGE_TYPES for t in g["edge_type"])
    cls = g["classes"]
    assert set(cls) == {"sinks", "sanitizers"}
    assert all(0 <= i < n and g["feat"][i][F["is_sink"]] == 1.0 for i, _ in cls["sinks"])
    assert all(0 <= i < n and names for i, names in cls["sanitizers"])
    json.dumps(g)  # records are written as JSON lines


def nodes_with(g: dict, feature: str) -> list[int]:
    return [i for i, row in enumerate(g["feat"]) if row[F[feature]] > 0.5]


def kind_of(g: dict, i: int) -> str:
    return NODE_KINDS[g["kind"][i]]


# ------------------------------------------------------------------------------ reachability
@pytest.mark.parametrize("name,code,language,want", ALL_SNIPPETS, ids=[f"{s[2]}-{s[0]}" for s in ALL_SNIPPETS])
def test_taint_reaches_sink_on_snippets(name, code, language, want):
    g = build_graph(code, language)
    assert_valid(g)
    assert g["parse_ok"], name
    assert taint_reaches_sink(g) is want, name
    assert bool(taint_paths(g)) is want


def test_tainted_concatenation_connects_source_to_sink_java():
    g = build_graph(JAVA["concat_into_executeQuery"][0], "java")
    [path] = taint_paths(g)
    src, sink = path[0], path[-1]
    assert g["feat"][src][F["is_source"]] == 1.0 and kind_of(g, src) == "java.method_invocation"
    assert g["feat"][sink][F["is_sink"]] == 1.0
    assert any(g["feat"][i][F["is_string_concat"]] == 1.0 for i in path)
    assert all(g["feat"][i][F["is_tainted"]] == 1.0 for i in path[:-1])
    assert all(g["feat"][i][F["on_taint_path"]] == 1.0 for i in path)
    # consecutive path nodes are joined by taint-carrying edges, the last one by sink_arg
    edges = set(zip(*g["edge_index"], g["edge_type"]))
    carrying = {E["data_flow"], E["call_arg"], E["param_flow"], E["return_flow"]}
    for a, b in zip(path[:-2], path[1:-1]):
        assert any((a, b, t) in edges for t in carrying)
    assert (path[-2], path[-1], E["sink_arg"]) in edges


def test_parameter_binding_is_a_sanitizer_and_the_sink_stays_clean():
    g = build_graph(JAVA["prepared_statement"][0], "java")
    assert nodes_with(g, "is_source") and nodes_with(g, "is_sink") and nodes_with(g, "is_sanitizer")
    assert not taint_reaches_sink(g)
    p = build_graph(PYTHON["parameterized"][0], "python")
    [call] = [i for i in nodes_with(p, "is_sink") if kind_of(p, i) == "py.Call"]
    assert p["feat"][call][F["is_sanitizer"]] == 1.0  # execute(sql, params): driver binds the values
    assert not taint_reaches_sink(p)


@pytest.mark.parametrize("code,language", [(JAVA["if_false"][0], "java"), (PYTHON["if_false"][0], "python")])
def test_dead_branch_is_flagged_and_cut_off(code, language):
    g = build_graph(code, language)
    dead = set(nodes_with(g, "dead"))
    sinks = nodes_with(g, "is_sink")
    assert sinks and set(sinks) <= dead
    assert nodes_with(g, "const_false")
    assert E["dead_branch"] in g["edge_type"]
    # no taint-carrying edge joins live and dead code
    carrying = {E["data_flow"], E["call_arg"], E["sink_arg"], E["param_flow"], E["return_flow"]}
    for s, d, t in zip(*g["edge_index"], g["edge_type"]):
        if t in carrying:
            assert (s in dead) == (d in dead)
    assert not any(g["feat"][i][F["is_tainted"]] for i in dead)


def test_live_constant_branch_is_flagged_const_true():
    g = build_graph(JAVA["own_static_final_true"][0], "java")
    assert nodes_with(g, "const_true") and not nodes_with(g, "dead")
    assert taint_reaches_sink(g)


@pytest.mark.parametrize("code,language", [(JAVA["overwritten_by_constant"][0], "java"),
                                           (PYTHON["overwritten_by_constant"][0], "python")])
def test_overwrite_by_constant_kills_taint_and_is_flagged(code, language):
    g = build_graph(code, language)
    assert not taint_reaches_sink(g)
    flagged = nodes_with(g, "overwritten_by_const")
    assert flagged and all(g["feat"][i][F["is_use"]] == 1.0 for i in flagged)


def test_helper_calls_use_parameter_and_return_edges():
    g = build_graph(JAVA["helper_sink"][0], "java")
    assert E["param_flow"] in g["edge_type"] and taint_reaches_sink(g)
    assert nodes_with(g, "is_local_call")
    g = build_graph(JAVA["helper_returns_source"][0], "java")
    assert E["return_flow"] in g["edge_type"] and taint_reaches_sink(g)
    # parameters of a helper called in the file are not entry points: no parameter sources
    h = build_graph(JAVA["helper_sink"][0].replace('request.getParameter("id")', '"foo"'), "java")
    assert not nodes_with(h, "is_param_source") and not taint_reaches_sink(h)


def test_basename_is_a_path_sanitizer_only():
    g = build_graph(PYTHON["path_basename"][0], "python")
    [san] = nodes_with(g, "is_path_sanitizer")
    assert kind_of(g, san) == "py.Call" and g["feat"][san][F["is_sanitizer"]] == 0.0
    [sink] = nodes_with(g, "is_sink")
    assert g["feat"][sink][F["is_path_sink"]] == 1.0
    # the value is still attacker data for other sinks: tainted, but on no taint path
    assert g["feat"][san][F["is_tainted"]] == 1.0 and g["feat"][san][F["on_taint_path"]] == 0.0
    assert not taint_reaches_sink(g) and not nodes_with(g, "on_taint_path")
    # the same basename flowing into SQL still reaches the sink, and the path goes through it
    sql = build_graph(PYTHON["basename_is_no_sql_sanitizer"][0], "python")
    [path] = taint_paths(sql)
    assert any(sql["feat"][i][F["is_path_sanitizer"]] == 1.0 for i in path)
    assert not nodes_with(sql, "is_path_sink")


def test_one_graph_with_path_and_sql_sinks_is_judged_per_sink():
    code = ("import os\ndef f(cursor, request):\n    name = os.path.basename(request.args['f'])\n"
            "    data = open('/srv/' + name).read()\n"
            "    cursor.execute(\"SELECT * FROM t WHERE n = '%s'\" % name)\n")
    g = build_graph(code, "python")
    [path] = taint_paths(g)
    assert g["feat"][path[-1]][F["is_path_sink"]] == 0.0  # the SQL sink, not open()
    assert len(nodes_with(g, "is_sink")) == 2


def test_java_file_name_chain_is_not_a_sink():
    g = build_graph(JAVA["path_paths_get_file_name"][0], "java")
    sinks = nodes_with(g, "is_sink")
    assert sinks and all(g["feat"][i][F["is_path_sink"]] == 1.0 for i in sinks)
    # Paths.get(...) inside ...getFileName() is not a sink: only new File(...) and FileInputStream remain
    assert {kind_of(g, i) for i in sinks} == {"java.object_creation_expression"}
    assert len(nodes_with(g, "is_path_sanitizer")) == 1


@pytest.mark.parametrize("code,language,test_kind", [
    (PYTHON["allowlist_overwrite"][0], "python", "py.Compare"),
    (JAVA["allowlist_overwrite"][0], "java", "java.method_invocation"),
])
def test_allowlist_guard_redefines_the_variable(code, language, test_kind):
    g = build_graph(code, language)
    guards = [i for i in nodes_with(g, "is_sanitizer") if kind_of(g, i) == test_kind]
    assert len(guards) == 1
    [guard] = guards
    assert g["feat"][guard][F["is_def"]] == 1.0
    # the use after the if reads the guard (value on the passing path) and the constant overwrite
    uses_of_guard = [d for s, d, t in zip(*g["edge_index"], g["edge_type"]) if s == guard and t == E["data_flow"]
                     and g["feat"][d][F["is_use"]] == 1.0]
    assert uses_of_guard
    assert not taint_reaches_sink(g)


def test_guard_on_a_warning_branch_keeps_the_taint_of_the_other_path():
    for code, language in ((PYTHON["allowlist_warn_only"][0], "python"), (JAVA["allowlist_warn_only"][0], "java")):
        g = build_graph(code, language)
        assert nodes_with(g, "is_sanitizer") and taint_reaches_sink(g)


# ------------------------------------------------------------------------------ robustness
@pytest.mark.parametrize("code,language", [
    ("public class { void f( { int x = ; if (", "java"),
    ("class A { void f() { String q = \"a\" + ; stmt.executeQuery(q) }", "java"),
    ("def f(:\n    return )\n", "python"),
    ('"""never closed\nx = 1\n', "python"),
    ("\x00\x01\x02 \ufeff", "python"),
])
def test_unparseable_code_still_yields_a_graph(code, language):
    g = build_graph(code, language)
    assert_valid(g)
    assert g["parse_ok"] is False and g["num_nodes"] > 0


def test_python_line_repair_keeps_the_rest_of_the_function():
    code = 'def f(cursor):\n    print "debug"\n    cursor.execute("SELECT " + request.args["id"])\n'
    g = build_graph(code, "python")
    assert g["parse_ok"] is False
    assert taint_reaches_sink(g)


@pytest.mark.parametrize("code", [
    '    def find(self, cur):\n        cur.execute("SELECT " + input())\n',  # cut out of a class body
    'def find(cur):\r\n    cur.execute("SELECT " + input())\r\n',            # Windows line ends
])
def test_extraction_artifacts_are_not_parse_errors(code):
    g = build_graph(code, "python")
    assert g["parse_ok"] is True and taint_reaches_sink(g)


def test_a_frontend_failure_degrades_to_a_token_graph(monkeypatch, caplog):
    from streamguard.core.graphs import builder

    def broken(code, budget):
        raise KeyError("some construct")

    monkeypatch.setattr(builder, "build_python_ir", broken)
    g = build_graph(PYTHON["percent_into_execute"][0], "python")
    assert_valid(g)
    assert g["parse_ok"] is False and g["num_nodes"] > 10
    assert {kind_of(g, i).split(".")[0] for i in range(1, g["num_nodes"])} == {"tok"}
    assert nodes_with(g, "is_sink")  # calls are still classified by name
    assert "python frontend failed" in caplog.text


@pytest.mark.parametrize("code", ["", "   \n"])
@pytest.mark.parametrize("language", ["python", "java"])
def test_empty_code_has_one_root_node(code, language):
    g = build_graph(code, language)
    assert_valid(g)
    assert g["num_nodes"] >= 1


@pytest.mark.parametrize("language", ["cobol", "", "c++", None])
def test_unsupported_language_raises_value_error(language):
    with pytest.raises(ValueError, match="unsupported language"):
        build_graph("x = 1", language)


def test_language_aliases_are_accepted():
    assert build_graph("x = 1", "py")["language"] == "python"
    assert build_graph("int x = 1;", "Java")["language"] == "java"


def test_huge_input_is_truncated_deterministically_and_keeps_the_taint_path():
    body = "\n".join(f'    int v{i} = {i} + {i};' for i in range(600))
    code = ("class A { void f(HttpServletRequest request, Statement s) throws Exception {\n"
            '  String d = request.getParameter("id");\n' + body + '\n  s.executeQuery("SELECT " + d);\n}}')
    g1, g2 = build_graph(code, "java", max_nodes=300), build_graph(code, "java", max_nodes=300)
    assert g1 == g2
    assert_valid(g1)
    assert g1["num_nodes"] == 300
    assert all(row[F["graph_truncated"]] == 1.0 for row in g1["feat"])
    assert taint_reaches_sink(g1)
    assert graph_stats(g1)["truncated"] is True
    assert build_graph(JAVA["if_false"][0], "java")["feat"][0][F["graph_truncated"]] == 0.0
    with pytest.raises(ValueError, match="max_nodes"):
        build_graph("x = 1", "python", max_nodes=0)


def test_pathological_inputs_finish_and_stay_bounded():
    # A hang guard, not a speed target (speed is measured by benchmarks/bench_featurizer.py): each
    # case takes well under a second on an idle core, so a minute means the walk has gone quadratic.
    cases = [("a" * 100_000, "java"), ("x++;" * 20_000, "java"), ("if (c) { x = 1; }\n" * 5000, "java"),
             ("x = " + "+".join(["a"] * 20_000), "python"), ("(" * 5000 + ")" * 5000, "python"),
             ("if c:\n    x = 1\n" * 5000 + "y = x\n", "python")]
    for code, language in cases:
        start = time.perf_counter()
        g = build_graph(code, language)
        assert_valid(g)
        assert g["num_nodes"] <= graphs.DEFAULT_MAX_NODES
        assert time.perf_counter() - start < 60.0, (code[:20], language)


# ------------------------------------------------------------------------------ vocabulary
def test_vocabularies_are_fixed_tuples():
    assert isinstance(NODE_KINDS, tuple) and NODE_KINDS[0] == "<unk>"
    assert len(set(NODE_KINDS)) == NUM_NODE_KINDS == len(NODE_KINDS)
    assert len(set(NODE_FEATURES)) == NODE_FEAT_DIM <= 40
    assert len(set(EDGE_TYPES)) == NUM_EDGE_TYPES
    for required in ("is_source", "is_sink", "is_sanitizer", "is_literal", "is_string_concat", "is_tainted",
                     "dead", "const_true", "const_false", "overwritten_by_const"):
        assert required in NODE_FEATURES
    for required in ("ast_child", "next_stmt", "data_flow", "call_arg", "return_flow", "dead_branch"):
        assert required in EDGE_TYPES


def test_snippet_kinds_are_all_in_the_vocabulary():
    for _, code, language, _ in ALL_SNIPPETS:
        assert 0 not in build_graph(code, language)["kind"]


def _kinds_in_subprocess(seed: str) -> list:
    script = ("import json, sys; from streamguard.core.graphs import build_graph, NODE_KINDS; "
              "codes = json.loads(sys.stdin.read()); "
              "print(json.dumps([list(NODE_KINDS)] + [build_graph(c, l)['kind'] for c, l in codes]))")
    codes = [(JAVA["helper_sink"][0], "java"), (PYTHON["helper_method"][0], "python")]
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(codes), capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120, check=True)
    return json.loads(out.stdout)


def test_kind_ids_are_stable_across_processes_with_different_hash_seeds():
    a, b = _kinds_in_subprocess("1"), _kinds_in_subprocess("4242")
    assert a == b
    assert a[0] == list(NODE_KINDS)
    assert a[1] == build_graph(JAVA["helper_sink"][0], "java")["kind"]


def test_build_graph_is_deterministic():
    for _, code, language, _ in ALL_SNIPPETS[:6]:
        assert build_graph(code, language) == build_graph(code, language)


# ------------------------------------------------------------------------------ statistics
def test_graph_stats_counts_roles():
    g = build_graph(JAVA["prepared_statement"][0], "java")
    st = graph_stats(g)
    assert st["num_nodes"] == g["num_nodes"] and st["num_edges"] == len(g["edge_type"])
    assert st["num_sources"] == 1 and st["num_sinks"] == 2 and st["num_sanitizers"] == 1
    assert st["parse_ok"] is True and st["reaches_sink"] is False and st["truncated"] is False
    assert graph_stats(build_graph("def f(:", "python"))["parse_ok"] is False


def test_taint_paths_respects_max_paths():
    code = ('class A { void f(HttpServletRequest r, Statement s) throws Exception {\n'
            + "".join(f'  s.executeQuery("SELECT {i}" + r.getParameter("p{i}"));\n' for i in range(5)) + "}}")
    g = build_graph(code, "java")
    assert len(taint_paths(g)) == 5
    assert len(taint_paths(g, max_paths=2)) == 2


# ------------------------------------------------------------------------------ real data (measured, printed)
@pytest.mark.skipif(not JULIET.exists(), reason="reference data not available")
def test_juliet_speed_and_discrimination_are_reported():
    """Prints featurizer speed and reach rates on 500 Juliet CWE-89 records (no thresholds)."""
    records = []
    with gzip.open(JULIET, "rt") as fh:
        for line in fh:
            records.append(json.loads(line))
            if len(records) == 500:
                break
    start = time.perf_counter()
    built = [build_graph(r["code"], r["language"]) for r in records]
    elapsed = time.perf_counter() - start
    hits = {0: [0, 0], 1: [0, 0]}
    for r, g in zip(records, built):
        assert_valid(g)
        hits[r["label"]][0] += taint_reaches_sink(g)
        hits[r["label"]][1] += 1
    print(f"\njuliet cwe89: {len(records)} records, {elapsed / len(records) * 1e3:.2f} ms/record, "
          f"mean nodes {sum(g['num_nodes'] for g in built) / len(built):.0f}; reaches_sink: "
          + ", ".join(f"label {k} {v[0]}/{v[1]} ({v[0] / max(v[1], 1):.3f})" for k, v in sorted(hits.items())))


# ------------------------------------------------------------------------------ subtokens
def test_identifiers_split_into_subtokens():
    from streamguard.core.graphs.subtokens import split_identifier

    assert split_identifier("queryForList") == ["query", "for", "list"]
    assert split_identifier("HTTPServletRequest") == ["http", "servlet", "request"]
    assert split_identifier("run_query2") == ["run", "query"]
    assert split_identifier("jdbcTemplate.batchUpdate") == ["jdbc", "template", "batch", "update"]
    assert split_identifier("x") == [] and split_identifier("") == []


def test_subtoken_buckets_are_stable_across_processes():
    from streamguard.core.graphs.subtokens import bucket

    words = ["query", "execute", "request", "parameter"]
    script = ("from streamguard.core.graphs.subtokens import bucket; "
              f"print([bucket(w) for w in {words!r}])")
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                             cwd=REPO)
        outs.add(run.stdout.strip())
    assert outs == {str([bucket(w) for w in words])}


def _subtokens_of(g: dict, node_kind: str) -> list[list[int]]:
    by_node = {row[0]: row[1:] for row in g["subtok"]}
    return [by_node.get(i, []) for i, k in enumerate(g["kind"]) if NODE_KINDS[k] == node_kind]


def test_an_unseen_sink_shares_subtokens_with_a_catalogued_one():
    from streamguard.core.graphs.subtokens import bucket

    known = build_graph('class A { void f(Statement st, String q) { st.executeQuery(q); } }', "java")
    unseen = build_graph('class A { void f(Repo repo, String q) { repo.runQuery(q); } }', "java")
    calls_known = _subtokens_of(known, "java.method_invocation")
    calls_unseen = _subtokens_of(unseen, "java.method_invocation")
    assert any(bucket("query") in ids for ids in calls_known)
    assert any(bucket("query") in ids and bucket("run") in ids for ids in calls_unseen)
    # The receiver's name travels with the call: jdbcTemplate.queryForList -> query, for, list, jdbc, template.
    jt = build_graph('class A { JdbcTemplate jdbcTemplate; void f(String q) { jdbcTemplate.queryForList(q); } }',
                     "java")
    ids = _subtokens_of(jt, "java.method_invocation")[0]
    assert ids[:3] == [bucket("query"), bucket("for"), bucket("list")] and bucket("jdbc") in ids
    py = build_graph("def f(db, q):\n    db.session.run_query(q)\n", "python")
    assert any(bucket("run") in ids and bucket("query") in ids for ids in _subtokens_of(py, "py.Call"))


@pytest.mark.parametrize("language,template", [
    ("java", 'class A {{ void f() {{ String s = "{}"; }} }}'),
    ("python", 'def f():\n    s = "{}"\n'),
])
def test_literal_shape_features(language, template):
    def cols(text):
        g = build_graph(template.format(text), language)
        lits = [row for row, k in zip(g["feat"], g["kind"]) if NODE_KINDS[k] in ("java.string_literal", "py.Constant:str")]
        assert len(lits) == 1
        return {c for c in ("is_sql_literal", "is_shell_literal", "is_path_literal", "is_url_literal",
                            "is_markup_literal") if lits[0][F[c]] == 1.0}

    assert cols("SELECT name FROM users WHERE id = ") == {"is_sql_literal"}
    assert cols("ping -c 1 ") == {"is_shell_literal"}
    assert cols("/var/data/reports/") == {"is_path_literal"}
    assert cols("https://example.org/api?q=") == {"is_url_literal"}
    assert cols("<b>hello</b>") == {"is_markup_literal"}
    assert cols("hello world") == set()
