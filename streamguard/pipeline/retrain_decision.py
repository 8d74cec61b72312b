"""Whether to retrain each model, from evidence; and where a first model's data comes from.

The decision itself is `streamguard.retrain_policy` (pure); this module gathers its inputs (the
champion, its baseline, drift, the last retraining) and appends every decision to the event log.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from streamguard import storage
from streamguard.core import archive
from streamguard.pipeline.params import MODEL_NAMES, MODEL_TYPES, TrainingConfig
from streamguard.pipeline.records import RetrainingConfig, plain
from streamguard.pipeline.registration import registry as _registry

log = logging.getLogger(__name__)


def champion_of(model_type: str):
    """The current champion version record (alias `champion`), or None."""
    return _registry().get_alias(MODEL_NAMES[model_type], "champion")


def _read_from_artifact(artifact_uri: str, member: str, expected_sha256: str) -> Any:
    """One JSON member of a registered model.tar.gz, after checking the archive's sha256."""
    with tempfile.TemporaryDirectory(prefix="sg-art-") as tmp:
        local = Path(tmp) / "model.tar.gz"
        storage.download(artifact_uri, str(local))
        return archive.read_json_member(local, member, expected_sha256=expected_sha256, where=artifact_uri)


def _last_retrain_at(model_type: str) -> datetime | None:
    events = _registry().list_events(kind="retraining_started")
    mine = [e for e in events if e.payload.get("model_type") == model_type]
    if not mine:
        return None
    ts = mine[-1].payload.get("at") or mine[-1].created_at
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def decide(config: RetrainingConfig, model_type: str, feedback: dict, dag_run_id: str, now: datetime | None = None) -> dict:
    """Decide from evidence whether to retrain one model; the decision is appended to the event log.

    With no champion (never trained, or every version rejected) the decision is to train a first
    model from scratch (`mode` "bootstrap") when there is data for it, else to skip with the reason.
    """
    from streamguard.drift import detect_drift
    from streamguard.feedback import ProductionMetrics
    from streamguard.retrain_policy import RetrainPolicy, decide_retraining

    now = now or datetime.now(timezone.utc)
    registry = _registry()
    if model_type not in config.models:
        return {"model_type": model_type, "retrain": False, "reasons": [f"{model_type} not selected"],
                "skipped_reason": f"{model_type} not selected (param 'models')"}
    champion = champion_of(model_type)
    info = feedback["per_model"][model_type]
    production = ProductionMetrics(**{k: v for k, v in info["production"].items()})
    drift = None
    champion_dict = None
    bootstrap = None
    if champion is not None:
        champion_dict = plain(champion)
        baseline = _read_from_artifact(champion.artifact_uri, "baseline.json", champion.artifact_sha256)
        if baseline:
            drift = detect_drift(baseline, info["input_stats"])
    else:
        bootstrap = bootstrap_source(model_type, feedback)
        if bootstrap is None:
            reason = (f"no champion for {MODEL_NAMES[model_type]} and no data to train a first one: no "
                      f"registered version of any model records data channels, and "
                      f"{feedback['n_labelled']} labelled feedback record(s) at {feedback['source']} "
                      f"< {MIN_BOOTSTRAP_FEEDBACK}; run streamguard_training or push feedback")
            result = {"model_type": model_type, "retrain": False, "reasons": [reason], "triggers": [],
                      "skipped_reason": reason, "severity": "none", "champion_version": None, "drift": None,
                      "mode": None}
            registry.append_event("retrain_decision", {"model_type": model_type, "dag_run_id": dag_run_id,
                                                       **result})
            return result
    policy = RetrainPolicy(accuracy_drop=config.accuracy_drop, fpr_rise=config.fpr_rise,
                           min_feedback=config.min_feedback, max_age_days=config.max_age_days,
                           cooldown_days=config.cooldown_days)
    decision = decide_retraining(
        now=now, champion=champion_dict, production=production, drift=drift,
        new_feedback_count=info["n"], last_retrain_at=_last_retrain_at(model_type), policy=policy,
        force=config.force,
    )
    result = plain(decision)
    result.update({"model_type": model_type, "champion_version": champion.version if champion else None,
                   "drift": plain(drift) if drift else None,
                   "mode": "bootstrap" if champion is None else "finetune", "bootstrap_source": bootstrap})
    registry.append_event("retrain_decision", {"model_type": model_type, "dag_run_id": dag_run_id, **result})
    if decision.retrain:
        registry.append_event("retraining_started", {"model_type": model_type, "dag_run_id": dag_run_id,
                                                     "at": now.isoformat(), "reasons": result.get("reasons"),
                                                     "mode": result["mode"]})
    return result


# ------------------------------------------------------------------------------------ bootstrap
# Labelled feedback records needed to split a first training set from feedback alone.
MIN_BOOTSTRAP_FEEDBACK = 30
SPLITS = ("train", "validation", "test")


def bootstrap_source(model_type: str, feedback: dict) -> dict | None:
    """Where a first model's training data comes from when `model_type` has no champion.

    In order: the channels of the newest registered version of this model (a rejected one too),
    then of the other model (the training DAG prepares one data set for both), then the labelled
    feedback alone when there is enough of it to split. None: there is no data at all.
    """
    registry = _registry()
    for mt in (model_type, *[m for m in MODEL_TYPES if m != model_type]):
        for version in reversed(registry.list_versions(MODEL_NAMES[mt])):
            channels = (version.extra or {}).get("channels") or {}
            if all(channels.get(split) for split in SPLITS):
                source = {"kind": "registered_channels", "channels": {k: channels[k] for k in SPLITS},
                          "from": f"{version.model_name} v{version.version} ({version.status})"}
                if mt == model_type:  # the options this model was trained with (sink dropout, ...)
                    source["hyperparameters"] = dict(version.hyperparameters or {})
                return source
    if feedback["n_labelled"] >= MIN_BOOTSTRAP_FEEDBACK:
        return {"kind": "feedback", "channels": None, "from": f"{feedback['n_labelled']} labelled feedback records"}
    return None


def bootstrap_config(config: RetrainingConfig, model_type: str, recorded: dict | None = None) -> TrainingConfig:
    """The configuration a training run would use for `model_type`, with the retraining run's gate.

    `recorded`: the hyperparameters of a registered version of this model (the one whose data a
    bootstrap trains on); its training options (`TRAINING_OPTIONS`: sink dropout, token dropout,
    language balance, ...) replace the defaults, so a first model is trained the way the user chose
    in the training DAG. Epochs, learning rate and seed stay the training defaults.
    """
    from streamguard.pipeline.params import resolve_training_config

    base = resolve_training_config({
        "models": [model_type],
        "gnn_min_val_accuracy": config.gnn_min_val_accuracy,
        "transformer_min_val_accuracy": config.transformer_min_val_accuracy,
        "max_fpr": config.max_fpr,
    })
    if not recorded:
        return base
    per_model = dict(base.per_model)
    per_model[model_type] = replace(per_model[model_type],
                                    options=recorded_options(per_model[model_type].options, recorded))
    return replace(base, per_model=per_model)


def recorded_options(defaults: dict[str, Any], hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """`defaults` (entry flag -> value) with the values a version recorded in its hyperparameters.

    A version records each value as the job had it or, from a job description, as its JSON-encoded
    string; a version from before the options were recorded has none, and the defaults apply.
    """
    from streamguard.jobs.request import decode_hyperparameter

    return {flag: decode_hyperparameter(hyperparameters[flag]) if isinstance(hyperparameters.get(flag), str)
            else hyperparameters.get(flag, value) for flag, value in defaults.items()}
