"""Trigger-form parameters of the training DAG and their validation.

The DAG file turns `TRAINING_PARAMS` into `airflow.sdk.Param` objects (so the UI renders a form and
Airflow validates types); `resolve_training_config` validates again with messages that name the
parameter, because `airflow dags test -c` and the REST API can send anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import math
from typing import TYPE_CHECKING, Any

from streamguard.core.model_types import (  # noqa: F401  (MODEL_TYPES re-exported)
    MODEL_DEFAULTS, MODEL_TYPES, SELECTION_METRIC_CHOICES, TEXT_INPUT_CHOICES, TRAINING_OPTIONS,
    WEIGHT_AVERAGING_CHOICES)

if TYPE_CHECKING:
    from streamguard.pipeline.records import RetrainingConfig

# Registry model names per model type.
MODEL_NAMES = {"gnn": "taint_flow_gnn", "transformer": "sql_intent_transformer"}

# Trigger-form sections (Airflow's Param `section`), in the form's order.
DATA, MODELS, GNN, TRANSFORMER, GATE, SAGEMAKER = (
    "Data", "Models", "Taint-Flow GNN", "SQL Intent Transformer", "Metric gate", "SageMaker")
# Largest seed every library takes (numpy's seeds are 32-bit).
MAX_SEED = 2**32 - 1
# A gate param left empty means "the deployment's threshold" (see `streamguard.gate_policy`).
_GATE_NOTE = " Empty: the deployment's threshold; the form may only tighten it."


def _shared_options(model_type: str, section: str, samples: str) -> dict[str, tuple[Any, dict, str]]:
    """The form's entries of the training options both models have (`TRAINING_OPTIONS`)."""
    options = TRAINING_OPTIONS[model_type]
    return {
        f"{model_type}_language_balance": (
            options["language_balance"][1], {"type": "number", "minimum": 0, "maximum": 1, "section": section},
            f"Draw training {samples} of each language with weight count^-x (0: as they occur; 1: an equal "
            "share per language each epoch; not with instance_count > 1)."),
        f"{model_type}_selection_metric": (
            options["selection_metric"][1],
            {"type": "string", "enum": list(SELECTION_METRIC_CHOICES), "section": section},
            "Validation metric that picks the best epoch and drives early stopping (youden: TPR - FPR)."),
        f"{model_type}_weight_averaging": (
            options["weight_averaging"][1],
            {"type": "string", "enum": list(WEIGHT_AVERAGING_CHOICES), "section": section},
            "ema: validate and keep an exponential moving average of the weights (decay 0.99), not the "
            "last step's."),
    }


# name -> (default, JSON schema, description). Order is the form's order; `section` groups the form.
TRAINING_PARAMS: dict[str, tuple[Any, dict, str]] = {
    # ["string", "null"]: optional in Airflow's trigger form (a plain "string" is a required field).
    "data_uri": ("", {"type": ["string", "null"], "section": DATA},
                 "JSONL(.gz) file or directory (file:// or s3://). Empty: generated sample data."),
    # 600 pairs: about 70 safe functions each in validation and test (10 % each), so that one false
    # positive is an FPR under the gate's 3 %, and enough variety for both models to learn from.
    "sample_pairs": (600, {"type": "integer", "minimum": 10, "maximum": 5000, "section": DATA},
                     "Vulnerable/safe pairs to generate when data_uri is empty (pairs)."),
    "seed": (13, {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "section": DATA},
             "Seed for splitting and training."),
    "val_ratio": (0.1, {"type": "number", "minimum": 0.05, "maximum": 0.45, "section": DATA},
                  "Fraction of groups for validation."),
    "test_ratio": (0.1, {"type": "number", "minimum": 0.05, "maximum": 0.45, "section": DATA},
                   "Fraction of groups for the test split."),
    "prepare_shards": (0, {"type": "integer", "minimum": 0, "maximum": 64, "section": DATA},
                       "Graph building runs as this many parallel tasks on the workers (0: one per "
                       "2,000 records, at most 64)."),
    "transform_variants": (0, {"type": "integer", "minimum": 0, "maximum": 8, "section": DATA},
                           "Program-transformation variants per training record (renames, helpers, dead "
                           "code, sanitizers...; streamguard.data.transforms). 0: none."),
    "models": (list(MODEL_TYPES), {"type": "array", "items": {"type": "string", "enum": list(MODEL_TYPES)},
                                   "examples": list(MODEL_TYPES), "minItems": 1, "uniqueItems": True,
                                   "section": MODELS},
               "Which models to train (pick one or both)."),
    "decision_threshold": (0.5, {"type": "number", "minimum": 0.01, "maximum": 0.99, "section": MODELS},
                           "Flag code when P(vulnerable) >= this (probability); raise it to trade recall "
                           "for a lower FPR."),
    "gnn_epochs": (MODEL_DEFAULTS["gnn"]["epochs"],
                   {"type": "integer", "minimum": 1, "maximum": 500, "section": GNN}, "GNN epochs."),
    "gnn_batch_size": (MODEL_DEFAULTS["gnn"]["batch_size"],
                       {"type": "integer", "minimum": 1, "maximum": 4096, "section": GNN},
                       "GNN batch size (graphs per step)."),
    "gnn_learning_rate": (MODEL_DEFAULTS["gnn"]["learning_rate"],
                          {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "section": GNN},
                          "GNN learning rate (AdamW step size)."),
    "gnn_sink_dropout": (TRAINING_OPTIONS["gnn"]["sink_dropout"][1],
                         {"type": "number", "minimum": 0, "maximum": 1, "section": GNN},
                         "Share of training graphs drawn as if the catalog knew none of their sinks, so the model "
                         "also learns sinks by their names and argument flow (fraction; 0: none)."),
    "gnn_source_dropout": (TRAINING_OPTIONS["gnn"]["source_dropout"][1],
                           {"type": "number", "minimum": 0, "maximum": 1, "section": GNN},
                           "Share of training graphs drawn as if the catalog knew none of their sources, so the "
                           "model also judges what reaches a sink, wherever it came from (fraction; 0: none)."),
    "gnn_input_readout": (TRAINING_OPTIONS["gnn"]["input_readout"][1], {"type": "boolean", "section": GNN},
                          "The head also reads each 0/1 node flag's maximum over the graph (the taint "
                          "analysis' verdicts)."),
    "gnn_kind_roles": (TRAINING_OPTIONS["gnn"]["kind_roles"][1], {"type": "boolean", "section": GNN},
                       "Each node also reads its kind's language-neutral role (a call, a string literal, ...), "
                       "shared by Java and Python."),
    **_shared_options("gnn", GNN, "graphs"),
    "transformer_epochs": (MODEL_DEFAULTS["transformer"]["epochs"],
                           {"type": "integer", "minimum": 1, "maximum": 100, "section": TRANSFORMER},
                           "Transformer epochs."),
    "transformer_batch_size": (MODEL_DEFAULTS["transformer"]["batch_size"],
                               {"type": "integer", "minimum": 1, "maximum": 1024, "section": TRANSFORMER},
                               "Transformer batch size (functions per step)."),
    "transformer_learning_rate": (MODEL_DEFAULTS["transformer"]["learning_rate"],
                                  {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "section": TRANSFORMER},
                                  "Transformer learning rate (AdamW step size)."),
    "transformer_text_input": (TRAINING_OPTIONS["transformer"]["text_input"][1],
                               {"type": "string", "enum": list(TEXT_INPUT_CHOICES), "section": TRANSFORMER},
                               "What the transformer reads: marked-gadget (the statements that reach a sink, led "
                               "by the taint analysis' markers), gadget (the same, unmarked) or code (all of it)."),
    "transformer_token_dropout": (TRAINING_OPTIONS["transformer"]["token_dropout"][1],
                                  {"type": "number", "minimum": 0, "maximum": 0.95, "section": TRANSFORMER},
                                  "Share of each training text's code words dropped, drawn anew each epoch (the "
                                  "markers stay; fraction; 0: none)."),
    "transformer_max_length": (TRAINING_OPTIONS["transformer"]["max_length"][1],
                               {"type": "integer", "minimum": 8, "maximum": 512, "section": TRANSFORMER},
                               "Tokens per input (longer inputs are cut)."),
    **_shared_options("transformer", TRANSFORMER, "texts"),
    "gnn_min_val_accuracy": (None, {"type": ["number", "null"], "minimum": 0, "maximum": 1, "section": GATE},
                             "Gate: minimum GNN validation accuracy (fraction)." + _GATE_NOTE),
    "transformer_min_val_accuracy": (None, {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                            "section": GATE},
                                     "Gate: minimum transformer validation accuracy (fraction)." + _GATE_NOTE),
    "max_fpr": (None, {"type": ["number", "null"], "minimum": 0, "maximum": 1, "section": GATE},
                "Gate: maximum false-positive rate on validation and test (fraction)." + _GATE_NOTE),
    "instance_type": ("ml.m5.xlarge", {"type": "string", "pattern": "^ml\\.[a-z0-9]+\\.[a-z0-9]+$",
                                       "section": SAGEMAKER},
                      "SageMaker instance type, e.g. ml.g5.xlarge (ignored by the local backend)."),
    "instance_count": (1, {"type": "integer", "minimum": 1, "maximum": 64, "section": SAGEMAKER},
                       "SageMaker instances (>1 runs torchrun DDP)."),
    "use_spot": (False, {"type": "boolean", "section": SAGEMAKER},
                 "Managed spot training with checkpoints (SageMaker)."),
    "max_runtime_minutes": (120, {"type": "integer", "minimum": 1, "maximum": 7200, "section": SAGEMAKER},
                            "Stop a training job after this long (minutes)."),
}

# Keys of a param's schema that only shape the form; validation ignores them.
_FORM_KEYS = ("section", "examples", "title", "values_display")


def _range_text(schema: dict) -> str:
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum")
    if lo is None and hi is None:
        return ""
    left = "(" if "exclusiveMinimum" in schema else "["
    return f" Range: {left}{'' if lo is None else lo}, {'' if hi is None else hi}]."


def form_params(table: dict[str, tuple[Any, dict, str]]) -> dict[str, tuple[Any, dict]]:
    """name -> (default, keyword arguments of `airflow.sdk.Param`), ranges added to descriptions."""
    return {name: (default, {"description": doc + _range_text(schema), **schema})
            for name, (default, schema, doc) in table.items()}


class ParamError(ValueError):
    """A trigger parameter is invalid; the message names the parameter and why."""


@dataclass(frozen=True)
class ModelTrainingConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    # The entry's other training flags (`TRAINING_OPTIONS`): flag name -> value, e.g. {"sink-dropout": 0.1}.
    options: dict[str, Any] = field(default_factory=dict)


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
    # threshold name -> where its value came from, per model type (see `streamguard.gate_policy`)
    gate_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    decision_threshold: float = 0.5
    prepare_shards: int = 0  # 0: streamguard.data.prepare.auto_shards
    transform_variants: int = 0  # per training record, streamguard.data.transforms (0: none)

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
    if isinstance(kind, list):  # [..., "null"]: optional in the trigger form; null means empty
        kind = next(t for t in kind if t != "null")
        if value is None or (kind == "number" and isinstance(value, str) and not value.strip()):
            return "" if kind == "string" else None
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
        if not math.isfinite(value):  # NaN passes every comparison below; inf is never meant
            raise ParamError(f"param {name!r}: expected a finite number, got {value!r}")
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
        if "enum" in schema and value not in schema["enum"]:
            raise ParamError(f"param {name!r}: {value!r} is not one of {', '.join(schema['enum'])}")
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
    if v["instance_count"] > 1:
        from streamguard.jobs.images import is_gpu_instance

        # Several instances run the entry under SageMaker's `torch_distributed` (torchrun), which AWS
        # supports on GPU (and Trainium) instances only; one CPU instance uses its cores on its own.
        if not is_gpu_instance(v["instance_type"]):
            raise ParamError(f"param 'instance_count': {v['instance_count']} instances of {v['instance_type']!r}: "
                             "multi-instance (torch_distributed) training needs a GPU instance type such as "
                             "ml.g5.12xlarge; use instance_count 1 on CPU instance types")
        # The entry refuses to draw by language under DDP (its sampler is not a distributed one).
        balanced = [f"{m}_language_balance" for m in MODEL_TYPES if v[f"{m}_language_balance"]]
        if balanced:
            raise ParamError(f"param {balanced[0]!r}: language balance is not available with "
                             f"instance_count {v['instance_count']} (distributed training); set it to 0 or "
                             "use one instance")
    models = tuple(m for m in MODEL_TYPES if m in v["models"])
    per_model = {
        m: ModelTrainingConfig(epochs=v[f"{m}_epochs"], batch_size=v[f"{m}_batch_size"],
                               learning_rate=v[f"{m}_learning_rate"],
                               options={flag: v[f"{m}_{name}"] for name, (flag, _d) in TRAINING_OPTIONS[m].items()})
        for m in MODEL_TYPES
    }
    gates = resolve_gates(v)
    gate_overrides = {m: g.thresholds.to_dict() for m, g in gates.items()}
    gate_sources = {m: g.sources for m, g in gates.items()}
    return TrainingConfig(
        models=models, data_uri=check_input_uri("data_uri", v["data_uri"]),
        sample_pairs=v["sample_pairs"], seed=v["seed"],
        per_model=per_model, val_ratio=v["val_ratio"], test_ratio=v["test_ratio"],
        decision_threshold=v["decision_threshold"], prepare_shards=v["prepare_shards"],
        transform_variants=v["transform_variants"],
        instance_type=v["instance_type"], instance_count=v["instance_count"],
        use_spot=v["use_spot"], max_runtime_s=v["max_runtime_minutes"] * 60, gate_overrides=gate_overrides,
        gate_sources=gate_sources,
    )


def resolve_gates(values: dict[str, Any]) -> dict:
    """Per model type, the deployment's gate tightened by the trigger params (`gate_policy.AppliedGate`).

    Raises:
        ParamError: a gate param would loosen the deployment's gate, or the deployment setting is invalid.
    """
    from streamguard.gate import GateConfigError
    from streamguard.gate_policy import apply_trigger_thresholds, deployment_gate, read_deployment_setting

    try:
        setting, origin = read_deployment_setting()
        return {
            m: apply_trigger_thresholds(
                m, {"min_val_accuracy": (f"{m}_min_val_accuracy", values.get(f"{m}_min_val_accuracy")),
                    "max_fpr": ("max_fpr", values.get("max_fpr"))},
                deployment_gate(m, setting, origin))
            for m in MODEL_TYPES
        }
    except (GateConfigError, ValueError) as exc:
        raise ParamError(str(exc)) from None


# ------------------------------------------------------------------ the retraining DAG's params
# Here, not in `pipeline.retraining`, so that parsing the DAG imports nothing else.
FEEDBACK_ASSET_NAME = "streamguard_feedback"

# Sections of the retraining DAG's form.
FEEDBACK, TRIGGERS, FINETUNE, PROMOTION, AB = ("Feedback", "Retraining triggers", "Fine-tuning",
                                              "Champion/challenger promotion", "A/B endpoint")

# name -> (default, JSON schema, description)
RETRAINING_PARAMS: dict[str, tuple[Any, dict, str]] = {
    "feedback_uri": ("", {"type": ["string", "null"], "section": FEEDBACK},
                     "Feedback JSONL(.gz) file or directory (file:// or s3://). Empty: <artifact root>/feedback/."),
    "models": (list(MODEL_TYPES), {"type": "array", "items": {"type": "string", "enum": list(MODEL_TYPES)},
                                   "examples": list(MODEL_TYPES), "minItems": 1, "uniqueItems": True,
                                   "section": MODELS},
               "Which models to consider (pick one or both)."),
    "force": (False, {"type": "boolean", "section": TRIGGERS}, "Retrain even when no trigger fires (still recorded)."),
    "accuracy_drop": (0.05, {"type": "number", "minimum": 0, "maximum": 1, "section": TRIGGERS},
                      "Retrain when production accuracy < baseline - this (fraction)."),
    "fpr_rise": (0.02, {"type": "number", "minimum": 0, "maximum": 1, "section": TRIGGERS},
                 "Retrain when production FPR > baseline + this (fraction)."),
    "min_feedback": (1000, {"type": "integer", "minimum": 1, "maximum": 10**9, "section": TRIGGERS},
                     "Retrain once this many new feedback records exist (records)."),
    "max_age_days": (30, {"type": "integer", "minimum": 1, "maximum": 3650, "section": TRIGGERS},
                     "Retrain when the champion is older than this (days)."),
    "cooldown_days": (7, {"type": "number", "minimum": 0, "maximum": 365, "section": TRIGGERS},
                      "No new retraining within this window unless severe (days)."),
    "finetune_epochs": (3, {"type": "integer", "minimum": 1, "maximum": 100, "section": FINETUNE},
                        "Fine-tuning epochs."),
    "finetune_learning_rate": (0.0, {"type": "number", "minimum": 0, "maximum": 1, "section": FINETUNE},
                               "Fine-tuning learning rate; 0 = the champion's learning rate × finetune_lr_factor."),
    "finetune_lr_factor": (0.3, {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "section": FINETUNE},
                           "Fine-tuning learning rate = champion's learning rate × this (factor); a champion that was "
                           "itself fine-tuned keeps its rate."),
    "min_gain": (0.01, {"type": "number", "minimum": 0, "maximum": 1, "section": PROMOTION},
                 "Promotion: minimum accuracy gain (fraction)."),
    "max_fpr_rise": (0.005, {"type": "number", "minimum": 0, "maximum": 1, "section": PROMOTION},
                     "Promotion: maximum FPR rise (fraction)."),
    "alpha": (0.05, {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "section": PROMOTION},
              "Promotion: significance level of McNemar's exact test (probability)."),
    "slice_tolerance": (0.02, {"type": "number", "minimum": 0, "maximum": 1, "section": PROMOTION},
                        "Promotion: largest accuracy drop allowed on any CWE/language slice (fraction)."),
    "gnn_min_val_accuracy": (None, {"type": ["number", "null"], "minimum": 0, "maximum": 1, "section": GATE},
                             "Gate for the GNN: minimum validation accuracy (fraction)." + _GATE_NOTE),
    "transformer_min_val_accuracy": (None, {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                            "section": GATE},
                                     "Gate for the transformer: minimum validation accuracy (fraction)."
                                     + _GATE_NOTE),
    "max_fpr": (None, {"type": ["number", "null"], "minimum": 0, "maximum": 1, "section": GATE},
                "Gate: maximum false-positive rate (fraction)." + _GATE_NOTE),
    "ab_challenger_weight": (0.1, {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "section": AB},
                             "Traffic share of the challenger in the A/B endpoint plan (fraction)."),
}


def resolve_retraining_config(params: dict[str, Any]) -> RetrainingConfig:
    """Validate the retraining DAG's trigger params.

    Returns:
        the `streamguard.pipeline.records.RetrainingConfig` the retraining tasks read.
    """
    from streamguard.pipeline.records import RetrainingConfig  # noqa: F811 - records imports this module

    params = dict(params or {})
    unknown = sorted(set(params) - set(RETRAINING_PARAMS))
    if unknown:
        raise ParamError(f"unknown param(s) {', '.join(map(repr, unknown))}; known: {', '.join(RETRAINING_PARAMS)}")
    cfg = {name: _check(name, params.get(name, default), schema)
           for name, (default, schema, _doc) in RETRAINING_PARAMS.items()}
    cfg["models"] = [m for m in MODEL_TYPES if m in cfg["models"]]
    cfg["feedback_uri"] = check_input_uri("feedback_uri", cfg["feedback_uri"])
    # Refuse a loosened gate here, before any work, with the param named.
    cfg["gate"] = {m: g.to_dict() for m, g in resolve_gates(cfg).items()}
    return RetrainingConfig.from_dict(cfg)
