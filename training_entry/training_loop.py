"""The epoch loop: train, validate, keep the best weights, checkpoint, stop early.

Every epoch reseeds the RNGs with `seed + epoch`, so a run resumed from its checkpoint shuffles and
drops out exactly as an uninterrupted one. The best weights are written to the model dir as soon
as they appear; each epoch's checkpoint (`artifacts.save_checkpoint`) holds the weights, the
optimizer state and the `TrainState` JSON.

With `--weight-averaging ema` (`weight_averaging.WeightEMA`) a shadow copy of the model is averaged
after every optimizer step; validation scores the shadow, the best epoch's shadow is what the model
dir and the best-epoch checkpoint get, and each epoch's checkpoint holds the shadow too.
"""

from __future__ import annotations

import shutil
import time

import torch

import artifacts
import data as datamod
import engine
from model_setup import ModelSetup
from outputs import fmt
from progress import EpochProgress
from streamguard.core import archive
from streamguard.core.metrics import classification_metrics
from train_run import TrainRun
from train_state import TrainState
from weight_averaging import WARMUP, WeightEMA


def fit(run: TrainRun, setup: ModelSetup) -> TrainState:
    """Train `setup.model` from `setup.state` up to `--epochs`; returns the final state."""
    args, rt, log, model, state = run.args, run.rt, run.log, setup.model, setup.state
    model.to(rt.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    ema = WeightEMA(model, args.ema_decay) if args.weight_averaging == "ema" else None
    if setup.resumed:
        _restore(run, setup, optimizer, ema)
    elif rt.is_main and setup.tokenizer is not None and run.ckpt_dir is not None:
        setup.tokenizer.save_pretrained(str(run.ckpt_dir / "tokenizer"))  # a resumed run reloads it
    if ema is not None:
        log(f"Weight averaging: EMA of the weights after every step, decay {ema.decay:g} (warm-up {WARMUP}, "
            f"{ema.updates} updates so far); validation and the saved model use the averaged weights")
    state.ema = ema.state() if ema is not None else None
    net = model
    if rt.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(run.class_weights, dtype=torch.float32, device=rt.device))
    val_loader = _loaders(run, setup, {"validation": run.validation})["validation"]
    val_labels = [s.label for s in run.validation]
    if args.language_balance:
        _, shares = datamod.language_sampler(run.train, args.language_balance, args.seed)
        log(f"Language balance {args.language_balance:g}: each epoch draws "
            + ", ".join(f"{lang} {drawn:.2f} (of the split {split:.2f})" for lang, (split, drawn) in shares.items()))

    # Early stopping is final; reaching the old --epochs is not (a rerun may ask for more).
    for epoch in range(state.epoch + 1, args.epochs + 1):
        if state.stopped_early:
            break
        engine.set_seed(args.seed + epoch)
        train_loader = _loaders(run, setup, {"train": run.train}, seed=args.seed + epoch,
                                sink_dropout=args.sink_dropout, source_dropout=args.source_dropout,
                                token_dropout=args.token_dropout,
                                language_balance=args.language_balance)["train"]
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        steps = len(train_loader)
        lr_at = engine.warmup_linear_decay(args.learning_rate, steps * args.epochs) if model.warmup else None
        t0 = time.perf_counter()
        with EpochProgress(epoch, args.epochs, enabled=rt.is_main, interval_s=args.progress_interval_s) as progress:
            train_loss, train_acc, seen = engine.train_one_epoch(
                net, train_loader, optimizer, loss_fn, rt, lr_at=lr_at, step_offset=steps * (epoch - 1),
                on_batch=progress, ema=ema)
        if ema is not None:
            state.ema = ema.state()
        scored = ema.module if ema is not None else net  # the weights validation judges and the model dir gets
        scores, _ = engine.predict(scored, val_loader, rt)
        val = classification_metrics(val_labels, scores, run.threshold)
        seconds = time.perf_counter() - t0
        improved = engine.agree(state.best is None or state.best.beaten_by(val, args.selection_metric), rt)
        if improved and rt.is_main:
            kept = engine.unwrap(scored)
            artifacts.save_weights(kept, run.model_dir / artifacts.WEIGHTS)
            if run.ckpt_dir is not None:
                artifacts.save_weights(kept, run.ckpt_dir / artifacts.checkpoint_file("best", epoch), epoch=epoch)
        log(f"Epoch {epoch}/{args.epochs}: Train Loss={train_loss:.6f}; Train Acc={train_acc:.6f}; "
            f"Val Acc={val['accuracy']:.6f}; Val F1={val['f1']:.6f}; Val FPR={val['fpr']:.6f}; "
            f"Val AUC={fmt(val['roc_auc'])}; Seconds={seconds:.2f}; Samples/s={seen / seconds:.1f};"
            f"{' best' if improved else ''}")
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_acc": val["accuracy"],
               "val_f1": val["f1"], "val_fpr": val["fpr"], "val_auc": val["roc_auc"], "seconds": seconds,
               "improved": improved}
        stop = state.record_epoch(epoch, val, args.selection_metric, row, improved, args.patience)
        if stop:
            log(f"Early stopping after epoch {epoch}: no {args.selection_metric} improvement for "
                f"{state.bad_epochs} epochs (best epoch {state.best.epoch})")
        if rt.is_main and run.ckpt_dir is not None:
            artifacts.save_checkpoint(run.ckpt_dir, model, optimizer, state.to_dict(),
                                      ema=ema.module if ema is not None else None)
    return state


def _loaders(run: TrainRun, setup: ModelSetup, splits: dict, **kw) -> dict:
    args = run.args
    return engine.get_dataloaders(run.model_type, splits, batch_size=args.batch_size, tokenizer=setup.tokenizer,
                                  max_length=args.max_length, num_workers=args.num_workers, rt=run.rt, **kw)


def _restore(run: TrainRun, setup: ModelSetup, optimizer: torch.optim.Optimizer, ema: WeightEMA | None) -> None:
    """Load the checkpoint's weights, optimizer state and EMA shadow (with `--weight-averaging ema`);
    put the best weights so far back in the model dir."""
    state = setup.state
    had_ema = state.ema
    loaded = artifacts.restore_checkpoint(run.ckpt_dir, setup.model, optimizer, run.rt.device, state.to_dict(),
                                          ema=ema.module if ema is not None else None)
    run.log(f"Resuming from epoch {state.epoch} (checkpoint {run.ckpt_dir}); next epoch {state.epoch + 1}")
    if ema is not None and loaded:
        ema.updates = int(had_ema["updates"])
        run.log(f"EMA: shadow weights restored from the checkpoint ({ema.updates} updates)")
        if float(had_ema.get("decay", ema.decay)) != ema.decay:
            run.log(f"EMA: the checkpoint averaged with decay {had_ema['decay']:g}; continuing with {ema.decay:g}")
    elif ema is not None:
        ema.reset(setup.model)
        run.log(f"EMA: the checkpoint of epoch {state.epoch} has no EMA weights; the average starts from "
                "its weights")
    elif had_ema:
        run.log("EMA: the checkpoint holds EMA weights but --weight-averaging is none; training on "
                "without averaging (the best weights so far stay the checkpoint's)")
    best_file = run.ckpt_dir / artifacts.checkpoint_file("best", state.best.epoch) if state.best else None
    if run.rt.is_main and best_file is not None and best_file.is_file():
        # A restarted container has an empty model dir.
        with archive.atomic_path(run.model_dir / artifacts.WEIGHTS) as tmp:
            shutil.copy2(best_file, tmp)
