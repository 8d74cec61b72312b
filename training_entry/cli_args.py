"""The entry's flags: SageMaker hyperparameters arrive as `--name value` strings.

String values may come JSON-quoted (the SageMaker Python SDK's `"\"gnn\""`), booleans as
"True"/"False"; unknown `sagemaker_*` keys are ignored and any other unknown flag is an error.
Paths default to the SageMaker container's environment (`SM_CHANNEL_*`, `SM_MODEL_DIR`,
`SM_OUTPUT_DATA_DIR`, `SM_CHECKPOINT_DIR`). `parse_args` raises `EntryError` with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

import text_inputs
from entry_errors import EntryError
from train_state import SELECTION_METRICS
from weight_averaging import DEFAULT_EMA_DECAY, WARMUP, WEIGHT_AVERAGING
from streamguard.core.model_types import MODEL_SIZES, MODEL_TYPES

DESCRIPTION = ("StreamGuard SageMaker script-mode entry: train or evaluate the Taint-Flow GNN or the SQL "
               "Intent Transformer.")


# ----------------------------------------------------------------------------------- arguments
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - raise instead of exiting, so the failure file is written
        raise EntryError(f"invalid arguments: {message}")


def _unquote(value: str) -> str:
    # The SageMaker Python SDK JSON-encodes string hyperparameters ("\"gnn\"").
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
            if isinstance(decoded, str):
                return decoded
        except json.JSONDecodeError:
            pass
    return value


def _str(value: str) -> str:
    return _unquote(value)


def _int(value: str) -> int:
    text = _unquote(value)
    try:
        as_float = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if not as_float.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}")
    return int(as_float)


def _float(value: str) -> float:
    try:
        out = float(_unquote(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value!r}")
    return out


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = _unquote(value).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def _optional_path(value: str) -> str | None:
    text = _unquote(value)
    return None if text.lower() in ("", "none", "null") else text


def _default_checkpoint_dir() -> str | None:
    if os.environ.get("SM_CHECKPOINT_DIR"):
        return os.environ["SM_CHECKPOINT_DIR"]
    if Path("/opt/ml").is_dir():  # running in a SageMaker container
        return "/opt/ml/checkpoints"
    return None


def _size_help(size: str) -> str:
    return f"GNN {MODEL_SIZES['gnn'][size]}, transformer {MODEL_SIZES['transformer'][size]} by default"


def build_parser() -> argparse.ArgumentParser:
    """The entry's flags; each `--a-b` also answers to `--a_b`."""
    env = os.environ.get
    p = _Parser(prog="train_enhanced_models.py", description=DESCRIPTION, allow_abbrev=False)

    def add(flag: str, **kw: Any) -> None:
        names = [flag] + ([flag.replace("-", "_").replace("__", "--", 1)] if "-" in flag[2:] else [])
        p.add_argument(*names, **kw)

    add("--mode", type=_str, choices=("train", "evaluate"), default="train")
    add("--model-type", type=_str, choices=MODEL_TYPES, default=None,
        help="required to train; in evaluate mode read from the model's config.json")
    add("--epochs", type=_int, default=10)
    add("--batch-size", type=_int, default=32)
    add("--learning-rate", type=_float, default=1e-3)
    add("--weight-decay", type=_float, default=0.01)
    add("--seed", type=_int, default=13)
    add("--fine-tune", type=_bool, nargs="?", const=True, default=False,
        help="start from the weights in the model channel (sizes from its config.json)")
    add("--hidden-size", type=_int, default=None, help=_size_help("hidden_size"))
    add("--num-layers", type=_int, default=None, help=_size_help("num_layers"))
    add("--num-heads", type=_int, default=4, help="transformer attention heads (offline default encoder)")
    add("--dropout", type=_float, default=0.1)
    add("--max-length", type=_int, default=256, help="transformer: tokens per input")
    add("--vocab-size", type=_int, default=8000, help="transformer: BPE vocabulary trained on the train split")
    add("--text-input", type=_str, choices=text_inputs.TEXT_INPUTS, default=text_inputs.DEFAULT_TEXT_INPUT,
        help="transformer: 'gadget' (statements that reach a sink, dead code left out) or 'code' (all of it)")
    add("--pretrained", type=_optional_path, default=None,
        help="transformer: HF model name or local dir instead of the small offline encoder")
    add("--patience", type=_int, default=3, help="early stopping: epochs without improvement (0: off)")
    add("--selection-metric", type=_str, choices=SELECTION_METRICS, default="f1",
        help="the validation metric that picks the best epoch and drives early stopping "
             "('youden': TPR − FPR, which charges a false positive as much as a miss)")
    add("--max-train-samples", type=_int, default=None, help="seeded subset of the train split (smoke runs)")
    add("--sink-dropout", type=_float, default=0.0,
        help="GNN: share of training graphs drawn as if the catalog knew none of their sinks (0: none)")
    add("--source-dropout", type=_float, default=0.0,
        help="GNN: share of training graphs drawn as if the catalog knew none of their sources (source "
             "flags and taint cleared; 0: none)")
    add("--token-dropout", type=_float, default=0.3,
        help="transformer: share of the code words of each training text dropped, drawn anew each epoch "
             "(the gadget's analysis markers are kept; 0: none)")
    add("--input-readout", type=_bool, nargs="?", const=True, default=True,
        help="GNN: the head also reads each 0/1 node flag's maximum over the graph (the featurizer's "
             "verdicts, unmixed by message passing); 'false' for the plain readout")
    add("--embedding-init", type=_str, choices=("zero", "normal"), default="zero",
        help="GNN: kind and subtoken embeddings start at zero (what training never sees then adds nothing "
             "at inference) or as N(0, 0.1), as before")
    add("--language-balance", type=_float, default=0.0,
        help="draw training samples of each language with weight count**-x (0: as they occur; 1: every "
             "language an equal share each epoch; with replacement, not with distributed training)")
    add("--kind-roles", type=_bool, nargs="?", const=True, default=False,
        help="GNN: each node also adds the embedding of its kind's language-neutral role (a call, a string "
             "literal, an assignment ...), shared by Java and Python kinds")
    add("--weight-averaging", type=_str, choices=WEIGHT_AVERAGING, default="none",
        help="'ema': after every optimizer step keep an exponential moving average of the weights "
             "(parameters and floating buffers); validation scores it and the model dir gets the best "
             "epoch's average. 'none': the trained weights, as before")
    add("--ema-decay", type=_float, default=DEFAULT_EMA_DECAY,
        help="with --weight-averaging ema, in (0, 1): shadow = d*shadow + (1-d)*param with the warm-up "
             f"d = {WARMUP}, n the updates so far (so a short run is not dominated by the initial weights)")
    add("--threshold", type=_float, default=None, help="P(vulnerable) cut-off; default 0.5 or the model's")
    add("--num-workers", type=_int, default=0)
    add("--progress-interval-s", type=_float, default=30.0,
        help="seconds between in-epoch progress lines in logs (0: none); a terminal gets a rich bar")
    add("--checkpoint-dir", type=_optional_path, default=_default_checkpoint_dir())
    add("--train", type=_optional_path, default=env("SM_CHANNEL_TRAIN"))
    add("--validation", type=_optional_path, default=env("SM_CHANNEL_VALIDATION"))
    add("--test", type=_optional_path, default=env("SM_CHANNEL_TEST"))
    add("--model", type=_optional_path, default=env("SM_CHANNEL_MODEL"))
    add("--model-sha256", type=_optional_path, default=None,
        help="sha256 the model channel's model.tar.gz must have (the registry's); checked before loading")
    add("--model-dir", type=_optional_path, default=env("SM_MODEL_DIR"))
    add("--output-data-dir", type=_optional_path, default=env("SM_OUTPUT_DATA_DIR"))
    return p


def _strip_sagemaker_keys(unknown: list[str]) -> list[str]:
    """Drop `--sagemaker_*` flags (and their values); return whatever else is left."""
    rest: list[str] = []
    i = 0
    while i < len(unknown):
        tok = unknown[i]
        name = tok[2:].split("=", 1)[0] if tok.startswith("--") else None
        if name is not None and name.replace("-", "_").startswith("sagemaker_"):
            i += 1
            if "=" not in tok and i < len(unknown) and not unknown[i].startswith("--"):
                i += 1
            continue
        rest.append(tok)
        i += 1
    return rest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the flags (raises EntryError with the reason)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    rest = _strip_sagemaker_keys(unknown)
    if rest:
        raise EntryError(f"invalid arguments: unrecognized {' '.join(rest)} "
                         f"(see --help; only sagemaker_* keys are ignored)")
    checks = [
        (args.epochs >= 1, f"--epochs must be >= 1, got {args.epochs}"),
        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
        (args.learning_rate > 0, f"--learning-rate must be > 0, got {args.learning_rate}"),
        (args.weight_decay >= 0, f"--weight-decay must be >= 0, got {args.weight_decay}"),
        (0 <= args.dropout < 1, f"--dropout must be in [0, 1), got {args.dropout}"),
        (args.max_length >= 8, f"--max-length must be >= 8, got {args.max_length}"),
        (args.vocab_size >= 300, f"--vocab-size must be >= 300 (256 bytes + specials), got {args.vocab_size}"),
        (args.threshold is None or 0 <= args.threshold <= 1, f"--threshold must be in [0, 1], got {args.threshold}"),
        (0 <= args.sink_dropout <= 1, f"--sink-dropout must be in [0, 1], got {args.sink_dropout}"),
        (0 <= args.source_dropout <= 1, f"--source-dropout must be in [0, 1], got {args.source_dropout}"),
        (0 <= args.language_balance <= 1, f"--language-balance must be in [0, 1], got {args.language_balance}"),
        (0 <= args.token_dropout < 1, f"--token-dropout must be in [0, 1), got {args.token_dropout}"),
        (0 < args.ema_decay < 1, f"--ema-decay must be in (0, 1), got {args.ema_decay}"),
        (args.max_train_samples is None or args.max_train_samples >= 1,
         f"--max-train-samples must be >= 1, got {args.max_train_samples}"),
        (args.num_workers >= 0, f"--num-workers must be >= 0, got {args.num_workers}"),
        (args.progress_interval_s >= 0, f"--progress-interval-s must be >= 0, got {args.progress_interval_s}"),
        (args.hidden_size is None or args.hidden_size >= 1, f"--hidden-size must be >= 1, got {args.hidden_size}"),
        (args.num_layers is None or args.num_layers >= 1, f"--num-layers must be >= 1, got {args.num_layers}"),
    ]
    for ok, message in checks:
        if not ok:
            raise EntryError(f"invalid arguments: {message}")
    if args.mode == "train" and args.model_type is None:
        raise EntryError("invalid arguments: --model-type gnn|transformer is required to train")
    return args
