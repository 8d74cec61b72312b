"""The on-disk graph store: round trip, prepared channels read from it, stale stores ignored, old models refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from streamguard.core import graph_store as gstore
from streamguard.core import graphs
from streamguard.data.prepare import prepare
from tests.support.graph_snippets import JAVA, PYTHON
from tests.support.entry_data import make_records
import data as datamod  # noqa: E402  (training_entry is on sys.path via tests.support.entry_data)
import train_enhanced_models as entry  # noqa: E402


def _graphs(n: int = 7) -> list[dict]:
    items = list(JAVA.items())[:n // 2] + list(PYTHON.items())[:n - n // 2]
    return [graphs.build_graph(code, "java" if i < n // 2 else "python") for i, (_, (code, _)) in enumerate(items)]


def _same(a: gstore.GraphArrays, b: gstore.GraphArrays) -> None:
    for key in ("kind", "feat", "subtok", "edges", "edge_type"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def test_store_round_trip_over_several_shards(tmp_path):
    gs = _graphs()
    writer = gstore.StoreWriter(tmp_path / "s", graphs.FEATURIZER_VERSION, subtokens=graphs.SUBTOKENS,
                                feat_dim=graphs.NODE_FEAT_DIM, shard_graphs=3)
    for i, g in enumerate(gs):
        assert writer.add(gstore.graph_arrays(g), {"i": i}) == i
    index = writer.close()
    assert [s["graphs"] for s in index["shards"]] == [3, 3, 1]
    store = gstore.GraphStore(tmp_path / "s")
    assert len(store) == len(gs) and [m["i"] for m in store.meta()] == list(range(len(gs)))
    for i in (6, 0, 4, 3):  # any order
        _same(store[i], gstore.graph_arrays(gs[i]))
    # Shards are safetensors files: the reference reader opens them (nothing pickled).
    from safetensors.numpy import load_file

    shard = load_file(str(tmp_path / "s" / "shard-00001.safetensors"))
    assert shard["feat"].dtype == np.float16 and shard["feat"].shape[1] == graphs.NODE_FEAT_DIM
    assert shard["node_ptr"].tolist()[-1] == shard["kind"].shape[0] == index["shards"][1]["nodes"]
    # At most MAX_OPEN_SHARDS shards hold an open file; reading on reopens the others.
    store.close()
    old = gstore.MAX_OPEN_SHARDS
    gstore.MAX_OPEN_SHARDS = 1
    try:
        for i in (0, 6, 3, 0):
            _same(store[i], gstore.graph_arrays(gs[i]))
            assert len(store._open) == 1  # noqa: SLF001
    finally:
        gstore.MAX_OPEN_SHARDS = old
    with pytest.raises(IndexError):
        store[len(gs)]
    # A store whose index was never written is refused with its path.
    w2 = gstore.StoreWriter(tmp_path / "t", "v", subtokens={}, feat_dim=1)
    w2.abort()
    with pytest.raises(gstore.StoreError, match="no store index"):
        gstore.GraphStore(tmp_path / "t")


def test_prepared_channel_is_read_from_its_store_and_a_stale_store_is_ignored(tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in make_records(24, seed=5)), encoding="utf-8")
    report = prepare([str(raw)], str(tmp_path / "out"), auto_counterfactuals=False, graph_workers=1)
    train = tmp_path / "out" / "train"
    assert report.graphs["stores"]["train"] == {"graphs": report.splits["train"]["total"], "shards": 1}
    assert (train / "graph_store" / "index.json").is_file()
    assert datamod.list_data_files(train) == [train / "data.jsonl"]  # the store's files are no data

    from_store = datamod.read_samples(train, need_graphs=True)
    assert from_store and all(s.graph.store.root == train / "graph_store" for s in from_store)
    assert all(s.code is None and s.code_length > 0 for s in from_store)
    lines = [json.loads(line) for line in (train / "data.jsonl").read_text().splitlines()]
    assert [s.id for s in from_store] == [r["id"] for r in lines]
    assert from_store[1].where == f"{train}/data.jsonl:2"
    ds = datamod.make_dataset("gnn", from_store)
    for i in (0, len(lines) - 1):
        want = datamod.graph_to_data(lines[i]["graph"], lines[i]["label"])
        got = ds[i]
        for key in ("x", "kind", "subtok", "edge_index", "edge_type", "y"):
            assert torch.equal(getattr(got, key), getattr(want, key)), key
    # The same seeded subset as from the JSON lines.
    sub_store = datamod.read_samples(train, need_graphs=True, limit=5, seed=2)
    sub_lines = datamod.read_samples(train, need_graphs=False, limit=5, seed=2)
    assert [s.id for s in sub_store] == [s.id for s in sub_lines]

    # The channel changes (a line appended, as retraining adds feedback): the store no longer describes
    # it, so the channel is converted again and the new record is seen.
    extra = dict(lines[0], id="added-later")
    with open(train / "data.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(extra) + "\n")
    assert datamod.channel_store(train) is None
    again = datamod.read_samples(train, need_graphs=True)
    assert [s.id for s in again][-1] == "added-later"
    assert again[0].graph.store.root != train / "graph_store"
    # ensure_channel_store brings the channel's own store up to date, once.
    from streamguard.data.prepare import ensure_channel_store

    assert ensure_channel_store(str(train)) is True and ensure_channel_store(str(train)) is False
    fresh = datamod.read_samples(train, need_graphs=True)
    assert fresh[-1].id == "added-later" and fresh[0].graph.store.root == train / "graph_store"


def test_a_bad_graph_in_a_raw_channel_is_reported_not_dropped(tmp_path):
    recs = make_records(4, seed=6)
    good = graphs.build_graph(recs[1]["code"], recs[1]["language"])
    recs[1]["graph"] = dict(good, subtok=[[0, 0]])  # bucket 0 is padding, never an id
    path = tmp_path / "c" / "data.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    samples = datamod.read_samples(path.parent, need_graphs=True, strict=False)
    assert [s.error is None for s in samples] == [True, False, True, True]
    assert "data.jsonl:2" in samples[1].error and "subtok" in samples[1].error
    with pytest.raises(datamod.DataError, match="data.jsonl:2"):
        datamod.read_samples(path.parent, need_graphs=True)


def test_a_model_from_an_older_graph_format_is_refused(tmp_path):
    md = tmp_path / "model"
    md.mkdir()
    info = entry.featurizer_info()
    old = {k: v for k, v in info.items() if k not in ("graph_format", "subtokens")}
    old["featurizer_version"] = "sg-graph-3+0123456789ab"
    (md / "node_vocab.json").write_text(json.dumps(old))
    with pytest.raises(entry.EntryError, match="graph_format.*sg-graph-3.*retrain"):
        entry.check_node_vocab(md)
    (md / "node_vocab.json").write_text(json.dumps(dict(info, subtokens=dict(info["subtokens"], buckets=1024))))
    with pytest.raises(entry.EntryError, match="subtokens"):
        entry.check_node_vocab(md)
    (md / "node_vocab.json").write_text(json.dumps(info))
    entry.check_node_vocab(md)  # the shipped featurizer's own vocabulary passes


def test_hide_sinks_draws_the_graph_as_if_the_catalog_missed_its_sinks():
    code = JAVA["concat_into_executeQuery"][0]
    g = graphs.build_graph(code, "java")
    col = {n: i for i, n in enumerate(graphs.NODE_FEATURES)}
    et = {n: i for i, n in enumerate(graphs.EDGE_TYPES)}
    a = gstore.graph_arrays(g)
    assert a.feat[:, col["is_sink"]].max() == 1 and (a.edge_type == et["sink_arg"]).any()
    sinks = np.flatnonzero(a.feat[:, col["is_sink"]] > 0.5)
    h = datamod.hide_sinks(a)
    for name in ("is_sink", "is_path_sink", "flows_to_sink", "on_taint_path"):
        assert h.feat[:, col[name]].max() == 0, name
    assert not (h.edge_type == et["sink_arg"]).any()
    assert (h.edge_type == et["call_arg"]).sum() == (a.edge_type == et["call_arg"]).sum() + (
        a.edge_type == et["sink_arg"]).sum()
    assert (h.feat[sinks, col["is_tainted"]] == 1).all()  # a tainted argument enters the unknown call
    assert np.array_equal(h.subtok, a.subtok) and np.array_equal(h.kind, a.kind)
    assert a.feat[:, col["is_sink"]].max() == 1  # the stored arrays are untouched
    # In a dataset the draw is seeded: the same position gives the same graph every time.
    s = datamod.Sample(index=0, where="x:1", label=1, graph=None)
    ds = datamod.GraphDataset([s], sink_dropout=1.0, seed=3)
    ds.refs = [datamod.GraphRef([a], 0)]
    assert float(ds[0].x[:, col["is_sink"]].max()) == 0.0
    ds0 = datamod.GraphDataset([s], sink_dropout=0.0)
    ds0.refs = [datamod.GraphRef([a], 0)]
    assert float(ds0[0].x[:, col["is_sink"]].max()) == 1.0


def test_hide_sources_draws_the_graph_as_if_the_catalog_missed_its_sources():
    code = JAVA["concat_into_executeQuery"][0]
    g = graphs.build_graph(code, "java")
    col = {n: i for i, n in enumerate(graphs.NODE_FEATURES)}
    a = gstore.graph_arrays(g)
    assert a.feat[:, col["on_taint_path"]].max() == 1 and a.feat[:, col["is_tainted"]].max() == 1
    h = datamod.hide_sources(a)
    for name in datamod.SOURCE_COLUMNS:
        assert h.feat[:, col[name]].max() == 0, name
    others = [i for n, i in col.items() if n not in datamod.SOURCE_COLUMNS]
    assert np.array_equal(h.feat[:, others], a.feat[:, others])  # sinks, flows_to_sink, literals stay
    assert h.feat[:, col["flows_to_sink"]].max() == 1
    assert np.array_equal(h.edge_type, a.edge_type) and np.array_equal(h.subtok, a.subtok)
    assert a.feat[:, col["on_taint_path"]].max() == 1  # the stored arrays are untouched
    # Seeded per position, and drawn apart from sink dropout: with both at 1 both apply.
    s = datamod.Sample(index=0, where="x:1", label=1, graph=None)
    ds = datamod.GraphDataset([s], source_dropout=1.0, seed=3)
    ds.refs = [datamod.GraphRef([a], 0)]
    assert float(ds[0].x[:, col["is_tainted"]].max()) == 0.0 and float(ds[0].x[:, col["is_sink"]].max()) == 1.0
    both = datamod.GraphDataset([s], sink_dropout=1.0, source_dropout=1.0, seed=3)
    both.refs = [datamod.GraphRef([a], 0)]
    assert float(both[0].x[:, col["is_sink"]].max()) == 0.0 and float(both[0].x[:, col["is_tainted"]].max()) == 0.0
    # A share of 0.5 hides the sources of about half the graphs, the same ones on every read.
    many = datamod.GraphDataset([s] * 200, source_dropout=0.5, seed=3)
    many.refs = [datamod.GraphRef([a], 0)] * 200
    hidden = [float(many[i].x[:, col["is_tainted"]].max()) == 0.0 for i in range(200)]
    assert 70 < sum(hidden) < 130
    assert hidden == [float(many[i].x[:, col["is_tainted"]].max()) == 0.0 for i in range(200)]
