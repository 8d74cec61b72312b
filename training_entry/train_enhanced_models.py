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
  accuracy`, or `youden` for TPR − FPR, to switch); ties keep the earlier epoch; training stops after `--patience` epochs without
  improvement (0 disables early stopping). The best weights are written to the model dir as soon as
  they appear, and the final metrics are real inference with those weights;
- with a checkpoint dir (`--checkpoint-dir`, else `SM_CHECKPOINT_DIR`, else `/opt/ml/checkpoints` on
  SageMaker) every epoch writes weights, optimizer state and a JSON state atomically; a restarted run
  resumes from it ("Resuming from epoch N"). Each epoch reseeds the RNGs with `seed + epoch`, so a resumed
  run shuffles and drops out exactly as an uninterrupted one;
- `--fine-tune` starts from the model channel's weights, with its tokenizer and its saved sizes;
- `--weight-averaging ema` (`--ema-decay`, default 0.99) keeps an exponential moving average of the
  weights after every optimizer step (`weight_averaging`): validation scores it, the model dir and the
  best-epoch checkpoint get the best epoch's average, and each epoch's checkpoint holds it for resuming.

Evaluate mode scores every input row: rows that fail validation (bad JSON, missing code, unknown
language, unusable graph) are written to predictions.jsonl with `error` and null score rather than
dropped; metrics cover the labelled rows that were scored.

On any error the message goes to stderr and to the SageMaker failure file (`$SM_OUTPUT_DIR/failure`,
else `/opt/ml/output/failure` when `/opt/ml/output` exists). Errors that would recur on every attempt
(bad arguments, unusable input, a model archive that fails its integrity check) exit with status 3
and the message form `StreamGuardInputError: ...` (`streamguard.core.job_errors`), which both
backends map to "do not retry"; any other error exits with status 1 and may be retried.

Reading order: `cli_args` (the flags), `train_run` (the job's inputs, read once), `model_setup`
(where the model comes from: checkpoint, model channel or flags), `training_loop` (the epochs and
`train_state.TrainState`, the checkpoint's JSON), `outputs` (the model dir); `models/` holds the two
model classes, each with the hooks the entry calls (`forward_batch`, `from_config`, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The source dir is the working directory on SageMaker, but make sibling imports work from anywhere.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import artifacts  # noqa: E402
import data as datamod  # noqa: E402
import engine  # noqa: E402
from cli_args import build_parser, parse_args  # noqa: E402,F401  (the entry's flags)
from entry_errors import EntryError, exit_code, require, write_failure  # noqa: E402
from model_setup import load_saved_model, read_model_config, setup_model  # noqa: E402,F401
from models import model_class  # noqa: E402
from models.gnn import check_node_vocab, featurizer_info  # noqa: E402,F401  (node_vocab.json)
from outputs import fmt, prediction_rows, write_jsonl, write_model_dir  # noqa: E402
from streamguard.core.job_errors import DETERMINISTIC_EXIT_CODE  # noqa: E402,F401
from streamguard.core.metrics import classification_metrics  # noqa: E402
from streamguard.core.model_types import MODEL_TYPES  # noqa: E402,F401
from train_run import read_train_run  # noqa: E402
from training_loop import fit  # noqa: E402


# ---------------------------------------------------------------------------------------- train
def train(args: argparse.Namespace, rt: engine.Runtime) -> dict:
    """Train one model, write the model dir; returns `{"validation": M, "test": M?}` (`{}` off rank 0)."""
    run = read_train_run(args, rt, engine.Logger(rt))
    setup = setup_model(run)       # resumed, fine-tuned or fresh
    state = fit(run, setup)
    metrics = write_model_dir(run, setup.model, setup.tokenizer, state) if rt.is_main else {}
    engine.barrier(rt)
    return metrics


# ------------------------------------------------------------------------------------- evaluate
def evaluate(args: argparse.Namespace, rt: engine.Runtime) -> dict:
    """Score every row of the test input with a saved model; write predictions.jsonl and metrics.json."""
    log = engine.Logger(rt)
    if not rt.is_main:
        return {}
    model_src = require(args.model, "model to evaluate", "SM_CHANNEL_MODEL", "--model")
    test_path = require(args.test, "test input", "SM_CHANNEL_TEST", "--test")
    out_dir = Path(require(args.output_data_dir, "output dir", "SM_OUTPUT_DATA_DIR", "--output-data-dir"))
    model_dir = artifacts.resolve_model_dir(model_src, artifacts.scratch_dir(), args.model_sha256)
    model, tokenizer, cfg = load_saved_model(model_dir, rt.device)
    model_type = cfg["model_type"]
    cls = model_class(model_type)
    if args.model_type and args.model_type != model_type:
        raise EntryError(f"--model-type {args.model_type} but {model_src} holds a {model_type} model")
    threshold = args.threshold if args.threshold is not None else cfg.get("threshold", 0.5)
    max_length = cfg.get("max_length") or args.max_length

    samples = datamod.read_samples(test_path, require_label=False, need_graphs=cls.needs_graphs, strict=False)
    if not samples:
        raise EntryError(f"test input {test_path} has no records")
    ok = [s for s in samples if s.error is None]
    cls.prepare_samples(ok, cfg.get("text_input") or "code")
    ok_scores: list[float] = []
    ok_anomalies: list[float] | None = None
    if ok:
        loader = engine.get_dataloaders(model_type, {"test": ok}, batch_size=args.batch_size, tokenizer=tokenizer,
                                        max_length=max_length, num_workers=args.num_workers)["test"]
        ok_scores, ok_anomalies = engine.predict(model, loader, rt)
    by_index = dict(zip((s.index for s in ok), ok_scores))
    anomaly_by_index = dict(zip((s.index for s in ok), ok_anomalies)) if ok_anomalies is not None else None
    scores = [by_index.get(s.index) for s in samples]
    anomalies = [anomaly_by_index.get(s.index) for s in samples] if anomaly_by_index is not None else None
    rows = prediction_rows(samples, scores, threshold, anomalies)
    labelled = [(s.label, by_index[s.index]) for s in ok if s.label is not None]
    metrics = classification_metrics([y for y, _ in labelled], [p for _, p in labelled], threshold)
    n_errors = len(samples) - len(ok)
    result = {"test": metrics, "model_type": model_type, "threshold": threshold,
              "rows": len(samples), "scored": len(ok), "labelled": len(labelled), "errors": n_errors}
    write_jsonl(out_dir / "predictions.jsonl", rows)
    artifacts.write_json(out_dir / "metrics.json", result)
    log(f"Evaluated {len(samples)} rows ({len(ok)} scored, {n_errors} errors, {len(labelled)} labelled): "
        f"Test Acc={fmt(metrics['accuracy'])}; Test F1={fmt(metrics['f1'])}; Test FPR={fmt(metrics['fpr'])};")
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
