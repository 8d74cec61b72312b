"""`--weight-averaging ema`: the moving average of the weights, its flags, its checkpoint files, and
what the model dir holds (the average, recomputed here from the optimizer's steps)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.support.entry_data import TINY_GNN, isolate_entry, make_channels

import artifacts  # noqa: E402  (training_entry is on sys.path via tests.support.entry_data)
import train_enhanced_models as entry  # noqa: E402
from cli_args import parse_args  # noqa: E402
from entry_errors import EntryError  # noqa: E402
from weight_averaging import WeightEMA, warmup_decay  # noqa: E402


@pytest.fixture(autouse=True)
def _graphs_and_env(monkeypatch, tmp_path):
    isolate_entry(monkeypatch, tmp_path)


# ----------------------------------------------------------------------------------------- flags
def test_weight_averaging_is_off_by_default_and_ema_decay_defaults_to_0_99():
    args = parse_args(["--model-type", "gnn"])
    assert (args.weight_averaging, args.ema_decay) == ("none", 0.99)
    args = parse_args(["--model-type", "gnn", "--weight-averaging", "ema", "--ema_decay", "0.9"])
    assert (args.weight_averaging, args.ema_decay) == ("ema", 0.9)
    assert parse_args(["--model-type", "gnn", "--weight-averaging", '"ema"']).weight_averaging == "ema"  # SDK quoting


@pytest.mark.parametrize(("value", "message"), [
    ("0", "--ema-decay must be in (0, 1), got 0.0"),
    ("1", "--ema-decay must be in (0, 1), got 1.0"),
    ("-0.1", "--ema-decay must be in (0, 1), got -0.1"),
    ("x", "argument --ema-decay/--ema_decay: expected a number, got 'x'"),
    ("nan", "argument --ema-decay/--ema_decay: expected a finite number"),
])
def test_bad_ema_decay_is_refused_naming_the_flag(value, message):
    with pytest.raises(EntryError) as err:
        parse_args(["--model-type", "gnn", "--weight-averaging", "ema", "--ema-decay", value])
    assert message in str(err.value)


def test_unknown_weight_averaging_is_refused():
    with pytest.raises(EntryError, match=r"--weight-averaging.*invalid choice: 'swa'"):
        parse_args(["--model-type", "gnn", "--weight-averaging", "swa"])


# ---------------------------------------------------------------------------------- the average
def test_warmup_decay_starts_low_and_reaches_the_decay():
    assert warmup_decay(0.99, 0) == pytest.approx(0.1)
    assert warmup_decay(0.99, 1) == pytest.approx(2 / 11)
    assert warmup_decay(0.99, 63) == pytest.approx(64 / 73)
    assert warmup_decay(0.99, 10_000) == 0.99
    assert warmup_decay(0.05, 0) == 0.05  # a decay below the warm-up's is used from the start


def test_one_ema_step_is_the_formula_on_parameters_and_float_buffers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.BatchNorm1d(3),
                                torch.nn.Linear(3, 2))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    ema = WeightEMA(model, decay=0.99)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    expected = {k: v.clone() for k, v in init.items()}
    for step in range(2):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).square().sum().backward()  # train mode: BatchNorm's running stats move
        optimizer.step()
        ema.update(model)
        d = (1 + step) / (10 + step)  # below 0.99: the warm-up decides
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone()
    assert ema.updates == 2
    shadow, trained = ema.module.state_dict(), model.state_dict()
    assert {"2.running_mean", "2.running_var"} <= set(init)
    for k in init:
        assert torch.allclose(shadow[k], expected[k], rtol=1e-6, atol=1e-7), k
        if init[k].is_floating_point():
            assert not torch.allclose(shadow[k], trained[k]), k  # the average lags the trained weights
    assert shadow["2.num_batches_tracked"] == trained["2.num_batches_tracked"] == 2  # non-float: copied
    assert all(p.grad is None and not p.requires_grad for p in ema.module.parameters())
    ema.reset(model)
    assert ema.updates == 0 and all(torch.equal(shadow[k], trained[k]) for k in trained)


def test_ema_checkpoint_files_are_written_required_and_pruned(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    ema = WeightEMA(model)
    state = {"epoch": 0, "best": None, "ema": ema.state()}
    with pytest.raises(ValueError, match="go together"):
        artifacts.save_checkpoint(tmp_path, model, optimizer, state)  # an "ema" record without its weights
    for epoch in (1, 2, 3):
        artifacts.save_checkpoint(tmp_path, model, optimizer, {**state, "epoch": epoch}, ema=ema.module)
    assert artifacts.file_epoch(tmp_path / "ema-e00003.safetensors") == 3
    assert not (tmp_path / "ema-e00001.safetensors").exists()  # pruned with epoch 1's other files
    assert (tmp_path / "ema-e00002.safetensors").is_file()
    (tmp_path / "ema-e00003.safetensors").unlink()
    assert artifacts.checkpoint_problem(tmp_path, {**state, "epoch": 3}) == "ema-e00003.safetensors is missing"
    assert artifacts.load_checkpoint(tmp_path)["epoch"] == 2  # falls back to the complete epoch
    assert artifacts.checkpoint_problem(tmp_path, {"epoch": 3, "best": None}) is None  # no EMA: not needed


# ------------------------------------------------------------------------------ through the entry
class _StepRecorder:
    """The AdamW parameters before the first step and after every step (global optimizer hooks)."""

    def __init__(self):
        self.initial: list[torch.Tensor] | None = None
        self.after: list[list[torch.Tensor]] = []

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        def params(opt):
            return [p.detach().clone() for g in opt.param_groups for p in g["params"]]

        def pre(opt, *_):
            if self.initial is None:
                self.initial = params(opt)

        self._handles = [register_optimizer_step_pre_hook(pre),
                         register_optimizer_step_post_hook(lambda opt, *_: self.after.append(params(opt)))]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()

    def average(self, steps: int, start: list[torch.Tensor] | None = None, decay: float = 0.99) -> list:
        shadow = [t.clone() for t in (start if start is not None else self.initial)]
        for n, weights in enumerate(self.after[:steps]):
            d = min(decay, (1 + n) / (10 + n))
            shadow = [d * s + (1 - d) * w for s, w in zip(shadow, weights)]
        return shadow


def _param_names(model_dir) -> list[str]:
    from models import build_model

    cfg = json.loads((model_dir / "config.json").read_text())
    return [name for name, _ in build_model("gnn", cfg["model_kwargs"]).named_parameters()]


def _common(ch, tmp_path) -> list:
    return ["--model-type", "gnn", "--batch-size", "8", "--learning-rate", "0.01", "--seed", "5", *TINY_GNN,
            "--patience", "0", "--train", ch["train"], "--validation", ch["validation"],
            "--checkpoint-dir", tmp_path / "ckpt", "--output-data-dir", tmp_path / "out"]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ema_training_saves_the_average_recomputed_from_the_optimizer_steps(tmp_path, capsys, monkeypatch):
    import engine

    ch = make_channels(tmp_path / "data", n_train=24, n_val=8, n_test=8, with_graphs=True)
    scored: list[dict] = []  # the weights of every model engine.predict scores, in call order
    predict = engine.predict

    def spy(model, loader, rt):
        scored.append({k: v.detach().clone() for k, v in engine.unwrap(model).state_dict().items()})
        return predict(model, loader, rt)

    monkeypatch.setattr(engine, "predict", spy)
    with _StepRecorder() as rec:
        rc = entry.main([str(a) for a in [*_common(ch, tmp_path), "--test", ch["test"], "--epochs", "2",
                                          "--weight-averaging", "ema", "--model-dir", tmp_path / "model"]])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Weight averaging: EMA of the weights after every step, decay 0.99" in out
    assert len(rec.after) == 6  # 3 steps of 8 records per epoch
    md, ckpt = tmp_path / "model", tmp_path / "ckpt"
    cfg = json.loads((md / "config.json").read_text())
    assert (cfg["weight_averaging"], cfg["ema_decay"]) == ("ema", 0.99)
    assert cfg["hyperparameters"]["weight_averaging"] == "ema"
    state = json.loads((ckpt / "checkpoint.json").read_text())
    assert state["ema"]["updates"] == 6 and state["ema"]["decay"] == 0.99
    names = _param_names(md)
    best = cfg["best_epoch"]
    saved = load_file(str(md / "model.safetensors"))
    want = rec.average(3 * best)
    raw = rec.after[3 * best - 1]
    for name, w, r in zip(names, want, raw):
        assert _close(saved[name], w), name
    # The saved model is not the trained weights of that epoch: the average differs clearly.
    assert max((saved[n] - r).abs().max().item() for n, r in zip(names, raw)) > 1e-3
    assert all(torch.equal(saved[k], v) for k, v in load_file(str(ckpt / f"best-e{best:05d}.safetensors")).items())
    # The checkpoint keeps both: the trained weights (last) and the average after all 6 steps (ema).
    last, shadow = load_file(str(ckpt / "last-e00002.safetensors")), load_file(str(ckpt / "ema-e00002.safetensors"))
    assert all(torch.equal(last[n], r) for n, r in zip(names, rec.after[-1]))
    assert all(_close(shadow[n], w) for n, w in zip(names, rec.average(6)))
    # Each epoch's validation scored the average of that epoch (then the model dir's validation and
    # test passes, the saved weights), not the trained weights.
    assert len(scored) == 4
    for epoch in (1, 2):
        assert all(_close(scored[epoch - 1][n], w) for n, w in zip(names, rec.average(3 * epoch))), epoch
        assert not all(_close(scored[epoch - 1][n], r) for n, r in zip(names, rec.after[3 * epoch - 1]))
    assert all(torch.equal(scored[-1][n], saved[n]) for n in names)
    history = json.loads((md / "history.json").read_text())
    metrics = json.loads((md / "metrics.json").read_text())["validation"]
    assert metrics["accuracy"] == pytest.approx(history[best - 1]["val_acc"])
    assert metrics["roc_auc"] == pytest.approx(history[best - 1]["val_auc"])


def test_a_checkpoint_without_ema_resumed_with_ema_starts_the_average_from_its_weights(tmp_path, capsys):
    ch = make_channels(tmp_path / "data", n_train=24, n_val=8)
    common, ckpt = _common(ch, tmp_path), tmp_path / "ckpt"
    assert entry.main([str(a) for a in [*common, "--epochs", "1", "--model-dir", tmp_path / "m1"]]) == 0
    assert "ema" not in json.loads((ckpt / "checkpoint.json").read_text())
    assert not (ckpt / "ema-e00001.safetensors").exists()
    start = load_file(str(ckpt / "last-e00001.safetensors"))
    capsys.readouterr()
    with _StepRecorder() as rec:
        rc = entry.main([str(a) for a in [*common, "--epochs", "2", "--weight-averaging", "ema",
                                          "--model-dir", tmp_path / "m2"]])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "the checkpoint of epoch 1 has no EMA weights; the average starts from its weights" in out
    assert json.loads((ckpt / "checkpoint.json").read_text())["ema"]["updates"] == 3
    names = _param_names(tmp_path / "m2")
    shadow = load_file(str(ckpt / "ema-e00002.safetensors"))
    for name, w in zip(names, rec.average(3, start=[start[n] for n in names])):
        assert _close(shadow[name], w), name
    # And back: the EMA checkpoint resumed without averaging trains on and writes no EMA files.
    rc = entry.main([str(a) for a in [*common, "--epochs", "3", "--model-dir", tmp_path / "m3"]])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "holds EMA weights but --weight-averaging is none" in out
    assert "ema" not in json.loads((ckpt / "checkpoint.json").read_text())
    assert not (ckpt / "ema-e00003.safetensors").exists()
