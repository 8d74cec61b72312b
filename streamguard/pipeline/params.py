"""Trigger-form parameters of the training DAG and their validation.

The DAG file turns `TRAINING_PARAMS` into `airflow.sdk.Param` objects (so the UI renders a form and
Airflow validates types); `resolve_training_config` validates again with messages that name the
parameter, because `airflow dags test -c` and the REST API can send anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MODEL_TYPES = ("gnn", "transformer")

# Registry model names per model type.
MODEL_NAMES = {"gnn": "taint_flow_gnn", "transformer": "sql_intent_transformer"}

# Defaults sized for a 2-core laptop on the generated sample data; SageMaker users raise them.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "gnn": {"epochs": 8, "batch_size": 16, "learning_rate": 5e-3},
    "transformer": {"epochs": 6, "batch_size": 16, "learning_rate": 5e-4},
}

# name -> (default, JSON schema, description). Order is the form's order.
TRAINING_PARAMS: dict[str, tuple[Any, dict, str]] = {
    # ["string", "null"]: optional in Airflow's trigger form (a plain "string" is a required field).
    "data_uri": ("", {"type": ["string", "null"]},
                 "JSONL(.gz) file or directory (file:// or s3://). Empty: generated sample data."),
    "sample_pairs": (120, {"type": "integer", "minimum": 10, "maximum": 5000},
                     "Vulnerable/safe pairs to generate when data_uri is empty."),
    "models": (list(MODEL_TYPES), {"type": "array", "items": {"type": "string", "enum": list(MODEL_TYPES)},
                                   "minItems": 1, "uniqueItems": True},
               "Which models to train."),
    "seed": (13, {"type": "integer", "minimum": 0}, "Seed for splitting and training."),
    "val_ratio": (0.1, {"type": "number", "minimum": 0.05, "maximum": 0.45}, "Fraction of groups for validation."),
    "test_ratio": (0.1, {"type": "number", "minimum": 0.05, "maximum": 0.45}, "Fraction of groups for the test split."),
    "gnn_epochs": (MODEL_DEFAULTS["gnn"]["epochs"], {"type": "integer", "minimum": 1, "maximum": 500},
                   "GNN epochs."),
    "gnn_batch_size": (MODEL_DEFAULTS["gnn"]["batch_size"], {"type": "integer", "minimum": 1, "maximum": 4096},
                       "GNN batch size (graphs)."),
    "gnn_learning_rate": (MODEL_DEFAULTS["gnn"]["learning_rate"],
                          {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "GNN learning rate."),
    "transformer_epochs": (MODEL_DEFAULTS["transformer"]["epochs"],
                           {"type": "integer", "minimum": 1, "maximum": 100}, "Transformer epochs."),
    "transformer_batch_size": (MODEL_DEFAULTS["transformer"]["batch_size"],
                               {"type": "integer", "minimum": 1, "maximum": 1024}, "Transformer batch size."),
    "transformer_learning_rate": (MODEL_DEFAULTS["transformer"]["learning_rate"],
                                  {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                  "Transformer learning rate."),
    "decision_threshold": (0.5, {"type": "number", "minimum": 0.01, "maximum": 0.99},
                           "Flag code when P(vulnerable) >= this; raise it to trade recall for a lower FPR."),
    "instance_type": ("ml.m5.xlarge", {"type": "string", "pattern": "^ml\\.[a-z0-9]+\\.[a-z0-9]+$"},
                      "SageMaker instance type (ignored by the local backend)."),
    "instance_count": (1, {"type": "integer", "minimum": 1, "maximum": 64},
                       "SageMaker instance count (>1 runs torchrun DDP)."),
    "use_spot": (False, {"type": "boolean"}, "Managed spot training with checkpoints (SageMaker)."),
    "max_runtime_minutes": (120, {"type": "integer", "minimum": 1, "maximum": 7200},
                            "Stop a training job after this many minutes."),
    "gnn_min_val_accuracy": (0.92, {"type": "number", "minimum": 0, "maximum": 1},
                             "Gate: minimum GNN validation accuracy."),
    "transformer_min_val_accuracy": (0.88, {"type": "number", "minimum": 0, "maximum": 1},
                                     "Gate: minimum transformer validation accuracy."),
    "max_fpr": (0.03, {"type": "number", "minimum": 0, "maximum": 1},
                "Gate: maximum false-positive rate (validation and test)."),
}


class ParamError(ValueError):
    """A trigger parameter is invalid; the message names the parameter and why."""


@dataclass(frozen=True)
class ModelTrainingConfig:
    epochs: int
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class TrainingConfig:
    """Validated configuration of one training run (JSON-serialisable through `to_dict`)."""

    models: tuple[str, ...]
    data_uri: str
    sample_pairs: int
    seed: int
    per_model: dict[str, ModelTrainingConfig]
    instance_type: str
    instance_count: int
    use_spot: bool
    max_runtime_s: int
    gate_overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    decision_threshold: float = 0.5

    def to_dict(self) -> dict:
        d = asdict(self)
        d["models"] = list(self.models)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingConfig":
        d = dict(d)
        d["models"] = tuple(d["models"])
        d["per_model"] = {k: ModelTrainingConfig(**v) for k, v in d["per_model"].items()}
        return cls(**d)


def _check(name: str, value: Any, schema: dict) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: optional in the trigger form; null means empty
        kind = next(t for t in kind if t != "null")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise ParamError(f"param {name!r}: expected an integer, got {value!r}")
    elif kind == "number":
        if isinstance(value, bool):
            raise ParamError(f"param {name!r}: expected a number, got {value!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ParamError(f"param {name!r}: expected a number, got {value!r}") from None
    elif kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ParamError(f"param {name!r}: expected true or false, got {value!r}")
    elif kind == "string":
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ParamError(f"param {name!r}: expected a string, got {value!r}")
    elif kind == "array":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"param {name!r}: expected a list, got {value!r}")
        allowed = schema.get("items", {}).get("enum")
        for item in value:
            if allowed and item not in allowed:
                raise ParamError(f"param {name!r}: {item!r} is not one of {', '.join(allowed)}")
        if len(value) < schema.get("minItems", 0):
            raise ParamError(f"param {name!r}: choose at least {schema['minItems']}")
        if schema.get("uniqueItems") and len(set(value)) != len(value):
            raise ParamError(f"param {name!r}: duplicate entries in {value!r}")
        value = list(value)
    if "minimum" in schema and value < schema["minimum"]:
        raise ParamError(f"param {name!r}: {value!r} is below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise ParamError(f"param {name!r}: {value!r} is above the maximum {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        raise ParamError(f"param {name!r}: {value!r} must be greater than {schema['exclusiveMinimum']}")
    if "pattern" in schema:
        import re

        if not re.fullmatch(schema["pattern"], value):
            raise ParamError(f"param {name!r}: {value!r} does not match {schema['pattern']}")
    return value


def check_input_uri(name: str, value: str) -> str:
    """An input URI param (``data_uri``, ``feedback_uri``) checked by ``streamguard.uri_policy``."""
    from streamguard.uri_policy import UriPolicyError, check_input_uri as check

    try:
        return check(value, name)
    except UriPolicyError as exc:
        raise ParamError(str(exc)) from None


def resolve_training_config(params: dict[str, Any]) -> TrainingConfig:
    """Validate trigger params (defaults filled in) into a `TrainingConfig`.

    Raises:
        ParamError: naming the parameter, the value and the rule it breaks; unknown keys included.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(TRAINING_PARAMS))
    if unknown:
        raise ParamError(f"unknown param(s) {', '.join(map(repr, unknown))}; known: {', '.join(TRAINING_PARAMS)}")
    v = {name: _check(name, params.get(name, default), schema)
         for name, (default, schema, _doc) in TRAINING_PARAMS.items()}
    models = tuple(m for m in MODEL_TYPES if m in v["models"])
    per_model = {
        m: ModelTrainingConfig(epochs=v[f"{m}_epochs"], batch_size=v[f"{m}_batch_size"],
                               learning_rate=v[f"{m}_learning_rate"])
        for m in MODEL_TYPES
    }
    gate_overrides = {
        "gnn": {"min_val_accuracy": v["gnn_min_val_accuracy"], "max_fpr": v["max_fpr"]},
        "transformer": {"min_val_accuracy": v["transformer_min_val_accuracy"], "max_fpr": v["max_fpr"]},
    }
    return TrainingConfig(
        models=models, data_uri=check_input_uri("data_uri", v["data_uri"]),
        sample_pairs=v["sample_pairs"], seed=v["seed"],
        per_model=per_model, val_ratio=v["val_ratio"], test_ratio=v["test_ratio"],
        decision_threshold=v["decision_threshold"],
        instance_type=v["instance_type"], instance_count=v["instance_count"],
        use_spot=v["use_spot"], max_runtime_s=v["max_runtime_minutes"] * 60, gate_overrides=gate_overrides,
    )


# ------------------------------------------------------------------ the retraining DAG's params
# Here, not in `pipeline.retraining`, so that parsing the DAG imports nothing else.
FEEDBACK_ASSET_NAME = "streamguard_feedback"

# name -> (default, JSON schema, description)
RETRAINING_PARAMS: dict[str, tuple[Any, dict, str]] = {
    "feedback_uri": ("", {"type": ["string", "null"]},
                     "Feedback JSONL(.gz) file or directory. Empty: <artifact root>/feedback/."),
    "force": (False, {"type": "boolean"}, "Retrain even when no trigger fires (still recorded)."),
    "models": (list(MODEL_TYPES), {"type": "array", "items": {"type": "string", "enum": list(MODEL_TYPES)},
                                   "minItems": 1, "uniqueItems": True}, "Which models to consider."),
    "accuracy_drop": (0.05, {"type": "number", "minimum": 0, "maximum": 1},
                      "Retrain when production accuracy < baseline - this."),
    "fpr_rise": (0.02, {"type": "number", "minimum": 0, "maximum": 1},
                 "Retrain when production FPR > baseline + this."),
    "min_feedback": (1000, {"type": "integer", "minimum": 1}, "Retrain once this many new feedback records exist."),
    "max_age_days": (30, {"type": "integer", "minimum": 1}, "Retrain when the champion is older than this."),
    "cooldown_days": (7, {"type": "number", "minimum": 0}, "No new retraining within this window unless severe."),
    "finetune_epochs": (3, {"type": "integer", "minimum": 1, "maximum": 100}, "Fine-tuning epochs."),
    "finetune_learning_rate": (0.0, {"type": "number", "minimum": 0, "maximum": 1},
                               "Fine-tuning learning rate; 0 = the champion's learning rate × finetune_lr_factor."),
    "finetune_lr_factor": (0.3, {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                           "Fine-tuning learning rate = champion's learning rate × this."),
    "min_gain": (0.01, {"type": "number", "minimum": 0, "maximum": 1}, "Promotion: minimum accuracy gain."),
    "max_fpr_rise": (0.005, {"type": "number", "minimum": 0, "maximum": 1}, "Promotion: maximum FPR rise."),
    "alpha": (0.05, {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
              "Promotion: significance level (McNemar exact test)."),
    "slice_tolerance": (0.02, {"type": "number", "minimum": 0, "maximum": 1},
                        "Promotion: largest accuracy drop allowed on any CWE/language slice."),
    "gnn_min_val_accuracy": (0.92, {"type": "number", "minimum": 0, "maximum": 1}, "Gate for the GNN."),
    "transformer_min_val_accuracy": (0.88, {"type": "number", "minimum": 0, "maximum": 1},
                                     "Gate for the transformer."),
    "max_fpr": (0.03, {"type": "number", "minimum": 0, "maximum": 1}, "Gate: maximum FPR."),
    "ab_challenger_weight": (0.1, {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
                             "Traffic share of the challenger in the A/B endpoint plan."),
}
