"""Where a run's model comes from, decided in one place: a checkpoint (resume), the model channel
(`--fine-tune`), or the flags (a fresh model); and how a saved model dir is loaded again.

Precedence: a usable checkpoint in the checkpoint dir always wins (a restarted job continues what
it started, fine-tune or not); else `--fine-tune` starts from the model channel's weights, sizes,
tokenizer and text input; else a new model is sized by the flags.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import artifacts
import engine
from entry_errors import EntryError, require
from models import EntryModel, ModelOptions, build_model, model_class
from streamguard.core.model_types import MODEL_SIZES, MODEL_TYPES
from train_run import TrainRun
from train_state import TrainState


@dataclass
class ModelSetup:
    """The model a run trains, its tokenizer (None for the GNN) and the loop state it starts from."""

    model: EntryModel
    tokenizer: Any
    state: TrainState
    resumed: bool = False


def model_options(args: argparse.Namespace) -> ModelOptions:
    """A new model's sizes: the flags, else the model type's defaults (`MODEL_SIZES`)."""
    sizes = MODEL_SIZES[args.model_type]
    return ModelOptions(hidden_size=args.hidden_size or sizes["hidden_size"],
                        num_layers=args.num_layers or sizes["num_layers"], dropout=args.dropout,
                        num_heads=args.num_heads, max_length=args.max_length, vocab_size=args.vocab_size,
                        pretrained=args.pretrained, input_readout=getattr(args, "input_readout", False),
                        embedding_std=0.1 if getattr(args, "embedding_init", "zero") == "normal" else 0.0,
                        kind_roles=getattr(args, "kind_roles", False))


def read_model_config(model_dir: Path) -> dict:
    """A model dir's `config.json` (raises EntryError when it is not a StreamGuard model's)."""
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") not in MODEL_TYPES or "model_kwargs" not in cfg:
        raise EntryError(f"{model_dir / 'config.json'}: not a StreamGuard model config "
                         "(needs model_type and model_kwargs)")
    return cfg


def load_saved_model(model_dir: Path, device: torch.device) -> tuple[EntryModel, Any, dict]:
    """Rebuild a saved model (weights, config, tokenizer) from a model dir."""
    cfg = read_model_config(model_dir)
    cls = model_class(cfg["model_type"])
    cls.check_model_dir(model_dir)
    model = build_model(cfg["model_type"], cfg["model_kwargs"])
    artifacts.load_weights(model, model_dir / artifacts.WEIGHTS)
    return model.to(device), cls.load_tokenizer_from(model_dir), cfg


def setup_model(run: TrainRun) -> ModelSetup:
    """The model of this run, with each sample's model input prepared.

    Raises:
        EntryError: the checkpoint is of another model type, the model channel holds another
            model type, or `--max-length` exceeds the encoder's positions.
    """
    args, cls = run.args, run.model_cls
    raw = artifacts.load_checkpoint(run.ckpt_dir, log=run.log) if run.ckpt_dir else None
    if raw is not None and raw.get("model_type") != run.model_type:
        raise EntryError(f"checkpoint in {run.ckpt_dir} is for model type {raw.get('model_type')!r}, "
                         f"not {run.model_type!r}; use another --checkpoint-dir")
    # Seed before the model is built so initial weights are reproducible.
    engine.set_seed(args.seed)
    if raw is not None:
        setup = _resumed(run, TrainState.from_dict(raw))
    elif args.fine_tune:
        setup = _fine_tuned(run)
    else:
        cls.prepare_samples(run.samples(), args.text_input, run.log)  # the tokenizer trains on these texts
        new = cls.from_config(model_options(args), run.train)
        setup = ModelSetup(new.model, new.tokenizer, TrainState(
            model_type=run.model_type, model_kwargs=new.kwargs, seed=args.seed, text_input=args.text_input))
    max_pos = setup.model.max_positions
    if max_pos is not None and args.max_length > max_pos:
        raise EntryError(f"--max-length {args.max_length} exceeds the encoder's {max_pos} positions")
    return setup


def _resumed(run: TrainRun, state: TrainState) -> ModelSetup:
    """The checkpoint's model rebuilt from its saved sizes (its weights are loaded with the optimizer's)."""
    model = build_model(run.model_type, state.model_kwargs)
    tokenizer = run.model_cls.load_tokenizer_from(run.ckpt_dir)
    run.model_cls.prepare_samples(run.samples(), state.text_input, run.log)
    state.seed = run.args.seed  # this run's --seed (its epochs reseed from it)
    return ModelSetup(model, tokenizer, state, resumed=True)


def _fine_tuned(run: TrainRun) -> ModelSetup:
    """The model channel's model: its weights, sizes, tokenizer and text input."""
    args = run.args
    source = require(args.model, "model channel to fine-tune from", "SM_CHANNEL_MODEL", "--model")
    prev_dir = artifacts.resolve_model_dir(source, artifacts.scratch_dir(), args.model_sha256)
    model, tokenizer, prev_cfg = load_saved_model(prev_dir, torch.device("cpu"))
    if prev_cfg["model_type"] != run.model_type:
        raise EntryError(f"--fine-tune: the model channel holds a {prev_cfg['model_type']} model, "
                         f"not {run.model_type}")
    text_input = prev_cfg.get("text_input") or "code"
    run.log(f"Fine-tuning from {source} (sizes from its config.json)")
    run.model_cls.prepare_samples(run.samples(), text_input, run.log)
    return ModelSetup(model, tokenizer, TrainState(model_type=run.model_type, model_kwargs=prev_cfg["model_kwargs"],
                                                   seed=args.seed, fine_tuned_from=source, text_input=text_input))
