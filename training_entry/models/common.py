"""What the training entry asks of a model class: one batch in, one uniform result out, and the few
things the two models do differently (their inputs, their tokenizer, their saved companions).

Each model class subclasses `EntryModel` and overrides what applies to it; the entry's loop and
its model-dir writer call these hooks and never ask which model type they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


@dataclass
class BatchOutput:
    """One batch through a model: `logits [B, C]`, the batch's `labels [B]` (on the model's device),
    and `anomaly_score [B]` where the model has one (the transformer's energy score)."""

    logits: Tensor
    labels: Tensor
    anomaly_score: Tensor | None = None


@dataclass(frozen=True)
class ModelOptions:
    """Sizes a new model is built with (the entry's flags, defaults resolved)."""

    hidden_size: int
    num_layers: int
    dropout: float = 0.1
    num_heads: int = 4
    max_length: int = 256
    vocab_size: int = 8000
    pretrained: str | None = None
    input_readout: bool = False
    embedding_std: float = 0.0
    kind_roles: bool = False


@dataclass
class NewModel:
    """A freshly built model, its tokenizer (None for the GNN) and the constructor kwargs to save."""

    model: "EntryModel"
    tokenizer: Any
    kwargs: dict


class EntryModel(nn.Module):
    """Base of the StreamGuard models: the training entry's per-model hooks, with their defaults."""

    model_type: ClassVar[str]
    needs_graphs: ClassVar[bool] = False      # read_samples builds/loads graphs for it
    warmup: ClassVar[bool] = False            # learning rate warm-up and linear decay (engine)
    has_anomaly_score: ClassVar[bool] = False  # `BatchOutput.anomaly_score` is set (predictions carry it)
    max_positions: int | None = None          # longest token input, where the model has one

    @classmethod
    def from_config(cls, options: ModelOptions, train_samples: Sequence) -> NewModel:
        """A new model sized by `options` (the transformer also trains its tokenizer on `train_samples`)."""
        raise NotImplementedError

    def forward_batch(self, batch: Any, device: torch.device, net: nn.Module | None = None) -> BatchOutput:
        """Run one loader batch.

        Args:
            batch: what this model's loader yields.
            device: where the inputs go.
            net: what runs the forward pass: this model or a DistributedDataParallel wrapper of it
                (DDP averages gradients only for a forward through the wrapper); default: this model.
        """
        raise NotImplementedError

    @classmethod
    def prepare_samples(cls, samples: Sequence, text_input: str | None,
                        log: Callable[[str], None] | None = None) -> None:
        """Compute what the model reads from each sample once, before loaders are built (default: nothing)."""

    @classmethod
    def load_tokenizer_from(cls, directory: Path) -> Any:
        """The tokenizer saved under `directory` (a model or checkpoint dir); None: the model has none."""
        return None

    @classmethod
    def check_model_dir(cls, model_dir: Path) -> None:
        """Refuse a saved model dir this code cannot use (default: every dir is fine)."""

    @classmethod
    def companion_json(cls) -> dict[str, Any]:
        """Extra JSON files written beside the weights (name -> content)."""
        return {}

    @classmethod
    def saved_config(cls, *, max_length: int, text_input: str | None, pretrained: str | None) -> dict:
        """The model-specific fields of `config.json`."""
        return {"featurizer_version": None, "max_length": None, "text_input": None, "pretrained_sha256": None}
