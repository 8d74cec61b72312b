"""The training entry's records and model hooks: `TrainState` is the checkpoint JSON, each model's
`forward_batch` gives one uniform result, and the model types are defined once."""

from __future__ import annotations

import copy
import importlib
import sys

import pytest
import torch

from tests.support.entry_data import fake_graphs_module, real_graphs_available, make_records

import data as datamod  # noqa: E402  (training_entry is on sys.path via tests.test_models)
import text_inputs  # noqa: E402
import engine  # noqa: E402
from models import (MODEL_CLASSES, EnhancedSQLIntentTransformer, EnhancedTaintFlowGNN,  # noqa: E402
                    ModelOptions, build_model)
from train_state import BestEpoch, TrainState  # noqa: E402

# A checkpoint state as the entry wrote it before TrainState existed (a 3-epoch GNN run, patience 3).
OLD_STATE = {
    "format_version": 1, "model_type": "gnn",
    "model_kwargs": {"in_channels": 30, "hidden_channels": 16, "num_relations": 9, "num_layers": 1,
                     "num_classes": 2, "dropout": 0.1, "num_kinds": 40, "num_subtoken_buckets": 2048},
    "epoch": 3, "best": {"epoch": 2, "key": [0.75, 0.8], "metric": "f1", "value": 0.75}, "bad_epochs": 1,
    "history": [{"epoch": e, "train_loss": 0.7 - e / 10, "train_acc": 0.5, "val_acc": 0.8, "val_f1": 0.75,
                 "val_fpr": 0.1, "val_auc": None, "seconds": 1.5, "improved": e < 3} for e in (1, 2, 3)],
    "stopped_early": False, "fine_tuned_from": None, "text_input": "gadget", "rng": {"seed": 13, "epoch_seed": 16},
}


@pytest.fixture
def graphs(monkeypatch):
    if real_graphs_available():
        return importlib.import_module("streamguard.core.graphs")
    fake = fake_graphs_module()
    monkeypatch.setitem(sys.modules, "streamguard.core.graphs", fake)
    return fake


# ------------------------------------------------------------------------------------ TrainState
def test_train_state_reads_and_writes_the_checkpoint_json_unchanged():
    state = TrainState.from_dict({**copy.deepcopy(OLD_STATE), "_skipped": [4]})  # load_checkpoint's extra key
    assert state.epoch == 3 and state.best == BestEpoch(epoch=2, key=[0.75, 0.8], metric="f1", value=0.75)
    assert (state.seed, state.epoch_seed, state.bad_epochs) == (13, 16, 1)
    assert state.to_dict() == OLD_STATE
    assert list(state.to_dict()) == list(OLD_STATE)  # the same key order on disk
    assert state.ema is None and "ema" not in state.to_dict()  # no averaging: the JSON as before
    with_ema = {**copy.deepcopy(OLD_STATE), "ema": {"decay": 0.99, "updates": 96, "warmup": "w"}}
    assert TrainState.from_dict(with_ema).to_dict() == with_ema  # --weight-averaging ema: one key more, last


def test_train_state_of_an_older_checkpoint_gets_the_old_defaults():
    old = {k: v for k, v in OLD_STATE.items() if k not in ("stopped_early", "fine_tuned_from", "text_input")}
    state = TrainState.from_dict(old)
    assert (state.stopped_early, state.fine_tuned_from, state.text_input) == (False, None, "code")
    with pytest.raises(ValueError, match="history"):
        TrainState.from_dict({k: v for k, v in OLD_STATE.items() if k != "history"})


def test_record_epoch_keeps_the_best_resets_patience_and_stops_early():
    state = TrainState(model_type="gnn", model_kwargs={}, seed=5)
    val = {"f1": 0.5, "accuracy": 0.6}
    assert not state.record_epoch(1, val, "f1", {"epoch": 1}, improved=True, patience=2)
    assert state.best.epoch == 1 and state.best.key == [0.5, 0.6] and state.epoch_seed == 6
    assert not state.best.beaten_by(val, "f1")  # a tie keeps the earlier epoch
    assert state.best.beaten_by({"f1": 0.5, "accuracy": 0.7}, "f1")  # the other metric breaks ties
    assert not state.record_epoch(2, val, "f1", {"epoch": 2}, improved=False, patience=2)
    assert state.record_epoch(3, val, "f1", {"epoch": 3}, improved=False, patience=2)
    assert (state.best.epoch, state.bad_epochs, state.stopped_early) == (1, 2, True)
    assert [h["epoch"] for h in state.to_dict()["history"]] == [1, 2, 3]
    never = TrainState(model_type="gnn", model_kwargs={}, seed=5)
    for epoch in range(1, 6):
        assert not never.record_epoch(epoch, val, "f1", {}, improved=False, patience=0)  # 0: no early stopping


def test_youden_selection_charges_a_false_positive_as_much_as_a_miss():
    # Epoch 1 finds 8 of 10 vulnerable at 1 of 10 safe flagged; epoch 2 finds 9 of 10 but flags 4 of 10.
    one = {"f1": 0.842, "accuracy": 0.85, "recall": 0.8, "fpr": 0.1}
    two = {"f1": 0.818, "accuracy": 0.75, "recall": 0.9, "fpr": 0.4}
    two_by_f1 = dict(two, f1=0.86)  # F1 prefers it, Youden's J (0.5 < 0.7) does not
    state = TrainState(model_type="gnn", model_kwargs={}, seed=5)
    state.record_epoch(1, one, "youden", {"epoch": 1}, improved=True, patience=0)
    assert state.best.value == pytest.approx(0.7) and state.best.metric == "youden"
    assert not state.best.beaten_by(two_by_f1, "youden")
    assert BestEpoch.of(1, one, "f1").beaten_by(two_by_f1, "f1")
    assert state.best.beaten_by(dict(one, f1=0.9), "youden")  # a tie in J goes to F1
    undefined = {"f1": None, "accuracy": 0.5, "recall": None, "fpr": 0.0}  # no vulnerable record
    assert BestEpoch.of(1, undefined, "youden").value is None
    assert BestEpoch.of(1, undefined, "youden").beaten_by({**one, "recall": 0.0, "fpr": 0.9}, "youden")


def test_selection_metric_flag_takes_youden_and_refuses_others():
    from cli_args import parse_args

    from entry_errors import EntryError

    assert parse_args(["--model-type", "gnn", "--selection-metric", "youden"]).selection_metric == "youden"
    with pytest.raises(EntryError, match="--selection-metric.*invalid choice: 'auc'.*'youden'"):
        parse_args(["--model-type", "gnn", "--selection-metric", "auc"])


# ---------------------------------------------------------------------------------- model hooks
def _loader(model_type, samples, tokenizer=None):
    return engine.get_dataloaders(model_type, {"test": samples}, batch_size=4, tokenizer=tokenizer,
                                  max_length=64)["test"]


def _samples(records, graphs=None):
    out = []
    for i, r in enumerate(records):
        graph = datamod.graph_to_data(graphs.build_graph(r["code"], r["language"]), r["label"]) if graphs else None
        out.append(datamod.Sample(index=i, where=f"t:{i}", id=r["id"], code=r["code"], label=r["label"],
                                  language=r["language"], graph=graph))
    return out


def test_gnn_forward_batch_is_its_forward_with_the_batch_labels(graphs):
    torch.manual_seed(0)
    options = ModelOptions(hidden_size=16, num_layers=1)
    new = EnhancedTaintFlowGNN.from_config(options)
    assert new.tokenizer is None and new.kwargs["hidden_channels"] == 16
    assert new.kwargs["in_channels"] == graphs.NODE_FEAT_DIM and new.kwargs["num_relations"] == graphs.NUM_EDGE_TYPES
    model = new.model.eval()
    assert build_model("gnn", new.kwargs).state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match=r"does not know: \['future_option'\]"):
        build_model("gnn", {**new.kwargs, "future_option": 1})
    batch = next(iter(_loader("gnn", _samples(make_records(6, seed=1), graphs))))
    out = model.forward_batch(batch, torch.device("cpu"))
    logits, _ = model(batch.x, batch.edge_index, batch.batch, batch.edge_type, batch.kind, batch.subtok)
    assert torch.equal(out.logits, logits) and torch.equal(out.labels, batch.y) and out.anomaly_score is None
    assert not model.has_anomaly_score and model.needs_graphs and not model.warmup


def test_transformer_forward_batch_carries_the_energy_score():
    torch.manual_seed(0)
    samples = _samples(make_records(8, seed=2))
    EnhancedSQLIntentTransformer.prepare_samples(samples, "code")
    assert all(s.text == text_inputs.code_for_tokens(s.code) for s in samples)
    options = ModelOptions(hidden_size=32, num_layers=1, num_heads=2, max_length=64, vocab_size=400)
    new = EnhancedSQLIntentTransformer.from_config(options, samples)
    model = new.model.eval()
    assert new.kwargs["encoder_config"]["hidden_size"] == 32 and new.kwargs["encoder_config"]["vocab_size"] == 400
    batch = next(iter(_loader("transformer", samples, new.tokenizer)))
    out = model.forward_batch(batch, torch.device("cpu"))
    logits, anomaly, _ = model(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(out.logits, logits) and torch.equal(out.anomaly_score, anomaly)
    assert torch.equal(out.labels, batch["y"]) and out.logits.shape == (4, 2)
    assert model.has_anomaly_score and model.warmup and not model.needs_graphs


def test_model_types_are_defined_once():
    from cli_args import build_parser
    from streamguard.core import model_types
    from streamguard.pipeline import params

    assert params.MODEL_TYPES is model_types.MODEL_TYPES and params.MODEL_DEFAULTS is model_types.MODEL_DEFAULTS
    assert tuple(MODEL_CLASSES) == model_types.MODEL_TYPES
    choices = next(a.choices for a in build_parser()._actions if "--model-type" in a.option_strings)
    assert tuple(choices) == model_types.MODEL_TYPES
    assert set(model_types.MODEL_SIZES) == set(model_types.MODEL_TYPES)


def test_token_dropout_changes_training_texts_only_seeded_by_epoch():
    records = make_records(6, seed=4)
    samples = _samples(records)
    text_inputs.attach_texts(samples, "marked-gadget")
    splits = {"train": samples, "validation": samples}
    tok = lambda **kw: engine.get_dataloaders("transformer", splits, batch_size=4, tokenizer=object(),  # noqa: E731
                                              max_length=64, **kw)
    loaders = tok(token_dropout=0.5, seed=7)
    train, val = loaders["train"].dataset, loaders["validation"].dataset
    texts = [s.text for s in samples]
    assert [val[i][0] for i in range(len(samples))] == texts                     # evaluation reads whole texts
    dropped = [train[i][0] for i in range(len(samples))]
    assert dropped != texts and all(len(d) < len(t) for d, t in zip(dropped, texts) if len(t.split()) > 8)
    assert [tok(token_dropout=0.5, seed=7)["train"].dataset[i][0] for i in range(len(samples))] == dropped
    assert [tok(token_dropout=0.5, seed=8)["train"].dataset[i][0] for i in range(len(samples))] != dropped
    assert [tok(seed=7)["train"].dataset[i][0] for i in range(len(samples))] == texts   # 0: off


def test_language_balance_draws_a_rare_language_more_often_seeded_by_epoch():
    from entry_errors import EntryError

    records = [dict(r, id=f"r{i}") for i, r in enumerate(make_records(40, seed=2, java_every=0))]
    samples = _samples(records)
    for s in samples[:4]:
        s.language = "java"  # 4 Java, 36 Python
    text_inputs.attach_texts(samples, "marked-gadget")
    splits = {"train": samples, "validation": samples}
    load = lambda **kw: engine.get_dataloaders("transformer", splits, batch_size=4, tokenizer=object(),  # noqa: E731
                                               max_length=64, **kw)

    def drawn(loader):
        return list(loader.sampler) if loader.sampler is not None else None

    even = load(language_balance=1.0, seed=7)
    picks = drawn(even["train"])
    assert len(picks) == len(samples)                          # an epoch is still one split's worth of draws
    java = sum(samples[i].language == "java" for i in picks)
    assert 10 <= java <= 30                                    # about half, against 4 of 40 as they occur
    assert drawn(load(language_balance=1.0, seed=7)["train"]) == picks       # seeded
    assert drawn(load(language_balance=1.0, seed=8)["train"]) != picks       # a new draw each epoch
    assert list(even["validation"].sampler) == list(range(len(samples)))     # evaluation reads every record once
    _, shares = datamod.language_sampler(samples, 0.5, seed=1)
    assert shares["java"][0] == pytest.approx(0.1) and shares["java"][1] == pytest.approx(2 / (2 + 6))
    assert load(seed=7)["train"].sampler.__class__.__name__ == "RandomSampler"  # 0: shuffled as before
    ddp = engine.Runtime(device=torch.device("cpu"), rank=0, world_size=2)
    with pytest.raises(EntryError, match="language-balance is not available with distributed training"):
        load(language_balance=0.5, seed=7, rt=ddp)


def test_language_balance_flag_is_checked():
    from cli_args import parse_args
    from entry_errors import EntryError

    assert parse_args(["--model-type", "gnn", "--language-balance", "0.5"]).language_balance == 0.5
    with pytest.raises(EntryError, match=r"--language-balance must be in \[0, 1\], got 1.5"):
        parse_args(["--model-type", "gnn", "--language-balance", "1.5"])
