"""`streamguard prepare`: quarantine, dedup, split, reproducibility, outputs and CLI exit codes."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.data.dedup import normalize_code
from streamguard.data.prepare import PrepareError, prepare
from streamguard.data.synthetic import generate_samples, write_samples


def py(i: int, label: int = 1) -> str:
    """A small, distinct Python function per i."""
    if label:
        return f"def f{i}(cur, v):\n    cur.execute(\"SELECT * FROM t{i} WHERE a = '%s'\" % v)\n"
    return f"def f{i}(cur, v):\n    cur.execute(\"SELECT * FROM t{i} WHERE a = %s\", (v,))\n"


def rec(i: int, label: int = 1, **extra) -> dict:
    return {"code": py(i, label), "label": label, "language": "python", **extra}


def write_jsonl(path: Path, lines: list) -> Path:
    """Write dicts as JSON and bytes/str as given, one per line."""
    with open(path, "wb") as fh:
        for line in lines:
            if isinstance(line, bytes):
                fh.write(line + b"\n")
            elif isinstance(line, str):
                fh.write(line.encode() + b"\n")
            else:
                fh.write(json.dumps(line).encode() + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def split_records(out: Path) -> dict[str, list[dict]]:
    return {name: read_jsonl(out / name / "data.jsonl") for name in ("train", "validation", "test")}


def run(inputs, out, **kw):
    kw.setdefault("with_graphs", False)
    return prepare([str(i) for i in inputs], str(out), **kw)


# ------------------------------------------------------------------------------------ quarantine
def test_bad_lines_quarantined_with_file_line_reason(tmp_path):
    good = [rec(i, i % 2) for i in range(6)]
    f = write_jsonl(tmp_path / "mixed.jsonl", [
        good[0],
        "{not json",                                        # 2 invalid JSON
        b'{"code": "x = 1\xff", "label": 1}',               # 3 non-UTF-8
        good[1],
        {"label": 1},                                       # 5 missing code
        {"code": "   ", "label": 0},                        # 6 empty code
        {"code": py(90), "label": "maybe", "language": "python"},   # 7 bad label
        {"code": "x = 1\n" + "#" * 300, "label": 1, "language": "python"},  # 8 oversize
        {"code": py(91), "label": 1, "language": "cobol"},  # 9 unknown language
        "[1, 2, 3]",                                        # 10 not an object
        "",                                                 # 11 blank: no data, skipped
        *good[2:],
    ])
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    report = run([f, empty], out, max_code_bytes=200, auto_counterfactuals=False, keep_raw=True)
    q = read_jsonl(out / "quarantine.jsonl")
    by_line = {(Path(e["file"]).name, e["line"]): e for e in q}
    expected = {("mixed.jsonl", 2): "invalid_json", ("mixed.jsonl", 3): "invalid_utf8",
                ("mixed.jsonl", 5): "missing_code", ("mixed.jsonl", 6): "empty_code",
                ("mixed.jsonl", 7): "bad_label", ("mixed.jsonl", 8): "code_too_large",
                ("mixed.jsonl", 9): "unknown_language", ("mixed.jsonl", 10): "not_object",
                ("empty.jsonl", 0): "empty_file"}
    assert {k: v["reason"] for k, v in by_line.items()} == expected
    assert "label 'maybe' is not 0/1 or true/false" in by_line[("mixed.jsonl", 7)]["message"]
    assert "over the 200-byte limit" in by_line[("mixed.jsonl", 8)]["message"]
    # nothing lost: the raw line (or bytes) or the decoded record travels with each entry
    assert by_line[("mixed.jsonl", 2)]["raw"] == "{not json"
    assert base64.b64decode(by_line[("mixed.jsonl", 3)]["raw_base64"]).startswith(b'{"code": "x = 1\xff')
    assert by_line[("mixed.jsonl", 9)]["record"]["language"] == "cobol"
    assert report.kept == 6
    assert report.quarantined_total == 9
    assert report.quarantined["invalid_json"] == 1
    kept_codes = {r["code"] for recs in split_records(out).values() for r in recs}
    assert kept_codes == {g["code"] for g in good}


def test_gz_input_and_directory(tmp_path):
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    with gzip.open(raw / "sub" / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        for i in range(5):
            fh.write(json.dumps(rec(i, i % 2)) + "\n")
    write_jsonl(raw / "b.jsonl", [rec(i, i % 2) for i in range(5, 9)])
    (raw / "notes.txt").write_text("ignored: not a JSON-lines file")
    report = run([raw], tmp_path / "out")
    assert report.kept == 9 and len(report.files) == 2


def test_file_uri_input_and_output(tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [rec(i, i % 2) for i in range(10)])
    out = tmp_path / "o"
    report = prepare([f.as_uri()], out.as_uri(), with_graphs=False)
    assert report.kept == 10
    assert sum(len(v) for v in split_records(out).values()) >= 10


def test_s3_uri_input(moto_server, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="sg-prepare")
    body = b"".join(json.dumps(rec(i, i % 2)).encode() + b"\n" for i in range(8)) + b"{bad\n"
    boto3.client("s3").put_object(Bucket="sg-prepare", Key="raw/a.jsonl", Body=body)
    boto3.client("s3").put_object(Bucket="sg-prepare", Key="raw/.hidden/b.jsonl", Body=body)
    report = prepare(["s3://sg-prepare/raw"], str(tmp_path / "out"), with_graphs=False)
    assert report.files == ["s3://sg-prepare/raw/a.jsonl"]  # the hidden folder is skipped
    assert report.kept == 8 and report.quarantined == {"invalid_json": 1}
    entry = read_jsonl(tmp_path / "out" / "quarantine.jsonl")[0]
    assert entry["file"] == "s3://sg-prepare/raw/a.jsonl" and entry["line"] == 9


def test_unreadable_inputs_fail_clearly(tmp_path):
    with pytest.raises(PrepareError, match=r"missing\.jsonl: no such file"):
        run([tmp_path / "missing.jsonl"], tmp_path / "out")
    corrupt = tmp_path / "corrupt.jsonl.gz"
    data = gzip.compress(b"".join(json.dumps(rec(i)).encode() + b"\n" for i in range(2000)))
    corrupt.write_bytes(data[: len(data) // 2])   # truncated midway
    with pytest.raises(PrepareError, match=r"corrupt\.jsonl\.gz: unreadable after line \d+"):
        run([corrupt], tmp_path / "out2")
    assert not (tmp_path / "out2" / "train").exists()   # nothing partial written


def test_nothing_usable_raises_and_keeps_quarantine(tmp_path):
    f = write_jsonl(tmp_path / "bad.jsonl", ["nope", {"label": 1}])
    with pytest.raises(PrepareError, match="no usable records") as info:
        run([f], tmp_path / "out")
    assert "quarantine.jsonl" in info.value.hint
    assert len(read_jsonl(tmp_path / "out" / "quarantine.jsonl")) == 2


# ------------------------------------------------------------------------------------------ dedup
def test_normalize_code_ignores_comments_and_whitespace_not_strings():
    a = 'def f(x):\n    # look up\n    return q("a  #b", x+1)\n'
    b = 'def f(x):\n        return q("a  #b", x + 1)   # different comment\n'
    c = 'def f(x):\n    return q("a #b", x+1)\n'
    assert normalize_code(a, "python") == normalize_code(b, "python")
    assert normalize_code(a, "python") != normalize_code(c, "python")
    j1 = 'int f() { /* block */ return g("//x"); // tail\n}'
    j2 = 'int f() {\n  return g("//x");\n}'
    assert normalize_code(j1, "java") == normalize_code(j2, "java")
    assert normalize_code("return x", "java") != normalize_code("returnx", "java")


def test_exact_and_normalised_duplicates_removed_traceably(tmp_path):
    base = rec(1, 1, id="keep")
    exact = dict(base, id="zz-exact")
    normalized = dict(base, id="zz-norm", code=base["code"].replace("    ", "        ") + "# trailing note\n")
    f = write_jsonl(tmp_path / "d.jsonl", [exact, base, normalized] + [rec(i, i % 2) for i in range(2, 8)])
    out = tmp_path / "out"
    report = run([f], out)
    assert report.duplicates == {"exact": 1, "normalized": 1}
    dups = {d["id"]: d for d in read_jsonl(out / "duplicates.jsonl")}
    assert dups["zz-exact"]["kept_id"] == "keep" and dups["zz-exact"]["kind"] == "exact"
    assert dups["zz-norm"]["kept_id"] == "keep" and dups["zz-norm"]["kind"] == "normalized"
    assert dups["zz-norm"]["line"] == 3 and dups["zz-norm"]["record"]["code"] == normalized["code"]
    ids = {r["id"] for recs in split_records(out).values() for r in recs}
    assert "keep" in ids and not ids & {"zz-exact", "zz-norm"}


def test_conflicting_duplicates_quarantined(tmp_path):
    a = rec(1, 1, id="a")
    b = dict(a, id="b", label=0, code=a["code"] + "\n\n")
    f = write_jsonl(tmp_path / "c.jsonl", [a, b] + [rec(i, i % 2) for i in range(2, 8)])
    out = tmp_path / "out"
    report = run([f], out)
    assert report.conflicts == 1
    assert report.quarantined == {"conflicting_labels": 2}
    q = read_jsonl(out / "quarantine.jsonl")
    assert {e["record"]["id"] for e in q} == {"a", "b"}
    assert all("conflicting labels" in e["message"] and e["line"] in (1, 2) for e in q)
    ids = {r["id"] for recs in split_records(out).values() for r in recs}
    assert not ids & {"a", "b"}


def test_duplicate_id_with_different_code_quarantined(tmp_path):
    f = write_jsonl(tmp_path / "i.jsonl", [rec(1, 1, id="same"), rec(2, 0, id="same")]
                    + [rec(i, i % 2) for i in range(3, 8)])
    report = run([f], tmp_path / "out")
    assert report.quarantined == {"duplicate_id": 1}


# ------------------------------------------------------------------------------------------ split
@pytest.fixture(scope="module")
def grouped_input(tmp_path_factory) -> Path:
    """200 groups: pairs (both labels), singletons, and a few big groups; 30% vulnerable overall."""
    rows = []
    for g in range(200):
        size = 5 if g % 40 == 0 else (2 if g % 2 else 1)
        for k in range(size):
            label = int((g * 7 + k) % 10 < 3)
            rows.append(rec(g * 10 + k, label, group=f"g{g}", id=f"r{g}-{k}"))
        if g % 10 == 3:   # an ungrouped record with an explicit counterfactual
            rows.append(rec(5000 + g, 1, id=f"cf{g}", counterfactual=py(9000 + g, 0)))
    path = tmp_path_factory.mktemp("split") / "grouped.jsonl"
    return write_jsonl(path, rows)


def test_groups_never_cross_splits_and_counterfactuals_stay(grouped_input, tmp_path):
    out = tmp_path / "out"
    report = run([grouped_input], out)
    splits = split_records(out)
    where: dict[str, set[str]] = {}
    for name, recs in splits.items():
        for r in recs:
            where.setdefault(r["group"], set()).add(name)
    assert all(len(s) == 1 for s in where.values())
    twins = [(name, r) for name, recs in splits.items() for r in recs if r["origin"] == "counterfactual"]
    assert len(twins) == report.augmented["explicit"] == 20
    for name, t in twins:
        parent = next(r for r in splits[name] if r["id"] == t["parent_id"])
        assert parent["group"] == t["group"] == parent["id"]   # ungrouped parent: own group
        assert t["label"] == 1 - parent["label"]


def test_split_is_stratified_and_sized(grouped_input, tmp_path):
    report = run([grouped_input], tmp_path / "out", auto_counterfactuals=False)
    total = sum(c["input"] for c in report.splits.values())
    for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        c = report.splits[name]
        assert abs(c["input"] / total - share) < 0.05, (name, c)
    # the vulnerable share of each split's input records stays near the overall share
    rows = [json.loads(line) for line in grouped_input.read_text().splitlines()]
    base_rate = sum(r["label"] for r in rows) / len(rows)
    out = split_records(tmp_path / "out")
    for name, recs in out.items():
        inputs = [r for r in recs if r["origin"] == "input"]
        rate = sum(r["label"] for r in inputs) / len(inputs)
        assert abs(rate - base_rate) < 0.1, (name, rate, base_rate)


def test_reproducible_and_order_independent(grouped_input, tmp_path):
    a = run([grouped_input], tmp_path / "a", seed=5)
    b = run([grouped_input], tmp_path / "b", seed=5)
    lines = grouped_input.read_text().splitlines()
    shuffled = write_jsonl(tmp_path / "rev.jsonl", list(reversed(lines)))
    c = run([shuffled], tmp_path / "c", seed=5)
    d = run([grouped_input], tmp_path / "d", seed=6)
    assert a.data_hash == b.data_hash == c.data_hash
    for name in ("train", "validation", "test"):
        assert (tmp_path / "a" / name / "data.jsonl").read_bytes() == (tmp_path / "c" / name / "data.jsonl").read_bytes()
    rep_a, rep_b = (json.loads((tmp_path / x / "report.json").read_text()) for x in "ab")
    assert rep_a.pop("out") != rep_b.pop("out") and rep_a == rep_b
    assert d.data_hash != a.data_hash


def test_invalid_ratios(tmp_path, grouped_input):
    with pytest.raises(PrepareError, match="sum to 1"):
        run([grouped_input], tmp_path / "o", ratios=(0.5, 0.1, 0.1))


def test_output_record_shape_and_report(tmp_path):
    sample = tmp_path / "s.jsonl.gz"
    write_samples(sample, generate_samples(n_pairs=30, seed=1))
    out = tmp_path / "out"
    report = run([sample], out)
    r = read_jsonl(out / "train" / "data.jsonl")[0]
    assert list(r)[:8] == ["id", "code", "label", "language", "cwe", "group", "source", "origin"]
    assert "counterfactual" not in r and "graph" not in r
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["data_hash"] == report.data_hash and on_disk["kept"] == report.kept
    assert set(on_disk["splits"]) == {"train", "validation", "test"}


def test_with_graphs(tmp_path):
    graphs = pytest.importorskip("streamguard.core.graphs")
    if not hasattr(graphs, "build_graph"):
        pytest.skip("graph featurizer not available yet")
    sample = tmp_path / "s.jsonl"
    write_samples(sample, generate_samples(n_pairs=6, seed=2))
    out = tmp_path / "out"
    report = prepare([str(sample)], str(out), with_graphs=True)
    recs = [r for recs in split_records(out).values() for r in recs]
    assert all(r["graph"]["v"] == graphs.FEATURIZER_VERSION for r in recs)
    assert report.graphs["built"] == len(recs)
    assert report.graphs["parse_failures"] == sum(not r["graph"]["parse_ok"] for r in recs)


def test_graph_wiring_with_stand_in_featurizer(tmp_path, monkeypatch):
    """Every written record gets the featurizer's graph; parse failures and truncations are counted."""
    import sys
    import types

    fake = types.ModuleType("streamguard.core.graphs")
    fake.FEATURIZER_VERSION = "stand-in"
    fake.build_graph = lambda code, language: {"v": "stand-in", "language": language,
                                               "parse_ok": "f3" not in code, "num_nodes": 1,
                                               "truncated": ["depth"] if "f5" in code else []}
    monkeypatch.setitem(sys.modules, "streamguard.core.graphs", fake)
    f = write_jsonl(tmp_path / "a.jsonl", [rec(i, i % 2) for i in range(8)])
    report = prepare([str(f)], str(tmp_path / "out"), auto_counterfactuals=False)
    recs = [r for recs in split_records(tmp_path / "out").values() for r in recs]
    assert all(r["graph"]["v"] == "stand-in" and r["graph"]["language"] == "python" for r in recs)
    assert {k: report.graphs[k] for k in ("featurizer_version", "built", "parse_failures",
                                          "parse_failures_by_language", "truncated", "workers", "errors")} == {
        "featurizer_version": "stand-in", "built": 8, "parse_failures": 1,
        "parse_failures_by_language": {"python": 1}, "truncated": {"depth": 1}, "workers": 1, "errors": 0}
    monkeypatch.setitem(sys.modules, "streamguard.core.graphs", None)   # featurizer missing
    with pytest.raises(PrepareError, match="featurizer") as info:
        prepare([str(f)], str(tmp_path / "out2"))
    assert "--no-graphs" in info.value.hint


# -------------------------------------------------------------------------------------------- CLI
def test_cli_prepare_ok(tmp_path, capsys):
    sample = tmp_path / "s.jsonl.gz"
    assert main(["sample", "--out", str(sample), "--pairs", "12", "--seed", "3"]) == 0
    assert main(["prepare", "--input", str(sample), "--out", str(tmp_path / "out"), "--no-graphs",
                 "--seed", "4", "--val-ratio", "0.2", "--test-ratio", "0.2"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "kept: " in text and "quarantined: 0" in text and "augmented: " in text
    # Not a terminal: one plain progress line per stage on stderr, none mixed into stdout's summary.
    stages = [line for line in captured.err.splitlines() if line.startswith("progress: elapsed_s=")]
    assert [line.split(" stage=")[1].split()[0] for line in stages] == \
        ["reading", "removing", "splitting", "adding", "writing"]
    assert "progress:" not in text
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["ratios"] == pytest.approx([0.6, 0.2, 0.2]) and report["seed"] == 4


def test_cli_prepare_failures(tmp_path, capsys):
    assert main(["prepare", "--input", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{", {"code": ""}])
    assert main(["prepare", "--input", str(bad), "--out", str(tmp_path / "o"), "--no-graphs"]) == 2
    err = capsys.readouterr().err
    assert "no usable records" in err and "hint:" in err
    assert main(["prepare", "--input", str(bad), "--out", str(tmp_path / "o"), "--val-ratio", "0.7",
                 "--test-ratio", "0.5"]) == 2


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_graphs_from_a_process_pool_equal_the_serial_ones(tmp_path, monkeypatch):
    """Two graph workers give byte-identical channels to one; the report says how it went."""
    from streamguard.data import prepare_graphs as prep

    monkeypatch.setattr(prep, "_POOL_MIN_RECORDS", 1)
    monkeypatch.setattr(prep, "_CHUNK", 8)
    sample = tmp_path / "s.jsonl"
    write_samples(sample, generate_samples(n_pairs=20, seed=5))
    one = prepare([str(sample)], str(tmp_path / "one"), graph_workers=1)
    two = prepare([str(sample)], str(tmp_path / "two"), graph_workers=2)
    assert one.graphs["workers"] == 1 and two.graphs["workers"] == 2
    assert two.graphs["built"] == one.graphs["built"] > 40
    assert two.graphs["cpu_seconds"] > 0 and two.graphs["speedup"] > 0
    assert one.data_hash == two.data_hash
    for name in ("train", "validation", "test"):
        assert (tmp_path / "one" / name / "data.jsonl").read_bytes() == (tmp_path / "two" / name / "data.jsonl").read_bytes()
