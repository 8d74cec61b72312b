"""The retraining DAG's task bodies: feedback → decision → fine-tune → champion/challenger → promote.

Pure decisions live in `streamguard.{feedback,drift,retrain_policy,champion,ab}`; this module does
the I/O around them (registry, artifact store, event log) and returns small JSON dicts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import tempfile
from dataclasses import asdict, is_dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from streamguard import settings, storage
from streamguard.pipeline.params import (FEEDBACK_ASSET_NAME, MODEL_NAMES, MODEL_TYPES,  # noqa: F401
                                         RETRAINING_PARAMS, ParamError, TrainingConfig, _check)
from streamguard.pipeline.training import record_version, run_uri

log = logging.getLogger(__name__)

def resolve_retraining_config(params: dict[str, Any]) -> dict:
    """Validate the retraining DAG's trigger params; returns a plain dict."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(RETRAINING_PARAMS))
    if unknown:
        raise ParamError(f"unknown param(s) {', '.join(map(repr, unknown))}; known: {', '.join(RETRAINING_PARAMS)}")
    cfg = {name: _check(name, params.get(name, default), schema)
           for name, (default, schema, _doc) in RETRAINING_PARAMS.items()}
    cfg["models"] = [m for m in MODEL_TYPES if m in cfg["models"]]
    return cfg


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return json.loads(json.dumps(asdict(obj), default=str))
    return obj


def _registry():
    from streamguard.registry import RegistryClient

    return RegistryClient(settings.registry_uri())


def feedback_root() -> str:
    return storage.join_uri(settings.artifact_root(), "feedback")


# ------------------------------------------------------------------------------------ feedback
def ingest(config: dict, key: str) -> dict:
    """Validate, dedupe and label the feedback; write labelled records and the quarantine.

    Returns counts, the labelled-records URI and, per model, production metrics and input statistics.
    """
    from streamguard.drift import input_statistics
    from streamguard.feedback import ingest_feedback, production_metrics, quarantine_lines

    source = config["feedback_uri"] or feedback_root()
    with tempfile.TemporaryDirectory(prefix="sg-feedback-") as tmp:
        if storage.exists(source):
            local = Path(tmp) / "in"
            storage.download(source, str(local))
            batch = ingest_feedback([str(local)])
        else:
            log.info("no feedback at %s yet", source)
            batch = ingest_feedback([])
        out = Path(tmp) / "labelled.jsonl"
        out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in batch.records))
        labelled_uri = run_uri(key, "feedback", "labelled.jsonl")
        storage.upload_file(str(out), labelled_uri)
        quarantine_uri = run_uri(key, "feedback", "quarantine.jsonl")
        storage.write_text(quarantine_uri, "".join(line + "\n" for line in quarantine_lines(batch)))
    per_model = {}
    for model_type in MODEL_TYPES:
        name = MODEL_NAMES[model_type]
        mine = [f for f in batch.feedback if name in str(f.model_version) or ":" not in str(f.model_version)]
        metrics = production_metrics(mine)
        stats = input_statistics([r for r in batch.records], scores=metrics.scores)
        per_model[model_type] = {"production": _plain(metrics), "input_stats": stats, "n": len(mine)}
    return {
        "source": source,
        "labelled_uri": labelled_uri,
        "quarantine_uri": quarantine_uri,
        "n_labelled": len(batch.records),
        "n_quarantined": len(batch.quarantined),
        "duplicates": batch.duplicates,
        "counts": dict(batch.counts),
        "per_model": per_model,
    }


# ------------------------------------------------------------------------------------ deciding
def champion_of(model_type: str):
    """The current champion version record (alias `champion`), or None."""
    return _registry().get_alias(MODEL_NAMES[model_type], "champion")


class ArtifactIntegrityError(RuntimeError):
    """A registered artifact no longer matches the sha256 recorded in the registry."""


def _read_from_artifact(artifact_uri: str, member: str, expected_sha256: str) -> Any:
    """One JSON member of a registered model.tar.gz, after checking the archive's sha256."""
    with tempfile.TemporaryDirectory(prefix="sg-art-") as tmp:
        local = Path(tmp) / "model.tar.gz"
        storage.download(artifact_uri, str(local))
        actual = hashlib.sha256(local.read_bytes()).hexdigest()
        if actual != expected_sha256:
            raise ArtifactIntegrityError(
                f"{artifact_uri}: sha256 {actual} differs from the registry's {expected_sha256}; "
                "the artifact was changed after registration: refusing to use it")
        with tarfile.open(local) as tf:
            if member not in tf.getnames():
                return None
            return json.load(tf.extractfile(member))


def _last_retrain_at(model_type: str) -> datetime | None:
    events = _registry().list_events(kind="retraining_started")
    mine = [e for e in events if e.payload.get("model_type") == model_type]
    if not mine:
        return None
    ts = mine[-1].payload.get("at") or mine[-1].created_at
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def decide(config: dict, model_type: str, feedback: dict, dag_run_id: str, now: datetime | None = None) -> dict:
    """Decide from evidence whether to retrain one model; the decision is appended to the event log."""
    from streamguard.drift import detect_drift
    from streamguard.feedback import ProductionMetrics
    from streamguard.retrain_policy import RetrainPolicy, decide_retraining

    now = now or datetime.now(timezone.utc)
    registry = _registry()
    if model_type not in config["models"]:
        return {"model_type": model_type, "retrain": False, "reasons": [f"{model_type} not selected"],
                "skipped_reason": f"{model_type} not selected (param 'models')"}
    champion = champion_of(model_type)
    info = feedback["per_model"][model_type]
    production = ProductionMetrics(**{k: v for k, v in info["production"].items()})
    drift = None
    champion_dict = None
    if champion is not None:
        champion_dict = _plain(champion)
        baseline = _read_from_artifact(champion.artifact_uri, "baseline.json", champion.artifact_sha256)
        if baseline:
            drift = detect_drift(baseline, info["input_stats"])
    policy = RetrainPolicy(accuracy_drop=config["accuracy_drop"], fpr_rise=config["fpr_rise"],
                           min_feedback=config["min_feedback"], max_age_days=config["max_age_days"],
                           cooldown_days=config["cooldown_days"])
    decision = decide_retraining(
        now=now, champion=champion_dict, production=production, drift=drift,
        new_feedback_count=info["n"], last_retrain_at=_last_retrain_at(model_type), policy=policy,
        force=config["force"],
    )
    result = _plain(decision)
    result.update({"model_type": model_type, "champion_version": champion.version if champion else None,
                   "drift": _plain(drift) if drift else None})
    registry.append_event("retrain_decision", {"model_type": model_type, "dag_run_id": dag_run_id, **result})
    if decision.retrain:
        registry.append_event("retraining_started", {"model_type": model_type, "dag_run_id": dag_run_id,
                                                     "at": now.isoformat(), "reasons": result.get("reasons")})
    return result


# ------------------------------------------------------------------------------------ retraining
def build_retrain_data(config: dict, model_type: str, feedback: dict, key: str) -> dict:
    """Channels for fine-tuning: the champion's training data plus the labelled feedback.

    Validation and test stay the champion's own channels, so champion and challenger are compared
    on the same frozen test set. Never trains on feedback alone.
    """
    champion = champion_of(model_type)
    if champion is None:
        raise RuntimeError(f"no champion for {MODEL_NAMES[model_type]}: run streamguard_training first")
    channels = (champion.extra or {}).get("channels")
    if not channels:
        raise RuntimeError(f"champion {MODEL_NAMES[model_type]} v{champion.version} records no data channels")
    train_uri = run_uri(key, "data", model_type, "train")
    with tempfile.TemporaryDirectory(prefix="sg-retrain-") as tmp:
        local = Path(tmp) / "train"
        storage.download(channels["train"], str(local))
        files = sorted(p for p in local.rglob("*.jsonl") if p.is_file())
        if not files:
            raise RuntimeError(f"champion's training channel {channels['train']} holds no *.jsonl")
        for f in files:
            storage.upload_file(str(f), storage.join_uri(train_uri, f.relative_to(local).as_posix()))
        fb = Path(tmp) / "feedback.jsonl"
        storage.download(feedback["labelled_uri"], str(fb))
        storage.upload_file(str(fb), storage.join_uri(train_uri, "feedback.jsonl"))
        digest = hashlib.sha256()
        for f in [*files, fb]:
            digest.update(f.read_bytes())
    return {
        "channels": {"train": train_uri, "validation": channels["validation"], "test": channels["test"]},
        "data_hash": digest.hexdigest(),
        "source": f"champion v{champion.version} train + feedback ({feedback['n_labelled']} records)",
        "champion": _plain(champion),
    }


def finetune_config(config: dict, champion: dict) -> TrainingConfig:
    """A TrainingConfig for fine-tuning: fewer epochs, learning rate scaled down from the champion's."""
    from streamguard.pipeline.params import resolve_training_config

    base = resolve_training_config({
        "models": [champion["model_type"]],
        "gnn_min_val_accuracy": config["gnn_min_val_accuracy"],
        "transformer_min_val_accuracy": config["transformer_min_val_accuracy"],
        "max_fpr": config["max_fpr"],
    })
    hps = champion.get("hyperparameters") or {}
    mt = champion["model_type"]
    per_model = dict(base.per_model)
    lr = config["finetune_learning_rate"] or (
        float(hps.get("learning-rate", per_model[mt].learning_rate)) * config["finetune_lr_factor"])
    per_model[mt] = replace(per_model[mt], epochs=config["finetune_epochs"], learning_rate=lr,
                            batch_size=int(hps.get("batch-size", per_model[mt].batch_size)))
    return replace(base, per_model=per_model, seed=int(hps.get("seed", base.seed)) + 1)


def _load_predictions(uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def compare_and_decide(config: dict, model_type: str, challenger_eval: dict, champion_eval: dict,
                       challenger_job: dict, gate: dict, data: dict, backend: str, dag_run_id: str) -> dict:
    """Champion vs challenger on the same test set; promote by CAS only when really better."""
    from streamguard.champion import compare_models

    registry = _registry()
    model_name = MODEL_NAMES[model_type]
    comparison = compare_models(
        _load_predictions(champion_eval["predictions_uri"]), _load_predictions(challenger_eval["predictions_uri"]),
        min_gain=config["min_gain"], max_fpr_rise=config["max_fpr_rise"], alpha=config["alpha"],
        slice_tolerance=config["slice_tolerance"],
    )
    comp = _plain(comparison)
    promote = bool(comparison.promote and gate["passed"])
    reasons = list(comp.get("reasons", []))
    if not gate["passed"]:
        reasons.append("challenger failed the metric gate: " + "; ".join(gate.get("reasons", [])))
    champion = data["champion"]
    version, _record = record_version(
        registry, model_type, evaluation=challenger_eval, job_name=challenger_job["job_name"], backend=backend,
        data=data, hyperparameters={"fine_tuned_from": champion["version"]}, gate=gate, approved=promote,
        extra={"channels": data["channels"], "predictions_uri": challenger_eval["predictions_uri"],
               "champion_comparison": comp, "promotion_reasons": reasons,
               "fine_tuned_from": champion["version"]},
    )
    promoted_version = None
    if promote:
        current = registry.get_alias(model_name, "champion")
        if current is None or current.version != version.version:  # a retried task promoted it already
            registry.promote(model_name, version.version, expected_version=champion["version"])
        deployed = registry.get_alias(model_name, "deployed")
        if deployed is None or deployed.version != version.version:
            registry.mark_deployed(model_name, version.version)
        promoted_version = version.version
    event = {"model_type": model_type, "dag_run_id": dag_run_id, "champion_version": champion["version"],
             "challenger_version": version.version, "promoted": promote, "reasons": reasons,
             "comparison": comp}
    registry.append_event("promotion" if promote else "challenger_rejected", event)
    return {**event, "promoted_version": promoted_version}


def ab_plan(config: dict, model_type: str, decision: dict, key: str, backend: str) -> dict:
    """The A/B endpoint configuration for champion and challenger, written as a JSON artifact.

    SageMaker mode also creates the models and the endpoint config (not the endpoint itself:
    shifting live traffic stays a human decision).
    """
    from streamguard.ab import endpoint_plan

    registry = _registry()
    model_name = MODEL_NAMES[model_type]
    champion = registry.get_version(model_name, decision["champion_version"])
    challenger = registry.get_version(model_name, decision["challenger_version"])

    # After a promotion the new champion serves and the old one is the A/B challenger; after a
    # rejection the champion serves and the rejected challenger can only shadow.
    promoted = bool(decision.get("promoted"))
    serving, other = (challenger, champion) if promoted else (champion, challenger)
    # SageMaker: requests and responses are captured to S3, where `streamguard feedback from-capture` reads them.
    capture = storage.join_uri(settings.artifact_root(), "datacapture", model_type) if backend == "sagemaker" else None
    plan = endpoint_plan(serving, other, challenger_weight=config["ab_challenger_weight"], shadow=not promoted,
                         data_capture_uri=capture)
    uri = run_uri(key, "ab", f"{model_type}-endpoint-config.json")
    storage.write_text(uri, json.dumps(plan, indent=2, default=str))
    if backend == "sagemaker":
        _create_sagemaker_endpoint_config(plan, {serving.version: serving, other.version: other})
    return {"plan_uri": uri, "plan": plan}


def _create_sagemaker_endpoint_config(plan: dict, versions: dict) -> None:
    """CreateModel for each variant (if missing) and CreateEndpointConfig; the endpoint is left to people."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    from streamguard.ab import sagemaker_model_name
    from streamguard.sagemaker_jobs import inference_container

    sm = settings.resolve_sagemaker_settings()
    client = SageMakerHook(aws_conn_id=sm.aws_conn_id).conn
    for version in versions.values():
        name = sagemaker_model_name(version)
        try:
            client.describe_model(ModelName=name)
        except client.exceptions.ClientError:
            client.create_model(
                ModelName=name, ExecutionRoleArn=sm.role_arn,
                PrimaryContainer=inference_container(sm.region, version.artifact_uri,
                                                     model_version=f"{version.model_name}@{version.version}"),
                Tags=[{"Key": "project", "Value": "streamguard"}],
            )
    try:
        client.describe_endpoint_config(EndpointConfigName=plan["EndpointConfigName"])
    except client.exceptions.ClientError:
        client.create_endpoint_config(**plan)
    else:  # a retried task created it already
        log.info("endpoint config %s already exists", plan["EndpointConfigName"])
