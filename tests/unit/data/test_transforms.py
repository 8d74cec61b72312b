"""Program transformations: each one's Python and Java twin re-parses, has the intended label, and means
what its docstring says (Python variants are run against a recording fake database/shell; Java
variants are checked on the parsed tree); the augmentation keeps variants in their parent's split."""

from __future__ import annotations

import ast
import json
import random
import re

import pytest

from streamguard.data.counterfactuals.java_sql import _parse, _walk
from streamguard.data.transforms import INJECTION_CWES, REGISTRY, NotApplicable, eligible, parses, variants
from streamguard.data.transforms import java as J
from streamguard.data.transforms import python as P

PY_SQL = '''
def find_user(conn, name):
    cur = conn.cursor()
    query = "SELECT * FROM users WHERE name = '" + name + "'"
    count = 0
    limit = 10
    cur.execute(query)
    return count + limit
'''

PY_CMD = '''
import os

def list_dir(path):
    os.system("ls " + path)
'''

JAVA_SQL = '''
import java.sql.*;
import javax.servlet.http.*;

public class UserLookup {
    public void lookup(HttpServletRequest request, Connection conn) throws Exception {
        String name = request.getParameter("name");
        int count = 0;
        String label = "users";
        Statement stmt = conn.createStatement();
        ResultSet rs = stmt.executeQuery("SELECT * FROM users WHERE name = '" + name + "'");
        helperLog(label, count);
    }

    private void helperLog(String label, int count) {
        System.out.println(label + count);
    }
}
'''

JAVA_HEADER = '''
public class Redirector {
    public void go(javax.servlet.http.HttpServletRequest request, javax.servlet.http.HttpServletResponse response) {
        String target = request.getParameter("next");
        response.setHeader("Location", "/page?lang=" + target);
    }
}
'''

TAINT = "x' OR '1'='1"
ALL = [(lang, t) for lang, ts in REGISTRY.items() for t in ts]


def _run_python(code: str, entry: str, arg: str) -> list[str]:
    """Run ``entry(arg)`` (with a fake connection) and return what reached the sinks (SQL text, shell
    command); a sanitizer that raises on the tainted input reaches nothing."""
    reached: list[str] = []

    class Cursor:
        def execute(self, query, params=None):
            reached.append(query)

    class Conn:
        def cursor(self):
            return Cursor()

    import os as real_os

    fake_os = type("os", (), {"system": staticmethod(lambda cmd: reached.append(cmd)), "path": real_os.path})
    scope: dict = {"__name__": "variant"}
    exec(compile(code.replace("import os\n", ""), "<variant>", "exec"), scope)  # noqa: S102 - our own test code
    scope["os"] = fake_os
    func = next(v for k, v in scope.items() if callable(v) and getattr(v, "__code__", None)
                and v.__code__.co_argcount == (2 if entry == "sql" else 1) and k not in ("Cursor", "Conn"))
    try:
        func(Conn(), arg) if entry == "sql" else func(arg)
    except ValueError:  # int() refused the tainted text: nothing reached the sink
        pass
    return reached


def _reaches(reached: list[str], marker: str) -> bool:
    return any(marker in r for r in reached)


def test_every_transformation_has_a_twin_in_both_languages_and_says_why():
    names = {lang: [t.name for t in ts] for lang, ts in REGISTRY.items()}
    assert names["python"] == names["java"] and len(names["python"]) == 16
    assert sum(t.flips for t in REGISTRY["python"]) == 6
    for _lang, t in ALL:
        assert t.why and ("label is kept" in t.why or "becomes safe" in t.why), t.name
        assert ("becomes safe" in t.why) == t.flips


@pytest.mark.parametrize("t", REGISTRY["python"], ids=lambda t: t.name)
def test_python_variant_parses_and_means_its_label(t):
    src = PY_SQL if t.name != "sanitize" else PY_CMD
    entry = "sql" if src is PY_SQL else "cmd"
    before = _run_python(src, entry, TAINT)
    assert _reaches(before, TAINT)  # the original is vulnerable: the taint reaches the sink
    out = t.fn(src, random.Random(3))
    assert parses(out, "python") and out.strip() != src.strip()
    after = _run_python(out, entry, TAINT)
    # The label from the transformation's meaning, checked by running the variant.
    assert _reaches(after, TAINT) == (not t.flips), out
    if not t.flips:
        assert after == before or t.name in ("dead_code",) and after[-1:] == before[-1:]


def test_python_sanitize_puts_the_sink_appropriate_sanitizer_on_the_path():
    out = P.sanitize(PY_CMD, random.Random(1))
    call = next(n for n in ast.walk(ast.parse(out)) if isinstance(n, ast.Call) and ast.unparse(n.func) == "os.system")
    assert "shlex.quote(path)" in ast.unparse(call.args[0])
    sql = P.sanitize(PY_SQL, random.Random(1))
    assign = next(n for n in ast.walk(ast.parse(sql)) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "query")
    assert "int(name)" in ast.unparse(assign.value)


def _sink_arg(code: str, method: str) -> str:
    root = _parse(code)
    call = next(n for n in _walk(root) if n.type == "method_invocation"
                and n.child_by_field_name("name").text.decode() == method)
    args = call.child_by_field_name("arguments").named_children
    return args[-1].text.decode() if args else ""


JAVA_MEANING = {
    "rename_variables": lambda out: (m := re.search(r"'\" \+ (\w+) \+ \"'", _sink_arg(out, "executeQuery")))
    and m.group(1) != "name" and f"String {m.group(1)} = " in out,
    "rename_methods": lambda out: "helperLog" not in out and "lookup(" not in out,
    "via_helper": lambda out: re.fullmatch(r"(\w+)\(.*\)", _sink_arg(out, "executeQuery"))
    and re.search(r"private static <T> T \w+\(T (\w+)\) \{ return \1; \}", out),
    "via_class": lambda out: _sink_arg(out, "executeQuery").startswith("Relay.forward(") or
    re.match(r"\w+\.forward\(", _sink_arg(out, "executeQuery")),
    "via_collection": lambda out: re.fullmatch(r"\w+\.get\(0\)", _sink_arg(out, "executeQuery")),
    "via_ternary": lambda out: re.search(r"boolean (\w+) = true;", out)
    and re.fullmatch(r"\(\w+ \? .* : \"SELECT 1\"\)", _sink_arg(out, "executeQuery")),
    "via_switch": lambda out: re.search(r"case (\d):\s+(\w+) = \"SELECT", out) and "switch (" in out,
    "via_string_builder": lambda out: _sink_arg(out, "executeQuery").startswith("new StringBuilder().append("),
    "dead_code": lambda out: "if (false) {" in out,
    "reorder_statements": lambda out: out.index("String label") < out.index("int count")
    or out.index("Statement stmt") < out.index("String label"),
    "sanitize": lambda out: "Integer.parseInt(name)" in _sink_arg(out, "executeQuery"),
    "parameterize": lambda out: "prepareStatement(" in out and re.search(r"\.setString\(1, name\)", out)
    and "'\" + name" not in out,
    "overwrite_constant": lambda out: re.search(r'name = "SELECT 1";\s+ResultSet rs = stmt\.executeQuery', out),
    "dead_branch": lambda out: re.search(r"boolean (\w+) = false;", out)
    and re.fullmatch(r"\((\w+) \? .* : \"SELECT 1\"\)", _sink_arg(out, "executeQuery")),
    "safe_element": lambda out: re.fullmatch(r"\w+\[1\]", _sink_arg(out, "executeQuery"))
    and re.search(r'String\[\] \w+ = \{"SELECT \* FROM users WHERE name = \'" \+ name \+ "\'", "SELECT 1"\};', out),
    "logged_instead": lambda out: _sink_arg(out, "executeQuery") == '"SELECT 1"'
    and "name" in _sink_arg(out, "println"),
}


@pytest.mark.parametrize("t", REGISTRY["java"], ids=lambda t: t.name)
def test_java_variant_parses_and_means_its_label(t):
    out = t.fn(JAVA_SQL, random.Random(3))
    assert parses(out, "java") and out.strip() != JAVA_SQL.strip()
    assert JAVA_MEANING[t.name](out), out
    if not t.flips and t.name not in ("rename_variables", "via_collection", "via_ternary", "via_switch",
                                      "via_helper", "via_class", "safe_element"):
        assert "name" in _sink_arg(out, "executeQuery") or t.name == "rename_methods"


def test_java_sanitize_is_sink_appropriate():
    out = J.sanitize(JAVA_HEADER, random.Random(0))
    assert parses(out, "java")
    assert 'java.net.URLEncoder.encode(target, "UTF-8")' in out  # a header value is URL-encoded


@pytest.mark.parametrize("lang,code", [("python", "def f(x):\n    return x + 1\n"),
                                       ("java", "class A { int f(int x) { return x + 1; } }")])
def test_flow_transformations_need_a_sink_and_say_so(lang, code):
    for t in REGISTRY[lang]:
        if t.name in ("via_helper", "via_collection", "dead_branch", "safe_element", "overwrite_constant"):
            with pytest.raises(NotApplicable) as info:
                t.fn(code, random.Random(0))
            assert info.value.reason == "no_sink"


def test_variants_are_seeded_counted_and_labelled_from_the_transformation():
    rec = {"id": "r1", "code": PY_SQL, "label": 1, "language": "python", "cwe": "CWE-89"}
    counts1: dict = {}
    first = variants(rec, 13, 4, counts1)
    again = variants(rec, 13, 4, {})
    assert [(v.transformation.name, v.code) for v in first] == [(v.transformation.name, v.code) for v in again]
    assert len(first) == 4
    for v in first:
        assert v.label == (0 if v.transformation.flips else 1)
    assert sum(c.get("made", 0) for c in counts1.values()) == 4
    # Every attempt is counted with an outcome.
    assert all(sum(c.values()) >= 1 for c in counts1.values())
    # Flips are never tried on safe code nor on a weakness that is not an injection.
    assert not any(t.flips for t in eligible({**rec, "label": 0}))
    assert not any(t.flips for t in eligible({**rec, "cwe": "CWE-327"}))
    assert "CWE-89" in INJECTION_CWES


def test_a_variant_that_does_not_reparse_is_counted_and_dropped(monkeypatch):
    from streamguard.data import transforms

    monkeypatch.setattr(transforms, "parses", lambda code, language: False)
    counts: dict = {}
    rec = {"id": "r1", "code": PY_SQL, "label": 0, "language": "python", "cwe": None}
    assert variants(rec, 13, 2, counts) == []
    assert sorted(counts) == sorted(f"python/{t.name}" for t in eligible(rec))  # every one tried and counted
    assert not any(c.get("made") for c in counts.values())
    failed = sum(c.get("parse_failed", 0) for c in counts.values())
    not_applicable = sum(n for c in counts.values() for k, n in c.items() if k.startswith("not_applicable:"))
    assert failed + not_applicable == len(eligible(rec)) and failed >= 8


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        safe = i % 2 == 0
        q = '"SELECT * FROM t WHERE a = %s", (v,)' if safe else '"SELECT * FROM t WHERE a = \'" + v + "\'"'
        out.append({"id": f"p{i}", "code": f"def get_{i}(db, v):\n    c = db.cursor()\n    k{i} = {i}\n"
                                           f"    c.execute({q})\n    return k{i}\n",
                    "label": 0 if safe else 1, "language": "python", "cwe": "CWE-89", "group": f"g{i // 2}"})
    for i in range(n):
        safe = i % 2 == 0
        arg = '"SELECT 1"' if safe else '"SELECT * FROM t WHERE a = \'" + v + "\'"'
        out.append({"id": f"j{i}", "code": f"class C{i} {{\n    void q(java.sql.Statement s, String v) throws Exception {{\n"
                                           f"        int k = {i};\n        String w = v;\n"
                                           f"        s.executeQuery({arg});\n    }}\n}}\n",
                    "label": 0 if safe else 1, "language": "java", "cwe": "CWE-89", "group": f"h{i // 2}"})
    return out


def test_prepare_keeps_variants_in_their_parents_split_with_provenance(tmp_path):
    from streamguard.data.prepare import prepare

    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(40)), encoding="utf-8")
    report = prepare([str(data)], str(tmp_path / "out"), with_graphs=False, transforms=2, transform_in=None)
    split_of, group_of, label_of = {}, {}, {}
    rows = {}
    for name in ("train", "validation", "test"):
        rows[name] = [json.loads(line) for line in (tmp_path / "out" / name / "data.jsonl").open(encoding="utf-8")]
        for r in rows[name]:
            split_of[r["id"]], group_of[r["id"]], label_of[r["id"]] = name, r["group"], r["label"]
    made = [(name, r) for name in rows for r in rows[name] if r["origin"] == "transformed"]
    assert len(made) == report.augmented["transformations"]["made"] > 100
    for name, r in made:
        parent = r["augmented_from"]
        assert split_of[parent] == name and group_of[parent] == r["group"]  # no leakage across splits
        flips = next(t.flips for t in REGISTRY[r["language"]] if t.name == r["transformation"])
        assert r["label"] == (1 - label_of[parent] if flips else label_of[parent])
    groups = {name: {r["group"] for r in rows[name]} for name in rows}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["validation"])
    by = report.augmented["transformations"]["by_transformation"]
    assert {k.split("/")[0] for k in by} == {"python", "java"}
    assert sum(c.get("made", 0) for c in by.values()) == len(made)
    for name in rows:
        assert report.splits[name]["transformed"] == sum(r["origin"] == "transformed" for r in rows[name])


def test_prepare_transforms_only_the_training_split_by_default(tmp_path):
    from streamguard.data.prepare import prepare

    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(40)), encoding="utf-8")
    plain = prepare([str(data)], str(tmp_path / "plain"), with_graphs=False)
    report = prepare([str(data)], str(tmp_path / "out"), with_graphs=False, transforms=1)
    assert "transformations" not in plain.augmented and "transformed" not in plain.splits["train"]
    assert report.splits["train"]["transformed"] > 0
    for name in ("validation", "test"):
        assert report.splits[name]["transformed"] == 0
        assert (tmp_path / "out" / name / "data.jsonl").read_bytes() == (tmp_path / "plain" / name / "data.jsonl").read_bytes()


def test_trigger_param_and_cli_flag_reach_preparation(tmp_path, capsys):
    from streamguard.cli import main
    from streamguard.data.prepare import prepare_plan
    from streamguard.pipeline.params import ParamError, resolve_training_config

    assert resolve_training_config({}).transform_variants == 0  # the demo's default: no variants
    assert resolve_training_config({"transform_variants": 2}).transform_variants == 2
    with pytest.raises(ParamError, match="transform_variants"):
        resolve_training_config({"transform_variants": -1})
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(20)), encoding="utf-8")
    plain = prepare_plan([str(data)], str(tmp_path / "o1"), str(tmp_path / "w1"))
    staged = prepare_plan([str(data)], str(tmp_path / "o2"), str(tmp_path / "w2"), transforms=1)
    assert staged["records"] > plain["records"]
    assert main(["prepare", "--input", str(data), "--out", str(tmp_path / "cli"), "--no-graphs",
                 "--transforms", "1"]) in (0, None)
    assert "transformed:" in capsys.readouterr().out
    report = json.loads((tmp_path / "cli" / "report.json").read_text(encoding="utf-8"))
    assert report["augmented"]["transformations"]["made"] == report["splits"]["train"]["transformed"] > 0


def test_transform_names_pick_the_transformations_and_unknown_names_fail_clearly(tmp_path, capsys):
    from streamguard.cli import main
    from streamguard.data.prepare import PrepareError, prepare

    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(20)), encoding="utf-8")
    report = prepare([str(data)], str(tmp_path / "out"), with_graphs=False, transforms=2,
                     transform_names=["logged_instead"])
    block = report.augmented["transformations"]
    assert (block["per_record"], block["names"], block["splits"]) == (2, ["logged_instead"], ["train"])
    by = block["by_transformation"]
    assert set(by) == {"python/logged_instead", "java/logged_instead"}
    rows = [json.loads(line) for line in (tmp_path / "out" / "train" / "data.jsonl").open(encoding="utf-8")]
    made = [r for r in rows if r["origin"] == "transformed"]
    assert made and all(r["transformation"] == "logged_instead" and r["label"] == 0 for r in made)
    with pytest.raises(PrepareError, match="unknown program transformation.*no_such.*known: dead_branch"):
        prepare([str(data)], str(tmp_path / "bad"), with_graphs=False, transforms=1, transform_names=["no_such"])
    assert main(["prepare", "--input", str(data), "--out", str(tmp_path / "cli"), "--no-graphs", "--transforms", "1",
                 "--transform-names", "logged_instead, dead_branch"]) in (0, None)
    cli = json.loads((tmp_path / "cli" / "report.json").read_text(encoding="utf-8"))
    assert set(cli["augmented"]["transformations"]["by_transformation"]) <= {
        f"{lang}/{name}" for lang in ("python", "java") for name in ("logged_instead", "dead_branch")}


def test_quality_benchmark_reuses_channels_only_under_the_same_transformations(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "quality_real_data.py"
    spec = importlib.util.spec_from_file_location("quality_real_data", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    block = {"per_record": 2, "names": ["dead_branch", "logged_instead"], "splits": ["train"], "made": 40}
    report = {"augmented": {"transformations": block}}
    assert bench.same_transforms(report, 2, "logged_instead, dead_branch")
    assert not bench.same_transforms(report, 2, "logged_instead")
    assert not bench.same_transforms(report, 2, "")
    assert not bench.same_transforms(report, 1, "dead_branch,logged_instead")
    assert not bench.same_transforms(report, 0, "")
    everything = {"augmented": {"transformations": dict(block, names=None)}}
    assert bench.same_transforms(everything, 2, "") and not bench.same_transforms(everything, 2, "dead_branch")
    assert bench.same_transforms({"augmented": {}}, 0, "")
    # A report from before the settings were recorded: prepared anew rather than guessed at.
    assert not bench.same_transforms({"augmented": {"transformations": {"made": 40}}}, 2, "")
