"""Synthetic pairs: schema, both languages, parseable, varied, not separable by one token."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict

import pytest

from streamguard.core.records import normalize_record
from streamguard.data.counterfactuals import parses
from streamguard.data.synthetic import generate_samples, write_samples


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    return generate_samples(n_pairs=150, seed=0)


def _pairs(samples):
    by_group = defaultdict(dict)
    for r in samples:
        if "counterfactual" in r:
            by_group[r["group"]] = {1: r["code"], 0: r["counterfactual"]}
        else:
            by_group[r["group"]][r["label"]] = r["code"]
    return by_group


def test_schema_and_balance(samples):
    assert 250 <= len(samples) <= 300
    for r in samples:
        norm = normalize_record(r)
        assert norm["language"] in ("python", "java") and r["source"] == "synthetic"
        assert r["cwe"] in ("CWE-89", "CWE-78", "CWE-22")
    pairs = _pairs(samples)
    assert len(pairs) == 150 and all(set(p) == {0, 1} for p in pairs.values())
    assert Counter(r["language"] for r in samples)["java"] > 100
    assert sum("counterfactual" in r for r in samples) == 25
    assert len({r["id"] for r in samples}) == len(samples)


def test_all_code_parses(samples):
    for r in samples:
        assert parses(r["code"], r["language"]), r["id"]
        if "counterfactual" in r:
            assert parses(r["counterfactual"], r["language"]), r["id"]


def test_varied_sources_sinks_and_names(samples):
    text = "\n".join(r["code"] for r in samples)
    for source in ("request.args.get", "request.headers.get", "os.environ.get", "sys.argv", "sys.stdin",
                   "request.getParameter", "request.getHeader", "System.getenv", "args[0]", "readLine()"):
        assert source in text, source
    for sink in ("cursor.execute", "executeQuery", "subprocess.run", "Runtime.getRuntime().exec",
                 "open(path", "Files.readAllBytes"):
        assert sink in text, sink
    for safe in ("prepareStatement", "Integer.parseInt", "int(", "ALLOWED", "if False", "shlex.quote",
                 "os.path.basename"):
        assert safe in text, safe
    tables = set(re.findall(r"FROM (\w+)", text))
    assert len(tables) >= 8
    assert len({r["code"] for r in samples}) == len(samples)


def test_no_single_token_separates_labels(samples):
    """No token appears in every vulnerable sample and in no safe one (or vice versa)."""
    tokens = {lab: [set(re.findall(r"\w+|[^\w\s]", code)) for p in _pairs(samples).values() for code in [p[lab]]]
              for lab in (0, 1)}
    all_tokens = set().union(*tokens[0], *tokens[1])
    for tok in all_tokens:
        in_vuln = sum(tok in t for t in tokens[1]) / len(tokens[1])
        in_safe = sum(tok in t for t in tokens[0]) / len(tokens[0])
        assert abs(in_vuln - in_safe) < 0.2, (tok, in_vuln, in_safe)
    # both variants of SQL pairs format strings and call a query sink
    for p in _pairs(samples).values():
        if "execute" in p[1]:
            assert "execute" in p[0]


def test_reproducible_and_seeded(samples):
    assert generate_samples(n_pairs=150, seed=0) == samples
    assert generate_samples(n_pairs=150, seed=1) != samples
    assert generate_samples(n_pairs=0) == []


def test_write_samples_plain_and_gz(tmp_path, samples):
    plain, gz = tmp_path / "s.jsonl", tmp_path / "s.jsonl.gz"
    write_samples(plain, samples[:10])
    write_samples(gz, samples[:10])
    assert [json.loads(x) for x in plain.read_text().splitlines()] == samples[:10]
    assert gzip.decompress(gz.read_bytes()).decode() == plain.read_text()
    first = gz.read_bytes()
    write_samples(gz, samples[:10])
    assert gz.read_bytes() == first   # byte-identical (no timestamp in the gzip header)


def test_safe_defaults_replace_everything_outside_an_allow_list():
    """A default assigned only when the input is present/empty leaves the input on the other path."""
    for p in _pairs(generate_samples(n_pairs=150, seed=0)).values():
        lines = p[0].splitlines()
        for cond, body in zip(lines, lines[1:]):
            if body.strip().endswith("= fallback;") or body.strip().endswith("= fallback"):
                assert "ALLOWED" in cond, cond
    safe = "\n".join(p[0] for p in _pairs(generate_samples(n_pairs=150, seed=0)).values())
    assert "!ALLOWED.contains(" in safe and " not in ALLOWED:" in safe


def test_labels_agree_with_the_taint_analysis():
    """The featurizer's source -> sink check agrees with the labels, except on the one known gap
    (Java prefix checks, whose new File(...) sink comes before the check)."""
    from streamguard.core.graphs import build_graph, taint_reaches_sink

    records = []
    for r in generate_samples(n_pairs=60, seed=3):
        records.append((r["code"], r["label"], r["language"]))
        if "counterfactual" in r:
            records.append((r["counterfactual"], 0, r["language"]))
    wrong = [(code, label) for code, label, language in records
             if taint_reaches_sink(build_graph(code, language)) != bool(label)]
    assert all(label == 0 and "getCanonicalPath" in code for code, label in wrong), wrong[:1]
    assert len(wrong) <= 0.05 * len(records)
