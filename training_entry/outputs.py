"""What a finished training run writes: the model dir that becomes model.tar.gz, and prediction rows.

The model dir holds `model.safetensors` (the best epoch's weights, their moving average with
`--weight-averaging ema`), `config.json`, the model's
companions (GNN: `node_vocab.json`; transformer: `tokenizer/`), `metrics.json` and `history.json`
(also copied to the output data dir), `baseline.json` (drift monitoring), `test_predictions.jsonl`
when there is a test channel, and `code/` (the serving handler, so the archive serves on its own).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import artifacts
import engine
from baseline import build_baseline
from entry_errors import EntryError
from streamguard.core.archive import write_text_atomic
from streamguard.core.metrics import classification_metrics
from train_run import TrainRun
from train_state import FORMAT_VERSION, TrainState


def fmt(value: float | None) -> str:
    """A metric for a log line ("nan" when undefined)."""
    return "nan" if value is None else f"{value:.4f}"


def prediction_rows(samples: list, scores: list[float | None], threshold: float,
                    anomalies: list[float | None] | None = None) -> list[dict]:
    """One predictions.jsonl row per sample (`error` set, score null, for a row that could not be scored)."""
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


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def _json_safe(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))}


def write_model_dir(run: TrainRun, model: torch.nn.Module, tokenizer, state: TrainState) -> dict:
    """Reload the best weights, measure validation/test with real inference, write the model dir.

    Args:
        run: the job's inputs.
        model: the trained model (bare, not a DDP wrapper); its weights are replaced by the best epoch's.
        tokenizer: its tokenizer (None for the GNN).
        state: the loop's final state (best epoch, history).

    Returns:
        `{"validation": metrics, "test": metrics}` (test only with a test channel).
    """
    args, model_dir = run.args, run.model_dir
    weights = model_dir / artifacts.WEIGHTS
    if not weights.is_file():
        raise EntryError(f"no best weights in {model_dir} (did any epoch run?)")
    artifacts.load_weights(model, weights)
    splits = run.splits()
    eval_splits = {k: v for k, v in splits.items() if k != "train"}
    loaders = engine.get_dataloaders(run.model_type, eval_splits, batch_size=args.batch_size, tokenizer=tokenizer,
                                     max_length=args.max_length, num_workers=args.num_workers)
    metrics: dict[str, dict] = {}
    scores: dict[str, list[float]] = {}
    anomalies: dict[str, list[float] | None] = {}
    for name, loader in loaders.items():
        scores[name], anomalies[name] = engine.predict(model, loader, run.rt)
        metrics[name] = classification_metrics([s.label for s in splits[name]], scores[name], run.threshold)

    config = {
        "format_version": FORMAT_VERSION,
        "model_type": run.model_type,
        "model_kwargs": state.model_kwargs,
        "featurizer_version": None, "max_length": None, "text_input": None,  # set by the model class below
        "threshold": run.threshold,
        "selection_metric": args.selection_metric,
        # What model.safetensors holds: the trained weights ("none") or their moving average ("ema").
        "weight_averaging": args.weight_averaging,
        "ema_decay": args.ema_decay if args.weight_averaging == "ema" else None,
        "best_epoch": state.best.epoch if state.best else None,
        "epochs_run": len(state.history),
        "hyperparameters": _json_safe(args),
        "train_label_counts": {str(i): c for i, c in enumerate(run.counts)},
        "class_weights": run.class_weights,
        "pretrained": args.pretrained,
        "pretrained_sha256": None,
        "fine_tuned_from": state.fine_tuned_from,
        "torch_version": torch.__version__,
    }
    config.update(run.model_cls.saved_config(max_length=args.max_length, text_input=state.text_input,
                                             pretrained=args.pretrained))
    artifacts.write_json(model_dir / "config.json", config)
    for name, content in run.model_cls.companion_json().items():
        artifacts.write_json(model_dir / name, content)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(model_dir / "tokenizer"))
    artifacts.write_json(model_dir / "metrics.json", metrics)
    artifacts.write_json(model_dir / "history.json", state.history)
    artifacts.write_json(model_dir / "baseline.json", build_baseline(
        splits["validation"], scores["validation"], splits["train"], model_type=run.model_type,
        threshold=run.threshold, seed=args.seed))
    if "test" in scores:
        write_jsonl(model_dir / "test_predictions.jsonl",
                    prediction_rows(splits["test"], scores["test"], run.threshold, anomalies["test"]))
    # The serving handler, its requirements and the featurizer: model.tar.gz serves on its own.
    artifacts.write_inference_code(model_dir)
    if args.output_data_dir:
        for name in ("metrics.json", "history.json"):
            artifacts.copy_into(model_dir / name, args.output_data_dir)
    summary = "; ".join(f"{split.capitalize()} {k}={fmt(m[k])}" for split, m in metrics.items()
                        for k in ("accuracy", "f1", "fpr"))
    run.log(f"Best epoch {config['best_epoch']}: {summary}; model written to {model_dir}")
    return metrics
