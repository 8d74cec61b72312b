#!/usr/bin/env python
"""StreamGuard SageMaker script-mode entry: train or evaluate the Taint-Flow GNN or the SQL Intent Transformer.

Train:
    python train_enhanced_models.py --model-type gnn|transformer --epochs N --batch-size N
        --learning-rate X [--seed N] [--fine-tune]
Evaluate:
    python train_enhanced_models.py --mode evaluate --model <model dir | model.tar.gz> --test <jsonl | dir>
        --output-data-dir OUT

Paths default to the SageMaker container contract (`SM_CHANNEL_TRAIN`, `SM_CHANNEL_VALIDATION`,
`SM_CHANNEL_TEST`, `SM_CHANNEL_MODEL`, `SM_MODEL_DIR`, `SM_OUTPUT_DATA_DIR`); the flags `--train`,
`--validation`, `--test`, `--model`, `--model-dir`, `--output-data-dir` override them. Hyperparameters
arrive as `--name value` strings ("True"/"False" for booleans); unknown `sagemaker_*` keys are ignored,
any other unknown flag is an error.

Training:
- every epoch prints one line `Epoch i/N: Train Loss=<x>; Train Acc=<x>; Val Acc=<x>; Val F1=<x>; ...`
  (the SageMaker metric regexes read it);
- the loss weighs each class by `n / (2 * count(class))` over the training labels (class imbalance);
- model selection and early stopping use validation F1 of the vulnerable class (`--selection-metric
  accuracy` to switch); ties keep the earlier epoch; training stops after `--patience` epochs without
  improvement (0 disables early stopping). The best weights are written to the model dir as soon as
  they appear, and the final metrics are real inference with those weights;
- with a checkpoint dir (`--checkpoint-dir`, else `SM_CHECKPOINT_DIR`, else `/opt/ml/checkpoints` on
  SageMaker) every epoch writes weights, optimizer state and a JSON state atomically; a restarted run
  resumes from it ("Resuming from epoch N"). Each epoch reseeds the RNGs with `seed + epoch`, so a resumed
  run shuffles and drops out exactly as an uninterrupted one;
- `--fine-tune` starts from the model channel's weights, with its tokenizer and its saved sizes.

Evaluate mode scores every input row: rows that fail validation (bad JSON, missing code, unknown
language, unusable graph) are written to predictions.jsonl with `error` and null score rather than
dropped; metrics cover the labelled rows that were scored.

On any error the message goes to stderr and to the SageMaker failure file (`$SM_OUTPUT_DIR/failure`,
else `/opt/ml/output/failure` when `/opt/ml/output` exists). Errors that would recur on every attempt
(bad arguments, unusable input, a model archive that fails its integrity check) exit with status 3
and the message form `StreamGuardInputError: ...` (`streamguard.core.job_errors`), which both
backends map to "do not retry"; any other error exits with status 1 and may be retried.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# The source dir is the working directory on SageMaker, but make sibling imports work from anywhere.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import torch  # noqa: E402

import artifacts  # noqa: E402
import data as datamod  # noqa: E402
import engine  # noqa: E402
from baseline import build_baseline  # noqa: E402
from cli_args import build_parser, parse_args  # noqa: E402,F401  (the entry's flags)
from entry_errors import EntryError, exit_code, require, write_failure  # noqa: E402
from models import build_model  # noqa: E402
from models.gnn import check_node_vocab, featurizer_info  # noqa: E402,F401  (node_vocab.json)
from progress import EpochProgress  # noqa: E402
from streamguard.core.job_errors import DETERMINISTIC_EXIT_CODE  # noqa: E402,F401
from streamguard.core.metrics import classification_metrics  # noqa: E402
from streamguard.core.model_types import MODEL_SIZES, MODEL_TYPES  # noqa: E402

FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------- output
class Logger:
    """Prints on the main process only, flushed at once (SageMaker parses stdout as it streams)."""

    def __init__(self, rt: engine.Runtime):
        self.rt = rt

    def __call__(self, message: str) -> None:
        if self.rt.is_main:
            print(message, flush=True)


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"


# -------------------------------------------------------------------------------------- helpers
def _json_safe(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))}


def read_model_config(model_dir: Path) -> dict:
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") not in MODEL_TYPES or "model_kwargs" not in cfg:
        raise EntryError(f"{model_dir / 'config.json'}: not a StreamGuard model config "
                         "(needs model_type and model_kwargs)")
    return cfg


def load_saved_model(model_dir: Path, device: torch.device):
    """Rebuild a saved model (weights, config, tokenizer) from a model dir."""
    cfg = read_model_config(model_dir)
    if cfg["model_type"] == "gnn":
        check_node_vocab(model_dir)
    model = build_model(cfg["model_type"], cfg["model_kwargs"])
    artifacts.load_weights(model, model_dir / artifacts.WEIGHTS)
    tokenizer = None
    if cfg["model_type"] == "transformer":
        from models.transformer import load_tokenizer

        tokenizer = load_tokenizer(model_dir / "tokenizer")
    return model.to(device), tokenizer, cfg


def fresh_model(args: argparse.Namespace, train_samples: list) -> tuple[torch.nn.Module, Any, dict]:
    """A new model sized by the flags; the transformer also gets its tokenizer (trained or pretrained)."""
    defaults = MODEL_SIZES[args.model_type]
    hidden = args.hidden_size or defaults["hidden_size"]
    layers = args.num_layers or defaults["num_layers"]
    if args.model_type == "gnn":
        g = datamod.graphs_module()
        kwargs = {"in_channels": datamod.node_feature_size(), "hidden_channels": hidden,
                  "num_relations": g.NUM_EDGE_TYPES, "num_layers": layers, "num_classes": 2,
                  "dropout": args.dropout, "num_kinds": g.NUM_NODE_KINDS,
                  "num_subtoken_buckets": g.SUBTOKENS["buckets"]}
        return build_model("gnn", kwargs), None, kwargs
    from models.transformer import (EnhancedSQLIntentTransformer, load_pretrained_encoder, small_roberta_config,
                                    train_bpe_tokenizer)

    if args.pretrained:
        encoder, tokenizer = load_pretrained_encoder(args.pretrained)
        kwargs = {"encoder_config": encoder.config.to_dict(), "num_classes": 2, "dropout": args.dropout}
        return EnhancedSQLIntentTransformer(**kwargs, encoder=encoder), tokenizer, kwargs
    tokenizer = train_bpe_tokenizer((s.text for s in train_samples), vocab_size=args.vocab_size)
    encoder_config = small_roberta_config(len(tokenizer), hidden_size=hidden, num_layers=layers,
                                          num_heads=args.num_heads, max_length=args.max_length,
                                          pad_token_id=tokenizer.pad_token_id)
    kwargs = {"encoder_config": encoder_config, "num_classes": 2, "dropout": args.dropout}
    return build_model("transformer", kwargs), tokenizer, kwargs


def get_dataloaders(model_type: str, splits: dict[str, list], *, batch_size: int, tokenizer=None,
                    max_length: int = 256, num_workers: int = 0, seed: int = 0,
                    rt: engine.Runtime | None = None, text_input: str = datamod.DEFAULT_TEXT_INPUT,
                    sink_dropout: float = 0.0) -> dict:
    """Loaders per split: `train` shuffled (seeded; a DistributedSampler under DDP), the others in order."""
    loaders = {}
    for name, samples in splits.items():
        dataset = datamod.make_dataset(model_type, samples, text_input,
                                       sink_dropout=sink_dropout if name == "train" else 0.0, seed=seed)
        sampler = None
        if name == "train" and rt is not None and rt.distributed:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(dataset, shuffle=True, seed=seed)
        loaders[name] = datamod.make_loader(model_type, dataset, batch_size=batch_size, shuffle=name == "train",
                                            sampler=sampler, tokenizer=tokenizer, max_length=max_length,
                                            num_workers=num_workers, seed=seed)
    return loaders


def _selection_key(metrics: dict, metric: str) -> tuple[float, float]:
    other = "accuracy" if metric == "f1" else "f1"
    return (metrics[metric] or 0.0, metrics[other] or 0.0)


def _prediction_rows(samples: list, scores: list[float | None], threshold: float,
                     anomalies: list[float | None] | None = None) -> list[dict]:
    rows = []
    for i, (s, score) in enumerate(zip(samples, scores)):
        row = {"id": s.id, "label": s.label,
               "score": score, "pred": None if score is None else int(score >= threshold),
               "cwe": s.cwe, "language": s.language}
        if anomalies is not None:
            row["anomaly_score"] = anomalies[i]
        if s.error is not None:
            row["error"] = s.error
        rows.append(row)
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    artifacts.write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------------------------------- train
def train(args: argparse.Namespace, rt: engine.Runtime) -> dict:
    """Train one model, write the model dir; returns `{"validation": M, "test": M?}`."""
    log = Logger(rt)
    model_type = args.model_type
    train_path = require(args.train, "train channel", "SM_CHANNEL_TRAIN", "--train")
    val_path = require(args.validation, "validation channel", "SM_CHANNEL_VALIDATION", "--validation")
    model_dir = Path(require(args.model_dir, "model dir", "SM_MODEL_DIR", "--model-dir"))
    threshold = 0.5 if args.threshold is None else args.threshold
    need_graphs = model_type == "gnn"

    train_samples = datamod.read_samples(train_path, need_graphs=need_graphs, limit=args.max_train_samples,
                                         seed=args.seed)
    val_samples = datamod.read_samples(val_path, need_graphs=need_graphs)
    test_samples = datamod.read_samples(args.test, need_graphs=need_graphs) if args.test else None
    if not train_samples:
        raise EntryError(f"train channel {train_path} has no records")
    if not val_samples:
        raise EntryError(f"validation channel {val_path} has no records")
    counts = datamod.label_counts(train_samples)
    if min(counts) == 0:
        raise EntryError(f"train channel {train_path} has only one class (label counts {counts}); "
                         "a classifier needs both labels")
    n_train = sum(counts)
    class_weights = [n_train / (len(counts) * c) for c in counts]
    log(f"model={model_type} train={n_train} (labels {counts}) validation={len(val_samples)} "
        f"test={len(test_samples) if test_samples is not None else 0} device={rt.device} "
        f"bf16={rt.bf16} world_size={rt.world_size}")

    ckpt_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    state = artifacts.load_checkpoint(ckpt_dir, log=log) if ckpt_dir else None
    if state is not None and state.get("model_type") != model_type:
        raise EntryError(f"checkpoint in {ckpt_dir} is for model type {state.get('model_type')!r}, "
                         f"not {model_type!r}; use another --checkpoint-dir")

    # Seed before the model is built so initial weights are reproducible.
    engine.set_seed(args.seed)
    fine_tuned_from = None
    text_input = args.text_input
    if state is not None:
        text_input = state.get("text_input", "code")
        model_kwargs = state["model_kwargs"]
        model = build_model(model_type, model_kwargs)
        tokenizer = None
        if model_type == "transformer":
            from models.transformer import load_tokenizer

            tokenizer = load_tokenizer(ckpt_dir / "tokenizer")
        fine_tuned_from = state.get("fine_tuned_from")
    elif args.fine_tune:
        source = require(args.model, "model channel to fine-tune from", "SM_CHANNEL_MODEL", "--model")
        prev_dir = artifacts.resolve_model_dir(source, artifacts.scratch_dir(), args.model_sha256)
        model, tokenizer, prev_cfg = load_saved_model(prev_dir, torch.device("cpu"))
        if prev_cfg["model_type"] != model_type:
            raise EntryError(f"--fine-tune: the model channel holds a {prev_cfg['model_type']} model, "
                             f"not {model_type}")
        model_kwargs = prev_cfg["model_kwargs"]
        fine_tuned_from = source
        text_input = prev_cfg.get("text_input") or "code"
        log(f"Fine-tuning from {source} (sizes from its config.json)")
        if model_type == "transformer":
            _attach_texts(train_samples, val_samples, test_samples, text_input, log)
    else:
        if model_type == "transformer":
            _attach_texts(train_samples, val_samples, test_samples, text_input, log)
        model, tokenizer, model_kwargs = fresh_model(args, train_samples)
    if state is not None and model_type == "transformer":
        _attach_texts(train_samples, val_samples, test_samples, text_input, log)
    if model_type == "transformer":
        max_pos = model.max_positions
        if max_pos is not None and args.max_length > max_pos:
            raise EntryError(f"--max-length {args.max_length} exceeds the encoder's {max_pos} positions")

    model.to(rt.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    history: list[dict] = []
    best: dict | None = None
    bad_epochs = 0
    start_epoch = 1
    finished = False
    if state is not None:
        artifacts.restore_checkpoint(ckpt_dir, model, optimizer, rt.device, state)
        history, best, bad_epochs = state["history"], state["best"], state["bad_epochs"]
        start_epoch = state["epoch"] + 1
        # Early stopping is final; reaching the old --epochs is not (a rerun may ask for more).
        finished = state.get("stopped_early", False)
        log(f"Resuming from epoch {state['epoch']} (checkpoint {ckpt_dir}); next epoch {start_epoch}")
        best_file = ckpt_dir / artifacts.checkpoint_file("best", best["epoch"]) if best else None
        if rt.is_main and best_file is not None and best_file.is_file():
            # A restarted container has an empty model dir: put the best weights so far back.
            model_dir.mkdir(parents=True, exist_ok=True)
            artifacts.copy_into(best_file, model_dir)
            os.replace(model_dir / best_file.name, model_dir / artifacts.WEIGHTS)

    net = model
    if rt.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(class_weights, dtype=torch.float32, device=rt.device))
    splits = {"validation": val_samples}
    eval_loaders = get_dataloaders(model_type, splits, batch_size=args.batch_size, tokenizer=tokenizer,
                                   max_length=args.max_length, num_workers=args.num_workers, rt=rt)

    if rt.is_main and tokenizer is not None and ckpt_dir is not None and state is None:
        tokenizer.save_pretrained(str(ckpt_dir / "tokenizer"))

    for epoch in range(start_epoch, args.epochs + 1):
        if finished:
            break
        # Per-epoch seeds make a resumed run identical to an uninterrupted one.
        epoch_seed = args.seed + epoch
        engine.set_seed(epoch_seed)
        train_loader = get_dataloaders(model_type, {"train": train_samples}, batch_size=args.batch_size,
                                       tokenizer=tokenizer, max_length=args.max_length,
                                       num_workers=args.num_workers, seed=epoch_seed, rt=rt,
                                       sink_dropout=args.sink_dropout)["train"]
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        lr_at = None
        if model_type == "transformer":
            lr_at = engine.warmup_linear_decay(args.learning_rate, len(train_loader) * args.epochs)
        with EpochProgress(epoch, args.epochs, enabled=rt.is_main, interval_s=args.progress_interval_s) as progress:
            train_loss, train_acc, seen = engine.train_one_epoch(
                net, model_type, train_loader, optimizer, loss_fn, rt, lr_at=lr_at,
                step_offset=len(train_loader) * (epoch - 1), on_batch=progress)
        scores, _ = engine.predict(net, model_type, eval_loaders["validation"], rt)
        val = classification_metrics([s.label for s in val_samples], scores, threshold)
        seconds = time.perf_counter() - t0
        improved = best is None or _selection_key(val, args.selection_metric) > tuple(best["key"])
        improved = _agree(improved, rt)
        if improved:
            best = {"epoch": epoch, "key": list(_selection_key(val, args.selection_metric)),
                    "metric": args.selection_metric, "value": val[args.selection_metric]}
            bad_epochs = 0
            if rt.is_main:
                artifacts.save_weights(model, model_dir / artifacts.WEIGHTS)
                if ckpt_dir is not None:
                    artifacts.save_weights(model, ckpt_dir / artifacts.checkpoint_file("best", epoch), epoch=epoch)
        else:
            bad_epochs += 1
        log(f"Epoch {epoch}/{args.epochs}: Train Loss={train_loss:.6f}; Train Acc={train_acc:.6f}; "
            f"Val Acc={val['accuracy']:.6f}; Val F1={val['f1']:.6f}; Val FPR={val['fpr']:.6f}; "
            f"Val AUC={_fmt(val['roc_auc'])}; Seconds={seconds:.2f}; Samples/s={seen / seconds:.1f};"
            f"{' best' if improved else ''}")
        history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                        "val_acc": val["accuracy"], "val_f1": val["f1"], "val_fpr": val["fpr"],
                        "val_auc": val["roc_auc"], "seconds": seconds, "improved": improved})
        stop = args.patience > 0 and bad_epochs >= args.patience
        if stop:
            log(f"Early stopping after epoch {epoch}: no {args.selection_metric} improvement for "
                f"{bad_epochs} epochs (best epoch {best['epoch']})")
        if rt.is_main and ckpt_dir is not None:
            artifacts.save_checkpoint(ckpt_dir, model, optimizer, {
                "format_version": FORMAT_VERSION, "model_type": model_type, "model_kwargs": model_kwargs,
                "epoch": epoch, "best": best, "bad_epochs": bad_epochs, "history": history,
                "stopped_early": stop, "fine_tuned_from": fine_tuned_from, "text_input": text_input,
                "rng": {"seed": args.seed, "epoch_seed": epoch_seed},
            })
        if stop:
            break

    if not rt.is_main:
        _barrier(rt)
        return {}
    return _finalize(args, rt, model, tokenizer, model_kwargs, model_dir, {
        "train": train_samples, "validation": val_samples, "test": test_samples},
        counts=counts, class_weights=class_weights, history=history, best=best, threshold=threshold,
        fine_tuned_from=fine_tuned_from, log=log, text_input=text_input)


def _attach_texts(train_samples, val_samples, test_samples, text_input: str, log) -> None:
    """The transformer's input text of every record, computed once (code gadgets build the IR)."""
    t0 = time.perf_counter()
    for samples in (train_samples, val_samples, test_samples or []):
        datamod.attach_texts(samples, text_input)
    if text_input == "gadget":
        n = len(train_samples) + len(val_samples) + len(test_samples or [])
        log(f"Transformer input: code gadgets of {n} records in {time.perf_counter() - t0:.1f}s")


def _pretrained_sha256(pretrained: str | None) -> str | None:
    """Provenance: the sha256 of the pretrained weights a transformer started from."""
    if not pretrained:
        return None
    from models.transformer import resolve_pretrained, weights_sha256

    return weights_sha256(resolve_pretrained(pretrained))


def _agree(flag: bool, rt: engine.Runtime) -> bool:
    """Rank 0's decision, for every rank (DDP ranks must stop at the same epoch)."""
    if not rt.distributed:
        return flag
    t = torch.tensor([int(flag)], device=rt.device)
    torch.distributed.broadcast(t, src=0)
    return bool(t.item())


def _barrier(rt: engine.Runtime) -> None:
    if rt.distributed:
        torch.distributed.barrier()


def _finalize(args, rt, model, tokenizer, model_kwargs, model_dir: Path, splits: dict, *, counts, class_weights,
              history, best, threshold, fine_tuned_from, log, text_input: str | None = None) -> dict:
    """Reload the best weights, measure validation/test with real inference, write the model dir."""
    model_type = args.model_type
    weights = model_dir / artifacts.WEIGHTS
    if not weights.is_file():
        raise EntryError(f"no best weights in {model_dir} (did any epoch run?)")
    artifacts.load_weights(model, weights)
    eval_splits = {k: v for k, v in splits.items() if k != "train" and v is not None}
    loaders = get_dataloaders(model_type, eval_splits, batch_size=args.batch_size, tokenizer=tokenizer,
                              max_length=args.max_length, num_workers=args.num_workers)
    metrics: dict[str, dict] = {}
    scores: dict[str, list[float]] = {}
    anomalies: dict[str, list[float] | None] = {}
    for name, loader in loaders.items():
        scores[name], anomalies[name] = engine.predict(model, model_type, loader, rt)
        metrics[name] = classification_metrics([s.label for s in splits[name]], scores[name], threshold)

    if model_type == "gnn":
        graphs_version = datamod.graphs_module().FEATURIZER_VERSION
    else:
        # Recorded for provenance only: the transformer reads code, not graphs.
        try:
            graphs_version = getattr(datamod.graphs_module(), "FEATURIZER_VERSION", None)
        except ImportError:
            graphs_version = None
    config = {
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "model_kwargs": model_kwargs,
        "featurizer_version": graphs_version,
        "max_length": args.max_length if model_type == "transformer" else None,
        "text_input": text_input if model_type == "transformer" else None,
        "threshold": threshold,
        "selection_metric": args.selection_metric,
        "best_epoch": best["epoch"] if best else None,
        "epochs_run": len(history),
        "hyperparameters": _json_safe(args),
        "train_label_counts": {str(i): c for i, c in enumerate(counts)},
        "class_weights": class_weights,
        "pretrained": args.pretrained,
        "pretrained_sha256": _pretrained_sha256(args.pretrained) if model_type == "transformer" else None,
        "fine_tuned_from": fine_tuned_from,
        "torch_version": torch.__version__,
    }
    artifacts.write_json(model_dir / "config.json", config)
    if model_type == "gnn":
        artifacts.write_json(model_dir / "node_vocab.json", featurizer_info())
    else:
        tokenizer.save_pretrained(str(model_dir / "tokenizer"))
    artifacts.write_json(model_dir / "metrics.json", metrics)
    artifacts.write_json(model_dir / "history.json", history)
    artifacts.write_json(model_dir / "baseline.json", build_baseline(
        splits["validation"], scores["validation"], splits["train"], model_type=model_type,
        threshold=threshold, seed=args.seed))
    if "test" in scores:
        _write_jsonl(model_dir / "test_predictions.jsonl",
                     _prediction_rows(splits["test"], scores["test"], threshold, anomalies["test"]))
    # The serving handler, its requirements and the featurizer: model.tar.gz serves on its own.
    artifacts.write_inference_code(model_dir)
    if args.output_data_dir:
        for name in ("metrics.json", "history.json"):
            artifacts.copy_into(model_dir / name, args.output_data_dir)
    summary = "; ".join(f"{split.capitalize()} {k}={_fmt(m[k])}" for split, m in metrics.items()
                        for k in ("accuracy", "f1", "fpr"))
    log(f"Best epoch {config['best_epoch']}: {summary}; model written to {model_dir}")
    _barrier(rt)
    return metrics


# ------------------------------------------------------------------------------------- evaluate
def evaluate(args: argparse.Namespace, rt: engine.Runtime) -> dict:
    """Score every row of the test input with a saved model; write predictions.jsonl and metrics.json."""
    log = Logger(rt)
    if not rt.is_main:
        return {}
    model_src = require(args.model, "model to evaluate", "SM_CHANNEL_MODEL", "--model")
    test_path = require(args.test, "test input", "SM_CHANNEL_TEST", "--test")
    out_dir = Path(require(args.output_data_dir, "output dir", "SM_OUTPUT_DATA_DIR", "--output-data-dir"))
    model_dir = artifacts.resolve_model_dir(model_src, artifacts.scratch_dir(), args.model_sha256)
    model, tokenizer, cfg = load_saved_model(model_dir, rt.device)
    model_type = cfg["model_type"]
    if args.model_type and args.model_type != model_type:
        raise EntryError(f"--model-type {args.model_type} but {model_src} holds a {model_type} model")
    threshold = args.threshold if args.threshold is not None else cfg.get("threshold", 0.5)
    max_length = cfg.get("max_length") or args.max_length

    samples = datamod.read_samples(test_path, require_label=False, need_graphs=model_type == "gnn", strict=False)
    if not samples:
        raise EntryError(f"test input {test_path} has no records")
    ok = [s for s in samples if s.error is None]
    if model_type == "transformer":
        datamod.attach_texts(ok, cfg.get("text_input") or "code")
    ok_scores: list[float] = []
    ok_anomalies: list[float] | None = None
    if ok:
        loader = get_dataloaders(model_type, {"test": ok}, batch_size=args.batch_size, tokenizer=tokenizer,
                                 max_length=max_length, num_workers=args.num_workers)["test"]
        ok_scores, ok_anomalies = engine.predict(model, model_type, loader, rt)
    by_index = dict(zip((s.index for s in ok), ok_scores))
    anomaly_by_index = dict(zip((s.index for s in ok), ok_anomalies)) if ok_anomalies is not None else None
    scores = [by_index.get(s.index) for s in samples]
    anomalies = [anomaly_by_index.get(s.index) for s in samples] if anomaly_by_index is not None else None
    rows = _prediction_rows(samples, scores, threshold, anomalies)
    labelled = [(s.label, by_index[s.index]) for s in ok if s.label is not None]
    metrics = classification_metrics([y for y, _ in labelled], [p for _, p in labelled], threshold)
    n_errors = len(samples) - len(ok)
    result = {"test": metrics, "model_type": model_type, "threshold": threshold,
              "rows": len(samples), "scored": len(ok), "labelled": len(labelled), "errors": n_errors}
    _write_jsonl(out_dir / "predictions.jsonl", rows)
    artifacts.write_json(out_dir / "metrics.json", result)
    log(f"Evaluated {len(samples)} rows ({len(ok)} scored, {n_errors} errors, {len(labelled)} labelled): "
        f"Test Acc={_fmt(metrics['accuracy'])}; Test F1={_fmt(metrics['f1'])}; Test FPR={_fmt(metrics['fpr'])};")
    if n_errors:
        first = next(s.error for s in samples if s.error is not None)
        log(f"{n_errors} rows could not be scored (marked with 'error' in predictions.jsonl); first: {first}")
    return result


# ----------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the entry; returns the process exit status: 0 ok, 3 a deterministic failure, 1 any other
    (the failure file written in both cases)."""
    try:
        args = parse_args(argv)
        rt = engine.setup_runtime()
        try:
            if args.mode == "evaluate":
                evaluate(args, rt)
            else:
                train(args, rt)
        finally:
            engine.teardown_runtime(rt)
    except Exception as exc:  # noqa: BLE001 - every failure must reach the failure file
        write_failure(exc)
        return exit_code(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
