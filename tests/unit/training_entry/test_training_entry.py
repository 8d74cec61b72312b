"""The SageMaker entry script end to end on tiny generated data (train, evaluate, resume, fine-tune, failure)."""

from __future__ import annotations

import copy
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch

from tests.support.entry_data import (ENTRY_DIR, TINY_GNN, TINY_TRANSFORMER, fake_graphs_module, isolate_entry,
                                     make_channels, make_records, real_graphs_available, write_jsonl)

import artifacts  # noqa: E402  (training_entry is on sys.path via tests.support.entry_data)
import train_enhanced_models as entry  # noqa: E402
from models import build_model  # noqa: E402

SCRIPT = ENTRY_DIR / "train_enhanced_models.py"
METRIC_REGEXES = {name: re.compile(rf"{name}=(.*?);") for name in ("Train Loss", "Train Acc", "Val Acc")}


@pytest.fixture(autouse=True)
def _graphs_and_env(monkeypatch, tmp_path):
    isolate_entry(monkeypatch, tmp_path)


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = entry.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def epoch_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "Train Loss=" in line]


def assert_metric_lines(out: str, epochs: int) -> None:
    lines = epoch_lines(out)
    assert len(lines) == epochs, out
    for line in lines:
        for name, rx in METRIC_REGEXES.items():
            m = rx.search(line)
            assert m, f"{name} missing in {line!r}"
            float(m.group(1))
        assert "Val F1=" in line and "Val FPR=" in line


def assert_metrics_shape(m: dict) -> None:
    assert set(m) == {"n", "accuracy", "precision", "recall", "f1", "fpr", "roc_auc", "confusion_matrix"}
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    assert tn + fp + fn + tp == m["n"]
    assert m["accuracy"] == pytest.approx((tn + tp) / m["n"])


def make_tarball(model_dir: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        for f in sorted(model_dir.rglob("*")):
            tf.add(f, arcname=str(f.relative_to(model_dir)), recursive=False)
    return dest


# ------------------------------------------------------------------------------- shared models
@pytest.fixture(scope="module")
def gnn_run(tmp_path_factory):
    """One 2-epoch GNN training run on prepared channels (shared by several tests)."""
    mp = pytest.MonkeyPatch()
    if not real_graphs_available():
        mp.setitem(sys.modules, "streamguard.core.graphs", fake_graphs_module())
    root = tmp_path_factory.mktemp("gnn")
    ch = make_channels(root / "data", with_graphs=True)
    argv = ["--model-type", "gnn", "--epochs", "2", "--batch-size", "8", "--learning-rate", "0.005",
            "--seed", "3", *TINY_GNN, "--checkpoint-dir", "none", "--train", ch["train"],
            "--validation", ch["validation"], "--test", ch["test"], "--model-dir", root / "model",
            "--output-data-dir", root / "out"]
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = entry.main([str(a) for a in argv])
    mp.undo()
    return {"rc": rc, "out": buf.getvalue(), "root": root, "channels": ch, "model_dir": root / "model"}


# ---------------------------------------------------------------------------------------- args
def test_sagemaker_style_hyperparameters_are_accepted():
    args = entry.parse_args(["--model-type", "gnn", "--epochs", "3", "--batch-size", "16", "--learning-rate",
                             "1e-3", "--fine-tune", "True", "--sagemaker_program", "train_enhanced_models.py",
                             "--sagemaker_region", "eu-west-1", "--sagemaker_container_log_level=20",
                             "--max_train_samples", "5", "--seed", '"7"'])
    assert (args.epochs, args.batch_size, args.learning_rate, args.fine_tune) == (3, 16, 1e-3, True)
    assert args.max_train_samples == 5 and args.seed == 7
    assert entry.parse_args(["--model-type", "transformer", "--fine-tune", "False"]).fine_tune is False
    assert entry.parse_args(["--model-type", "gnn", "--fine-tune", "--epochs", "2"]).fine_tune is True


@pytest.mark.parametrize(("argv", "message"), [
    (["--model-type", "gnn", "--no-such-flag", "1"], "unrecognized --no-such-flag"),
    (["--model-type", "cnn"], "invalid choice"),
    (["--model-type", "gnn", "--epochs", "0"], "--epochs must be >= 1"),
    (["--model-type", "transformer", "--token-dropout", "1"], "--token-dropout must be in [0, 1)"),
    (["--model-type", "gnn", "--embedding-init", "random"], "invalid choice"),
    (["--model-type", "gnn", "--weight-averaging", "ema", "--ema-decay", "1"], "--ema-decay must be in (0, 1)"),
    (["--model-type", "gnn", "--fine-tune", "maybe"], "True or False"),
    (["--epochs", "2"], "--model-type gnn|transformer is required"),
])
def test_bad_arguments_fail_with_a_clear_message_in_the_failure_file(argv, message, capsys, tmp_path):
    rc, _, err = run_main(argv, capsys)
    assert rc == entry.DETERMINISTIC_EXIT_CODE  # a retry would fail the same way
    assert message in err
    assert message in (tmp_path / "sm_output" / "failure").read_text()


# ------------------------------------------------------------------------------------ training
def test_gnn_training_writes_the_model_directory(gnn_run):
    assert gnn_run["rc"] == 0, gnn_run["out"]
    assert_metric_lines(gnn_run["out"], epochs=2)
    md = gnn_run["model_dir"]
    for name in ("model.safetensors", "config.json", "node_vocab.json", "metrics.json", "history.json",
                 "baseline.json", "test_predictions.jsonl"):
        assert (md / name).is_file(), name
    cfg = json.loads((md / "config.json").read_text())
    assert cfg["model_type"] == "gnn" and cfg["model_kwargs"]["hidden_channels"] == 16
    assert cfg["train_label_counts"] == {"0": 16, "1": 16}
    assert cfg["hyperparameters"]["learning_rate"] == 0.005
    assert (cfg["weight_averaging"], cfg["ema_decay"]) == ("none", None)  # the default: the trained weights
    g = importlib.import_module("streamguard.core.graphs")

    vocab = json.loads((md / "node_vocab.json").read_text())
    assert vocab["featurizer_version"] == g.FEATURIZER_VERSION == cfg["featurizer_version"]
    assert vocab["node_kinds"] == list(g.NODE_KINDS)

    model = build_model("gnn", cfg["model_kwargs"])
    artifacts.load_weights(model, md / "model.safetensors")  # strict: every tensor present

    metrics = json.loads((md / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}
    assert_metrics_shape(metrics["validation"])
    assert metrics["validation"]["n"] == 12 and metrics["test"]["n"] == 12

    history = json.loads((md / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"epoch", "train_loss", "train_acc", "val_acc", "val_f1", "val_fpr", "seconds"} <= set(history[0])
    best = max(history, key=lambda h: (h["val_f1"], h["val_acc"]))
    assert metrics["validation"]["f1"] == pytest.approx(best["val_f1"])  # measured at the best epoch

    rows = [json.loads(line) for line in (md / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert {"id", "label", "score", "pred", "cwe", "language"} <= set(rows[0])
    assert all(r["pred"] == int(r["score"] >= 0.5) for r in rows)
    acc = sum(r["pred"] == r["label"] for r in rows) / len(rows)
    assert metrics["test"]["accuracy"] == pytest.approx(acc)

    baseline = json.loads((md / "baseline.json").read_text())
    assert baseline["v"] == 1 and len(baseline["scores"]) == 12 == len(baseline["code_length"])
    assert len(baseline["graph_nodes"]) == 12
    assert baseline["language_counts"] == {"python": 6, "java": 6}
    assert baseline["cwe_counts"] == {"CWE-89": 12}
    assert sum(baseline["score_histogram"]["counts"]) == 12
    for name in ("metrics.json", "history.json"):
        assert (gnn_run["root"] / "out" / name).read_text() == (md / name).read_text()


def test_transformer_training_through_the_cli_with_sagemaker_env(tmp_path):
    ch = make_channels(tmp_path / "data", n_train=24, n_val=8, n_test=0)
    (ch["test"] / "data.jsonl").unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update({"SM_CHANNEL_TRAIN": str(ch["train"]), "SM_CHANNEL_VALIDATION": str(ch["validation"]),
                "SM_MODEL_DIR": str(tmp_path / "model"), "SM_OUTPUT_DATA_DIR": str(tmp_path / "out"),
                "SM_OUTPUT_DIR": str(tmp_path / "sm_output"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model-type", "transformer", "--epochs", "2",
                           "--batch-size", "8", "--learning-rate", "0.002", "--seed", "1", *TINY_TRANSFORMER,
                           "--sagemaker_program", "train_enhanced_models.py"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_metric_lines(proc.stdout, epochs=2)
    md = tmp_path / "model"
    cfg = json.loads((md / "config.json").read_text())
    assert cfg["model_type"] == "transformer" and cfg["max_length"] == 64
    assert cfg["text_input"] == "marked-gadget"  # the default input: statements that reach a sink, marked
    assert "Transformer input: code gadgets of 32 records" in proc.stdout
    assert cfg["model_kwargs"]["encoder_config"]["hidden_size"] == 32
    assert (md / "tokenizer" / "tokenizer.json").is_file()
    metrics = json.loads((md / "metrics.json").read_text())
    assert set(metrics) == {"validation"}
    assert_metrics_shape(metrics["validation"])
    assert not (md / "test_predictions.jsonl").exists()
    baseline = json.loads((md / "baseline.json").read_text())
    assert len(baseline["scores"]) == 8 and "graph_nodes" not in baseline
    assert json.loads((tmp_path / "out" / "history.json").read_text())[-1]["epoch"] == 2
    assert not (tmp_path / "sm_output" / "failure").exists()


# ------------------------------------------------------------------------------------ evaluate
def test_evaluate_raw_records_from_a_model_tarball(gnn_run, tmp_path, capsys):
    tarball = make_tarball(gnn_run["model_dir"], tmp_path / "model.tar.gz")
    raw = make_records(6, seed=20)
    raw[1].pop("label")                       # unlabelled: scored, not in the metrics
    raw[2] = {"id": "bad", "label": 1}         # no code: an error row, not dropped
    raw[3].pop("id")                           # id derived from the content
    lines = [json.dumps(r) for r in raw] + ["{not json"]
    test_file = tmp_path / "raw.jsonl"
    test_file.write_text("\n".join(lines) + "\n")
    rc, out, err = run_main(["--mode", "evaluate", "--model", tarball, "--test", test_file,
                             "--output-data-dir", tmp_path / "eval"], capsys)
    assert rc == 0, out + err
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 7
    assert rows[0]["id"] == raw[0]["id"] and 0.0 <= rows[0]["score"] <= 1.0
    assert rows[1]["label"] is None and rows[1]["score"] is not None
    assert rows[2]["id"] == "bad" and rows[2]["score"] is None and "missing field 'code'" in rows[2]["error"]
    assert rows[3]["id"] and rows[3]["score"] is not None
    assert rows[6]["score"] is None and "invalid JSON" in rows[6]["error"]
    assert rows[0]["language"] == "python" and rows[0]["cwe"] == "CWE-89"
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result["rows"] == 7 and result["scored"] == 5 and result["errors"] == 2 and result["labelled"] == 4
    assert_metrics_shape(result["test"])
    assert result["test"]["n"] == 4
    scored = [r for r in rows if r["score"] is not None and r["label"] is not None]
    assert result["test"]["accuracy"] == pytest.approx(sum(r["pred"] == r["label"] for r in scored) / 4)


def test_evaluate_matches_training_time_test_predictions(gnn_run, tmp_path, capsys):
    """Evaluate mode on prepared records (a model channel dir holding model.tar.gz) reproduces the scores."""
    channel = tmp_path / "model_channel"
    channel.mkdir()
    make_tarball(gnn_run["model_dir"], channel / "model.tar.gz")
    rc, out, err = run_main(["--mode", "evaluate", "--model", channel, "--test", gnn_run["channels"]["test"],
                             "--output-data-dir", tmp_path / "eval", "--model-type", "gnn"], capsys)
    assert rc == 0, out + err
    train_rows = [json.loads(x) for x in (gnn_run["model_dir"] / "test_predictions.jsonl").read_text().splitlines()]
    eval_rows = [json.loads(x) for x in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in eval_rows] == [r["id"] for r in train_rows]
    for a, b in zip(eval_rows, train_rows):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    metrics = json.loads((gnn_run["model_dir"] / "metrics.json").read_text())["test"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]["accuracy"] == metrics["accuracy"]


def test_tarball_with_unsafe_members_is_refused(tmp_path):
    for name, kind in (("../evil.txt", tarfile.REGTYPE), ("/abs.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        path = tmp_path / "bad.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
                tf.addfile(info)
            else:
                info.size = 1
                tf.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(ValueError, match="refusing member"):
            artifacts.resolve_model_dir(path, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


# ------------------------------------------------------------------------ resume and fine-tune
def test_optimizer_state_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        optimizer.step()
    artifacts.save_optimizer_state(optimizer, tmp_path / "opt.safetensors")
    twin = copy.deepcopy(model)
    fresh = torch.optim.AdamW(twin.parameters(), lr=0.5)
    artifacts.load_optimizer_state(fresh, tmp_path / "opt.safetensors")
    want, got = optimizer.state_dict(), fresh.state_dict()
    assert got["param_groups"] == want["param_groups"]  # lr, betas (a tuple again), weight decay...
    assert want["state"].keys() == got["state"].keys() and len(want["state"]) == 4
    for param, entries in want["state"].items():
        assert entries.keys() == got["state"][param].keys()
        for name, value in entries.items():
            assert torch.equal(value, got["state"][param][name]), (param, name)
    # The restored optimizer takes exactly the step the original takes.
    x = torch.randn(5, 4)
    for net, opt in ((model, optimizer), (twin, fresh)):
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError, match="not an optimizer state"):
        artifacts.load_optimizer_state(fresh, tmp_path / "weights.safetensors")


@pytest.mark.parametrize("averaging", ["none", "ema"])
def test_resume_after_a_kill_continues_from_the_checkpoint(averaging, tmp_path, capsys):
    from safetensors.torch import load_file

    ch = make_channels(tmp_path / "data", n_train=24, n_val=8)
    common = ["--model-type", "gnn", "--batch-size", "8", "--learning-rate", "0.005", "--seed", "5", *TINY_GNN,
              "--patience", "0", "--weight-averaging", averaging, "--train", ch["train"],
              "--validation", ch["validation"], "--checkpoint-dir", tmp_path / "ckpt",
              "--output-data-dir", tmp_path / "out"]
    # First "container": one epoch then the job dies (its model dir is lost with it).
    rc, out, err = run_main([*common, "--epochs", "1", "--model-dir", tmp_path / "model1"], capsys)
    assert rc == 0, out + err
    state = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())
    assert state["epoch"] == 1 and state["rng"]["seed"] == 5 and len(state["history"]) == 1
    assert (tmp_path / "ckpt" / "optimizer-e00001.safetensors").is_file()
    assert (tmp_path / "ckpt" / "last-e00001.safetensors").is_file()
    # With EMA the checkpoint also holds the shadow weights and the update count (3 steps of 8 of 24).
    assert (tmp_path / "ckpt" / "ema-e00001.safetensors").is_file() == (averaging == "ema")
    assert state.get("ema", {}).get("updates") == (3 if averaging == "ema" else None)
    # Second container, fresh model dir, more epochs: resumes at epoch 2.
    rc, out, err = run_main([*common, "--epochs", "3", "--model-dir", tmp_path / "model2"], capsys)
    assert rc == 0, out + err
    assert "Resuming from epoch 1" in out
    assert ("shadow weights restored from the checkpoint (3 updates)" in out) == (averaging == "ema")
    assert [int(re.search(r"Epoch (\d+)/", line).group(1)) for line in epoch_lines(out)] == [2, 3]
    history = json.loads((tmp_path / "model2" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0] == state["history"][0]
    # An uninterrupted 3-epoch run gives the same numbers (per-epoch seeding, restored optimizer and
    # EMA shadow): the same history and bit-identical final weights.
    rc, out, err = run_main([*common[:-4], "--output-data-dir", tmp_path / "out3", "--checkpoint-dir", "none",
                             "--epochs", "3", "--model-dir", tmp_path / "model3"], capsys)
    assert rc == 0, out + err
    straight = json.loads((tmp_path / "model3" / "history.json").read_text())
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in history] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in straight]
    resumed, uninterrupted = (load_file(str(tmp_path / m / "model.safetensors")) for m in ("model2", "model3"))
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    assert (tmp_path / "model2" / "metrics.json").read_text() == (tmp_path / "model3" / "metrics.json").read_text()


def test_fine_tune_starts_from_the_model_channel_with_its_sizes(gnn_run, tmp_path, capsys):
    ch = gnn_run["channels"]
    rc, out, err = run_main(["--model-type", "gnn", "--epochs", "1", "--batch-size", "8", "--learning-rate",
                             "0.001", "--fine-tune", "True", "--hidden-size", "64", "--train", ch["train"],
                             "--validation", ch["validation"], "--model", gnn_run["model_dir"],
                             "--model-dir", tmp_path / "model"], capsys)
    assert rc == 0, out + err
    assert "Fine-tuning from" in out
    prev = json.loads((gnn_run["model_dir"] / "config.json").read_text())
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["model_kwargs"] == prev["model_kwargs"]  # sizes from the saved config, not --hidden-size
    assert cfg["fine_tuned_from"] == str(gnn_run["model_dir"])
    from safetensors.torch import load_file

    before = load_file(gnn_run["model_dir"] / "model.safetensors")
    after = load_file(tmp_path / "model" / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_fine_tune_rejects_a_model_of_the_other_type(gnn_run, tmp_path, capsys):
    ch = gnn_run["channels"]
    rc, _, err = run_main(["--model-type", "transformer", "--epochs", "1", "--fine-tune", "--train", ch["train"],
                           "--validation", ch["validation"], "--model", gnn_run["model_dir"],
                           "--model-dir", tmp_path / "model", *TINY_TRANSFORMER], capsys)
    assert rc == entry.DETERMINISTIC_EXIT_CODE  # a retry would fail the same way
    assert "holds a gnn model, not transformer" in (tmp_path / "sm_output" / "failure").read_text()


def test_model_sha256_is_checked_before_the_model_is_loaded(gnn_run, tmp_path, capsys):
    """Evaluate and fine-tune refuse a model channel whose archive differs from the registry's sha256."""
    import hashlib

    channel = tmp_path / "model-channel"
    channel.mkdir()
    tarball = make_tarball(gnn_run["model_dir"], channel / "model.tar.gz")
    good = hashlib.sha256(tarball.read_bytes()).hexdigest()
    test_file = tmp_path / "raw.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in make_records(4, seed=21)))
    evaluate = ["--mode", "evaluate", "--model", channel, "--test", test_file]
    rc, out, err = run_main([*evaluate, "--model-sha256", good, "--output-data-dir", tmp_path / "ok"], capsys)
    assert rc == 0, out + err
    rc, _, _ = run_main([*evaluate, "--model-sha256", "0" * 64, "--output-data-dir", tmp_path / "bad"], capsys)
    assert rc == entry.DETERMINISTIC_EXIT_CODE  # a retry would fail the same way
    failure = (tmp_path / "sm_output" / "failure").read_text()
    assert "differs from the registry's" in failure and "0" * 64 in failure
    assert not (tmp_path / "bad" / "predictions.jsonl").exists()
    ch = gnn_run["channels"]
    rc, _, _ = run_main(["--model-type", "gnn", "--epochs", "1", "--fine-tune", "--model", channel,
                         "--model-sha256", "f" * 64, "--train", ch["train"], "--validation", ch["validation"],
                         "--model-dir", tmp_path / "ft"], capsys)
    assert rc == entry.DETERMINISTIC_EXIT_CODE  # a retry would fail the same way
    assert "differs from the registry's" in (tmp_path / "sm_output" / "failure").read_text()
    assert not (tmp_path / "ft" / "model.safetensors").exists()


# ------------------------------------------------------------------------------------- failures
def test_empty_train_channel_fails_with_a_clear_failure_file(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "data.jsonl").write_text("")
    val = write_jsonl(tmp_path / "val" / "data.jsonl", make_records(4))
    rc, _, err = run_main(["--model-type", "gnn", "--epochs", "1", "--train", tmp_path / "train",
                           "--validation", val, "--model-dir", tmp_path / "model"], capsys)
    assert rc == entry.DETERMINISTIC_EXIT_CODE  # a retry would fail the same way
    failure = (tmp_path / "sm_output" / "failure").read_text()
    assert "train channel" in failure and "has no records" in failure
    assert "has no records" in err


def test_bad_training_record_names_file_and_line(tmp_path, capsys):
    recs = make_records(6)
    recs[4] = {"id": "x", "code": "def f(): pass", "label": 7, "language": "python"}
    train = write_jsonl(tmp_path / "train" / "data.jsonl", recs)
    rc, _, _ = run_main(["--model-type", "gnn", "--epochs", "1", "--train", train, "--validation", train,
                         "--model-dir", tmp_path / "model"], capsys)
    assert rc == entry.DETERMINISTIC_EXIT_CODE  # a retry would fail the same way
    failure = (tmp_path / "sm_output" / "failure").read_text()
    assert f"{train}:5" in failure and "label 7" in failure


def test_single_class_training_data_is_rejected(tmp_path, capsys):
    recs = [r for r in make_records(12) if r["label"] == 1]
    train = write_jsonl(tmp_path / "train.jsonl", recs)
    rc, _, _ = run_main(["--model-type", "gnn", "--epochs", "1", "--train", train, "--validation", train,
                         "--model-dir", tmp_path / "model"], capsys)
    assert rc == entry.DETERMINISTIC_EXIT_CODE  # a retry would fail the same way
    assert "only one class" in (tmp_path / "sm_output" / "failure").read_text()


# ---------------------------------------------------------------------------- pretrained encoders
def test_pretrained_name_missing_offline_fails_naming_the_offline_path(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train = write_jsonl(tmp_path / "train.jsonl", make_records(8))
    rc, _, _ = run_main(["--model-type", "transformer", "--epochs", "1", "--pretrained", "streamguard-none/missing",
                         "--train", train, "--validation", train, "--model-dir", tmp_path / "model"], capsys)
    assert rc == 1
    failure = (tmp_path / "sm_output" / "failure").read_text()
    assert "HF_HUB_OFFLINE is set" in failure and "--pretrained <local dir>" in failure


def test_transformer_from_a_local_pretrained_dir_then_evaluate(tmp_path, capsys, monkeypatch):
    from models.transformer import EnhancedSQLIntentTransformer, small_roberta_config, train_bpe_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = train_bpe_tokenizer((r["code"] for r in make_records(30, seed=30)), vocab_size=400, min_frequency=1)
    cfg = small_roberta_config(len(tok), hidden_size=32, num_layers=1, num_heads=2, max_length=64,
                               pad_token_id=tok.pad_token_id)
    EnhancedSQLIntentTransformer(cfg).encoder.save_pretrained(str(tmp_path / "enc"))
    tok.save_pretrained(str(tmp_path / "enc"))
    ch = make_channels(tmp_path / "data", n_train=16, n_val=8, n_test=6)
    rc, out, err = run_main(["--model-type", "transformer", "--epochs", "1", "--batch-size", "8",
                             "--learning-rate", "0.001", "--max-length", "64", "--pretrained", tmp_path / "enc",
                             "--train", ch["train"], "--validation", ch["validation"],
                             "--model-dir", tmp_path / "model"], capsys)
    assert rc == 0, out + err
    assert_metric_lines(out, epochs=1)
    cfg_saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg_saved["pretrained"] == str(tmp_path / "enc")
    assert cfg_saved["model_kwargs"]["encoder_config"]["hidden_size"] == 32

    rc, out, err = run_main(["--mode", "evaluate", "--model", tmp_path / "model", "--test", ch["test"],
                             "--output-data-dir", tmp_path / "eval"], capsys)
    assert rc == 0, out + err
    rows = [json.loads(x) for x in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(0 <= r["score"] <= 1 and isinstance(r["anomaly_score"], float) for r in rows)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]["n"] == 6


def test_max_train_samples_takes_a_seeded_subset(tmp_path, capsys):
    ch = make_channels(tmp_path / "data", n_train=40, n_val=8)
    argv = ["--model-type", "gnn", "--epochs", "1", "--max-train-samples", "10", *TINY_GNN,
            "--train", ch["train"], "--validation", ch["validation"]]
    rc, out, err = run_main([*argv, "--model-dir", tmp_path / "m1", "--checkpoint-dir", "none"], capsys)
    assert rc == 0, out + err
    counts = json.loads((tmp_path / "m1" / "config.json").read_text())["train_label_counts"]
    assert sum(counts.values()) == 10 and "train=10 " in out


# ------------------------------------------------------------------------------------- progress
def test_progress_prints_plain_lines_in_logs_that_no_metric_regex_matches():
    import re as _re

    from progress import EpochProgress

    from streamguard.jobs.metrics import METRIC_DEFINITIONS

    log = io.StringIO()  # not a terminal: a job log
    with EpochProgress(2, 5, interval_s=1e-9, stream=log) as progress:
        for done in range(1, 5):
            progress(done, 4, 0.25 * done)
    lines = log.getvalue().splitlines()
    assert lines == [f"progress: epoch=2/5 batch={d}/4 pct={25.0 * d:.1f} loss={0.25 * d:.6f} "
                     f"elapsed_s={float(line.rsplit('=', 1)[1]):.1f}" for d, line in zip(range(1, 4), lines)]
    assert not [d["Name"] for d in METRIC_DEFINITIONS for line in lines if _re.search(d["Regex"], line)]
    quiet = io.StringIO()
    with EpochProgress(1, 1, interval_s=3600, stream=quiet) as progress:  # a short epoch prints nothing
        progress(1, 2, 0.5)
    with EpochProgress(1, 1, interval_s=1e-9, stream=quiet, enabled=False) as progress:  # not rank 0
        progress(1, 2, 0.5)
    assert quiet.getvalue() == ""


def test_progress_draws_a_rich_bar_on_a_terminal():
    from progress import EpochProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    with EpochProgress(1, 3, interval_s=1e-9, stream=screen) as progress:
        for done in range(1, 11):
            progress(done, 10, 0.1)
    out = screen.getvalue()
    assert "epoch 1/3" in out and "10/10" in out and "progress: " not in out


def test_a_checkpoint_json_newer_than_its_weights_resumes_from_the_newest_consistent_epoch(tmp_path, capsys):
    """SageMaker's asynchronous checkpoint copy can restore epoch 3's JSON beside older weights."""
    import shutil

    if str(ENTRY_DIR) not in sys.path:
        sys.path.insert(0, str(ENTRY_DIR))
    import artifacts

    ch = make_channels(tmp_path / "data", n_train=24, n_val=8)
    ckpt = tmp_path / "ckpt"
    common = ["--model-type", "gnn", "--batch-size", "8", "--learning-rate", "0.005", "--seed", "5", *TINY_GNN,
              "--patience", "0", "--train", ch["train"], "--validation", ch["validation"],
              "--checkpoint-dir", ckpt, "--output-data-dir", tmp_path / "out"]
    rc, out, err = run_main([*common, "--epochs", "3", "--model-dir", tmp_path / "model1"], capsys)
    assert rc == 0, out + err
    # Every weights file records its epoch; two epochs are kept.
    assert artifacts.file_epoch(ckpt / "last-e00003.safetensors") == 3
    assert artifacts.file_epoch(ckpt / "optimizer-e00002.safetensors") == 2
    assert not (ckpt / "last-e00001.safetensors").exists()
    assert json.loads((ckpt / "checkpoint.json").read_text())["epoch"] == 3
    # The copy caught mid-way: epoch 3's weights are epoch 2's bytes under epoch 3's name.
    shutil.copy(ckpt / "last-e00002.safetensors", ckpt / "last-e00003.safetensors")
    assert artifacts.checkpoint_problem(ckpt, json.loads((ckpt / "checkpoint.json").read_text())) == \
        "last-e00003.safetensors records epoch 2, not 3"
    rc, out, err = run_main([*common, "--epochs", "4", "--model-dir", tmp_path / "model2"], capsys)
    assert rc == 0, out + err
    assert "checkpoint of epoch 3" in out and "records epoch 2, not 3" in out
    assert "Resuming from epoch 2" in out
    assert [int(re.search(r"Epoch (\d+)/", line).group(1)) for line in epoch_lines(out)] == [3, 4]
    # Nothing consistent at all (both weights gone): a clear line, and training starts over.
    for path in ckpt.glob("last-e*.safetensors"):
        path.unlink()
    rc, out, err = run_main([*common, "--epochs", "1", "--model-dir", tmp_path / "model3"], capsys)
    assert rc == 0, out + err
    assert "no consistent checkpoint" in out and "Resuming" not in out


def test_resume_from_an_s3_checkpoint_uri_under_moto(tmp_path, capsys, moto_server):
    """The local backend restores ``CheckpointConfig.S3Uri`` from (moto) S3 as SageMaker does, JSON ahead of weights."""
    import shutil

    import boto3

    from streamguard import storage
    from streamguard.backends.local import LocalTrainingBackend
    from streamguard.jobs.request import LOCAL_REGION, build_training_request
    from streamguard.sourcedir import build_sourcedir_tarball

    boto3.client("s3").create_bucket(Bucket="sg-ckpt")
    ch = make_channels(tmp_path / "data", n_train=24, n_val=8)
    hps = {"model-type": "gnn", "batch-size": 8, "learning-rate": 0.005, "seed": 5, "hidden-size": 16,
           "num-layers": 1, "patience": 0}
    # The container that died: two epochs checkpointed, then the copy to S3 caught mid-way (epoch 2's
    # JSON went out, its weights file still holds epoch 1).
    ckpt = tmp_path / "ckpt"
    rc, out, err = run_main(["--model-type", "gnn", "--batch-size", "8", "--learning-rate", "0.005", "--seed", "5",
                             *TINY_GNN, "--patience", "0", "--train", ch["train"], "--validation", ch["validation"],
                             "--checkpoint-dir", ckpt, "--output-data-dir", tmp_path / "out", "--epochs", "2",
                             "--model-dir", tmp_path / "model1"], capsys)
    assert rc == 0, out + err
    artifacts.save_weights(build_model("gnn", json.loads((ckpt / "checkpoint.json").read_text())["model_kwargs"]),
                           ckpt / "last-e00002.safetensors", epoch=1)
    ck_uri = "s3://sg-ckpt/runs/k/checkpoints/gnn"
    storage.upload_dir(str(ckpt), ck_uri)
    for name in ("train", "validation"):
        storage.upload_dir(str(ch[name]), f"s3://sg-ckpt/data/{name}")
    tarball, _ = build_sourcedir_tarball(tmp_path / "src" / "sourcedir.tar.gz")
    storage.upload_file(str(tarball), "s3://sg-ckpt/code/sourcedir.tar.gz")
    request = build_training_request(
        job_name="sg-gnn-s3-resume-0123456789-a2", model_type="gnn",
        channels={c: f"s3://sg-ckpt/data/{c}" for c in ("train", "validation")}, output_uri="s3://sg-ckpt/jobs",
        source_dir_uri="s3://sg-ckpt/code/sourcedir.tar.gz", hyperparameters={**hps, "epochs": 3},
        role_arn="arn:aws:iam::000000000000:role/local", region=LOCAL_REGION, max_runtime_s=300,
        checkpoint_uri=ck_uri,
    )
    backend = LocalTrainingBackend(tmp_path / "jobs")
    backend.create_training_job(request)
    status = backend.wait(request["TrainingJobName"], timeout_s=240)
    log = backend.job_log_path(request["TrainingJobName"]).read_text()
    assert status["TrainingJobStatus"] == "Completed", (status.get("FailureReason"), log[-3000:])
    assert f"checkpoints: resuming from {ck_uri}" in log
    assert "last-e00002.safetensors records epoch 1, not 2" in log and "Resuming from epoch 1" in log
    assert [int(m) for m in re.findall(r"Epoch (\d+)/3:", log)] == [2, 3]
    # The completed job's last checkpoint is back at the S3 URI, its weights of its own epoch.
    assert json.loads(storage.read_text(f"{ck_uri}/checkpoint.json"))["epoch"] == 3
    storage.download(f"{ck_uri}/last-e00003.safetensors", str(tmp_path / "back.safetensors"))
    assert artifacts.file_epoch(tmp_path / "back.safetensors") == 3
    # As on SageMaker, what the entry pruned in the container is deleted at the URI too: the
    # URI mirrors the job's checkpoint dir (the newest CHECKPOINT_KEEP epochs), not every epoch.
    local = backend.paths(request["TrainingJobName"]).checkpoints
    remote = {u.rsplit("/", 1)[1] for u in storage.list_dir(ck_uri, recursive=True)}
    assert remote == {p.name for p in local.iterdir()}
    assert "last-e00001.safetensors" not in remote and "checkpoint-e00002.json" in remote
