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
