"""The two model types and their defaults, defined once for the DAGs and the training entry.

This module ships in the SageMaker source dir with the rest of `streamguard.core`, so the entry
script (`training_entry/train_enhanced_models.py`) and the DAG params (`streamguard.pipeline.params`)
read the same names.
"""

from __future__ import annotations

from typing import Any

MODEL_TYPES = ("gnn", "transformer")

# The DAG form's training hyperparameters per model type, sized for a 2-core laptop on the
# generated sample data; SageMaker users raise them. On the demo's 600 pairs the GNN reaches
# validation 1.000 / FPR 0 at epoch 4; the transformer needs 6 (with 4, its test FPR was 0.042).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "gnn": {"epochs": 4, "batch_size": 16, "learning_rate": 5e-3},
    "transformer": {"epochs": 6, "batch_size": 16, "learning_rate": 1e-3},
}

# Architecture sizes per model type when the entry gets no --hidden-size / --num-layers.
MODEL_SIZES: dict[str, dict[str, int]] = {
    "gnn": {"hidden_size": 64, "num_layers": 3},
    "transformer": {"hidden_size": 128, "num_layers": 2},
}

# The entry's training options that the training DAG's trigger form exposes, per model type:
# the form's param suffix (``gnn_sink_dropout``) -> (the entry's flag, its default). The defaults are
# the entry's own (`training_entry/cli_args.py`; `tests/unit/training_entry/test_trigger_options.py`
# checks both agree), so a run with the form's defaults trains as the entry does with no flag at all.
TRAINING_OPTIONS: dict[str, dict[str, tuple[str, Any]]] = {
    "gnn": {
        "sink_dropout": ("sink-dropout", 0.0),
        "source_dropout": ("source-dropout", 0.0),
        "input_readout": ("input-readout", True),
        "kind_roles": ("kind-roles", False),
        "language_balance": ("language-balance", 0.0),
        "selection_metric": ("selection-metric", "f1"),
        "weight_averaging": ("weight-averaging", "none"),
    },
    "transformer": {
        "text_input": ("text-input", "marked-gadget"),
        "token_dropout": ("token-dropout", 0.3),
        "max_length": ("max-length", 256),
        "language_balance": ("language-balance", 0.0),
        "selection_metric": ("selection-metric", "f1"),
        "weight_averaging": ("weight-averaging", "none"),
    },
}
# Values the entry accepts for the choice options above (the entry's `SELECTION_METRICS`, `TEXT_INPUTS`).
SELECTION_METRIC_CHOICES = ("f1", "accuracy", "youden")
TEXT_INPUT_CHOICES = ("marked-gadget", "gadget", "code")
WEIGHT_AVERAGING_CHOICES = ("none", "ema")  # the entry's `weight_averaging.WEIGHT_AVERAGING`
