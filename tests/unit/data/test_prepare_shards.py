"""Preparation in stages (plan -> graph shards -> finish) writes what single-task `prepare` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamguard.data.prepare import PrepareError, build_graph_shard, prepare, prepare_finish, prepare_plan
from streamguard.data.synthetic import generate_samples, write_samples

TIMING = ("workers", "seconds", "cpu_seconds", "speedup", "shards")


def mixed_input(tmp_path: Path) -> Path:
    """Real-shaped records plus what exercises every side file: bad lines, a record without code,
    an exact duplicate and a conflicting copy (same code, other label)."""
    samples = list(generate_samples(n_pairs=25, seed=9))
    path = tmp_path / "in.jsonl"
    write_samples(path, samples)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"label": 1, "language": "python"}) + "\n")
        fh.write(json.dumps(samples[0]) + "\n")
        fh.write(json.dumps(dict(samples[1], id="clash", label=1 - int(samples[1].get("label", 0)))) + "\n")
    return path


def staged(inputs: list[str], out: Path, work: Path, shards: int, **kw):
    plan = prepare_plan(inputs, str(out), str(work), shards=shards, **kw)
    # Shards in reverse order: each is independent of the others.
    results = [build_graph_shard(p) for p in reversed(plan["shards"])][::-1]
    return plan, prepare_finish(str(work), results)


def files_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def without_timing(report: dict) -> dict:
    report = dict(report, out=None, graphs={k: v for k, v in report["graphs"].items() if k not in TIMING})
    return report


@pytest.mark.parametrize("shards", [1, 3])
def test_staged_preparation_is_byte_identical_to_one_task(tmp_path, shards):
    source = mixed_input(tmp_path)
    single = prepare([str(source)], str(tmp_path / "single"), seed=11)
    plan, report = staged([str(source)], tmp_path / "staged", tmp_path / "work", shards, seed=11)
    assert len(plan["shards"]) == shards and plan["records"] == single.graphs["built"] + single.graphs["errors"]
    one, many = files_of(tmp_path / "single"), files_of(tmp_path / "staged")
    channels = {"train/data.jsonl", "validation/data.jsonl", "test/data.jsonl",
                "quarantine.jsonl", "duplicates.jsonl", "report.json"}
    assert set(one) == set(many)
    # Besides the channels: each split's graph store (compared byte for byte below as well).
    assert {n for n in one if "/graph_store/" not in n} == channels
    assert {f"{split}/graph_store/index.json" for split in ("train", "validation", "test")} <= set(one)
    for name in one:
        if name != "report.json":
            assert one[name] == many[name], name
    assert report.data_hash == single.data_hash
    assert report.quarantined_total == single.quarantined_total >= 3  # bad line, no code, conflict
    # report.json differs only in where it was written and the graph timing.
    assert without_timing(json.loads(many["report.json"])) == without_timing(json.loads(one["report.json"]))
    assert report.graphs["shards"] == shards and report.graphs["cpu_seconds"] > 0


def test_finish_refuses_missing_or_short_graphs(tmp_path):
    source = mixed_input(tmp_path)
    plan = prepare_plan([str(source)], str(tmp_path / "out"), str(tmp_path / "work"), shards=2)
    build_graph_shard(plan["shards"][0])
    with pytest.raises(PrepareError, match="graphs of shard-00001.jsonl are missing"):
        prepare_finish(str(tmp_path / "work"))
    graphs = build_graph_shard(plan["shards"][1])["graphs"]
    lines = Path(graphs).read_bytes().splitlines(keepends=True)
    Path(graphs).write_bytes(b"".join(lines[:-1]))
    with pytest.raises(PrepareError, match=r"graph\(s\) for .* record\(s\)"):
        prepare_finish(str(tmp_path / "work"))
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_plan_with_nothing_usable_fails_as_prepare_does(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n[1, 2]\n")
    with pytest.raises(PrepareError, match="no usable records"):
        prepare_plan([str(bad)], str(tmp_path / "out"), str(tmp_path / "work"))
    assert (tmp_path / "out" / "quarantine.jsonl").read_text().count("\n") == 2
    with pytest.raises(PrepareError, match="shards must be between"):
        prepare_plan([str(bad)], str(tmp_path / "o2"), str(tmp_path / "w2"), shards=-1)
