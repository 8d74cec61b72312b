"""The two StreamGuard models and a factory that rebuilds either from its saved constructor kwargs."""

from __future__ import annotations

from torch import nn

from .gnn import EnhancedTaintFlowGNN
from .transformer import EnhancedSQLIntentTransformer

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "gnn": EnhancedTaintFlowGNN,
    "transformer": EnhancedSQLIntentTransformer,
}


def build_model(model_type: str, kwargs: dict) -> nn.Module:
    """Instantiate a model of `model_type` ("gnn" | "transformer") from its constructor kwargs."""
    try:
        cls = MODEL_CLASSES[model_type]
    except KeyError:
        raise ValueError(f"unknown model type {model_type!r} (expected one of {sorted(MODEL_CLASSES)})") from None
    return cls(**kwargs)


__all__ = ["EnhancedSQLIntentTransformer", "EnhancedTaintFlowGNN", "MODEL_CLASSES", "build_model"]
