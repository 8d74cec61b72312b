"""The two StreamGuard models, found by model type, and a factory that rebuilds either from its saved
constructor kwargs."""

from __future__ import annotations

import inspect

from streamguard.core.model_types import MODEL_TYPES

from .common import BatchOutput, EntryModel, ModelOptions, NewModel
from .gnn import EnhancedTaintFlowGNN
from .transformer import EnhancedSQLIntentTransformer

MODEL_CLASSES: dict[str, type[EntryModel]] = {cls.model_type: cls
                                              for cls in (EnhancedTaintFlowGNN, EnhancedSQLIntentTransformer)}
if tuple(MODEL_CLASSES) != MODEL_TYPES:  # one list of model types for the DAGs and the entry
    raise ImportError(f"model classes {tuple(MODEL_CLASSES)} differ from MODEL_TYPES {MODEL_TYPES}")


def model_class(model_type: str) -> type[EntryModel]:
    """The class of `model_type` ("gnn" | "transformer")."""
    try:
        return MODEL_CLASSES[model_type]
    except KeyError:
        raise ValueError(f"unknown model type {model_type!r} (expected one of {sorted(MODEL_CLASSES)})") from None


def build_model(model_type: str, kwargs: dict) -> EntryModel:
    """Instantiate a model of `model_type` from its constructor kwargs (`config.json`'s `model_kwargs`).

    Raises ValueError naming the keys this code does not know (a model saved by a newer or a
    different version of the entry), rather than Python's bare TypeError.
    """
    cls = model_class(model_type)
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"{model_type} model_kwargs has keys this version of the entry does not know: {unknown} "
                         f"(known: {sorted(known)}); was the model saved by another version?")
    return cls(**kwargs)


__all__ = ["BatchOutput", "EnhancedSQLIntentTransformer", "EnhancedTaintFlowGNN", "EntryModel", "MODEL_CLASSES",
           "ModelOptions", "NewModel", "build_model", "model_class"]
