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
                                         RETRAINING_PARAMS, ParamError, TrainingConfig, _check,
                                         check_input_uri, resolve_gates)
from streamguard.pipeline.training import (ArtifactIntegrityError, check_sha256,  # noqa: F401
                                           record_version, run_uri)

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
    cfg["feedback_uri"] = check_input_uri("feedback_uri", cfg["feedback_uri"])
    # Refuse a loosened gate here, before any work, with the param named.
    cfg["gate"] = {m: g.to_dict() for m, g in resolve_gates(cfg).items()}
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
    # Graph size is one of the drift statistics: build the graphs with the featurizer the models use.
    graphed = with_graph_sizes(batch.records)
    per_model = {}
    for model_type in MODEL_TYPES:
        name = MODEL_NAMES[model_type]
        mine = [f for f in batch.feedback if name in str(f.model_version) or ":" not in str(f.model_version)]
        metrics = production_metrics(mine)
        stats = input_statistics(graphed, scores=metrics.scores)
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


def with_graph_sizes(records: list[dict]) -> list[dict]:
    """Copies of `records` with `graph: {"num_nodes": N}` from the shipped featurizer.

    A record the featurizer cannot handle keeps no graph (its size is then not counted) and is
    logged; it never stops the ingest.
    """
    from streamguard.core.graphs import build_graph

    out = []
    failed = 0
    for rec in records:
        item = dict(rec)
        try:
            if not rec.get("language"):
                raise ValueError("language unknown")
            graph = build_graph(rec["code"], rec["language"])
            item["graph"] = {"num_nodes": int(graph["num_nodes"])}
        except Exception as exc:  # noqa: BLE001 - one record must not stop the ingest
            failed += 1
            log.warning("feedback record %s: no graph (%s: %s)", rec.get("id"), type(exc).__name__, exc)
        out.append(item)
    if failed:
        log.warning("%d of %d feedback record(s) have no graph; graph-size drift uses the rest", failed, len(records))
    return out


# ------------------------------------------------------------------------------------ deciding
def champion_of(model_type: str):
    """The current champion version record (alias `champion`), or None."""
    return _registry().get_alias(MODEL_NAMES[model_type], "champion")


def _read_from_artifact(artifact_uri: str, member: str, expected_sha256: str) -> Any:
    """One JSON member of a registered model.tar.gz, after checking the archive's sha256."""
    with tempfile.TemporaryDirectory(prefix="sg-art-") as tmp:
        local = Path(tmp) / "model.tar.gz"
        storage.download(artifact_uri, str(local))
        check_sha256(local, expected_sha256, artifact_uri)
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
    """Decide from evidence whether to retrain one model; the decision is appended to the event log.

    With no champion (never trained, or every version rejected) the decision is to train a first
    model from scratch (`mode` "bootstrap") when there is data for it, else to skip with the reason.
    """
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
    bootstrap = None
    if champion is not None:
        champion_dict = _plain(champion)
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
                   "drift": _plain(drift) if drift else None,
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
_SPLITS = ("train", "validation", "test")


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
            if all(channels.get(split) for split in _SPLITS):
                return {"kind": "registered_channels", "channels": {k: channels[k] for k in _SPLITS},
                        "from": f"{version.model_name} v{version.version} ({version.status})"}
    if feedback["n_labelled"] >= MIN_BOOTSTRAP_FEEDBACK:
        return {"kind": "feedback", "channels": None, "from": f"{feedback['n_labelled']} labelled feedback records"}
    return None


def bootstrap_config(config: dict, model_type: str) -> TrainingConfig:
    """The configuration a training run would use for `model_type`, with the retraining run's gate."""
    from streamguard.pipeline.params import resolve_training_config

    return resolve_training_config({
        "models": [model_type],
        "gnn_min_val_accuracy": config["gnn_min_val_accuracy"],
        "transformer_min_val_accuracy": config["transformer_min_val_accuracy"],
        "max_fpr": config["max_fpr"],
    })


# ------------------------------------------------------------------------------------ retraining
def build_retrain_data(config: dict, model_type: str, feedback: dict, key: str, decision: dict | None = None) -> dict:
    """The retraining plan: channels, the training config (computed once) and what to start from.

    Fine-tuning (a champion exists): the champion's training data plus the labelled feedback;
    validation and test stay the champion's own channels, so champion and challenger are compared
    on the same frozen test set. Never trains on feedback alone.

    Bootstrap (no champion): the data `bootstrap_source` found (plus the feedback), or the
    feedback prepared into train/validation/test on its own; trained from scratch.
    """
    champion = champion_of(model_type)
    if champion is None:
        source = (decision or {}).get("bootstrap_source") or bootstrap_source(model_type, feedback)
        if source is None:
            raise RuntimeError(f"no champion for {MODEL_NAMES[model_type]} and no data to train a first one")
        cfg = bootstrap_config(config, model_type)
        if source["kind"] == "feedback":
            data = _prepare_feedback_channels(feedback, key, model_type, cfg.seed)
        else:
            data = _train_plus_feedback(source["channels"], feedback, key, model_type)
        return {**data, "mode": "bootstrap", "champion": None, "training_config": cfg.to_dict(),
                "source": f"bootstrap from {source['from']} + feedback ({feedback['n_labelled']} records)",
                "model_channel_uri": None, "model_sha256": None}
    channels = (champion.extra or {}).get("channels")
    if not channels:
        raise RuntimeError(f"champion {MODEL_NAMES[model_type]} v{champion.version} records no data channels")
    data = _train_plus_feedback(channels, feedback, key, model_type)
    champion_dict = _plain(champion)
    return {**data, "mode": "finetune", "champion": champion_dict,
            "training_config": finetune_config(config, champion_dict).to_dict(),
            "source": f"champion v{champion.version} train + feedback ({feedback['n_labelled']} records)",
            "model_channel_uri": champion.artifact_uri.rsplit("/", 1)[0] + "/",
            "model_sha256": champion.artifact_sha256}


def _train_plus_feedback(channels: dict, feedback: dict, key: str, model_type: str) -> dict:
    """A new train channel = `channels["train"]` + the labelled feedback; validation/test kept."""
    train_uri = run_uri(key, "data", model_type, "train")
    with tempfile.TemporaryDirectory(prefix="sg-retrain-") as tmp:
        local = Path(tmp) / "train"
        storage.download(channels["train"], str(local))
        files = sorted(p for p in local.rglob("*.jsonl") if p.is_file())
        if not files:
            raise RuntimeError(f"training channel {channels['train']} holds no *.jsonl")
        for f in files:
            storage.upload_file(str(f), storage.join_uri(train_uri, f.relative_to(local).as_posix()))
        fb = Path(tmp) / "feedback.jsonl"
        storage.download(feedback["labelled_uri"], str(fb))
        storage.upload_file(str(fb), storage.join_uri(train_uri, "feedback.jsonl"))
        digest = hashlib.sha256()
        for f in [*files, fb]:
            digest.update(f.read_bytes())
    return {"channels": {"train": train_uri, "validation": channels["validation"], "test": channels["test"]},
            "data_hash": digest.hexdigest()}


def _prepare_feedback_channels(feedback: dict, key: str, model_type: str, seed: int) -> dict:
    """Train/validation/test channels (with graphs) prepared from the labelled feedback alone."""
    from streamguard.data.prepare import prepare

    root = run_uri(key, "data", model_type, "bootstrap")
    with tempfile.TemporaryDirectory(prefix="sg-bootstrap-") as tmp:
        fb = Path(tmp) / "feedback.jsonl"
        storage.download(feedback["labelled_uri"], str(fb))
        out = Path(tmp) / "prepared"
        report = prepare([str(fb)], str(out), seed=seed)
        for path in sorted(out.rglob("*")):
            if path.is_file():
                storage.upload_file(str(path), storage.join_uri(root, path.relative_to(out).as_posix()))
    return {"channels": {split: storage.join_uri(root, split) for split in _SPLITS},
            "data_hash": _plain(report).get("data_hash")}


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


def build_retrain_job(plan: dict, model_type: str, source: dict, dag_id: str, run_id: str, backend: str) -> dict:
    """The CreateTrainingJob request of the retraining plan: a fine-tune from the champion's
    verified weights, or (bootstrap) the job a training run would start, on the plan's data."""
    from streamguard.pipeline.training import build_training_job

    cfg = TrainingConfig.from_dict(plan["training_config"])
    if plan["mode"] == "bootstrap":
        return build_training_job(cfg, model_type, plan, source, dag_id, run_id, backend, name_suffix="-boot")
    # The entry checks the model channel's archive against the registry's sha256 before loading it.
    return build_training_job(
        cfg, model_type, plan, source, dag_id, run_id, backend,
        extra_hyperparameters={"fine-tune": True, "model-sha256": plan["model_sha256"]},
        model_channel_uri=plan["model_channel_uri"], name_suffix="-ft")


def evaluate_challenger(plan: dict, model_type: str, job: dict, source: dict, dag_id: str, run_id: str,
                        backend: str) -> dict:
    """The challenger's real inference on the plan's frozen test set."""
    from streamguard.pipeline.training import evaluate_model

    return evaluate_model(TrainingConfig.from_dict(plan["training_config"]), model_type, job, plan, source,
                          dag_id, run_id, backend)


def evaluate_champion(plan: dict, model_type: str, source: dict, dag_id: str, run_id: str, backend: str) -> dict:
    """The champion's real inference on the same test set, from its sha256-verified archive.

    Bootstrap plans have no champion: returns ``{"skipped": reason}``.
    """
    from streamguard.pipeline.training import evaluate_model

    champion = plan.get("champion")
    if not champion:
        return {"skipped": f"no champion for {MODEL_NAMES[model_type]}: nothing to compare with"}
    job = {"job_name": champion["training_job_name"], "artifact_uri": champion["artifact_uri"]}
    return evaluate_model(TrainingConfig.from_dict(plan["training_config"]), model_type, job, plan, source,
                          dag_id, run_id, backend, name_suffix="-champ-eval",
                          expected_sha256=champion["artifact_sha256"])


def gate_challenger(plan: dict, evaluation: dict) -> dict:
    from streamguard.pipeline.training import gate_model

    return gate_model(TrainingConfig.from_dict(plan["training_config"]), evaluation)


def _load_predictions(uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def compare_and_decide(config: dict, model_type: str, challenger_eval: dict, champion_eval: dict,
                       challenger_job: dict, gate: dict, data: dict, backend: str, dag_run_id: str) -> dict:
    """Champion vs challenger on the same test set; promote by CAS only when really better.

    With no champion (a bootstrap plan) the gate alone decides, as in the training DAG: a first
    model that passes it becomes champion.
    """
    if not data.get("champion"):
        return _record_bootstrap(model_type, challenger_eval, challenger_job, gate, data, backend, dag_run_id)
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


def _record_bootstrap(model_type: str, evaluation: dict, job: dict, gate: dict, data: dict, backend: str,
                      dag_run_id: str) -> dict:
    """Register a first model trained by the retraining DAG; champion when it passes the gate."""
    from streamguard.registry import AliasConflict

    registry = _registry()
    model_name = MODEL_NAMES[model_type]
    passed = bool(gate["passed"])
    reasons = (["no champion: the first version to pass the gate becomes champion"] if passed
               else ["first model failed the metric gate: " + "; ".join(gate.get("reasons", []))])
    cfg = TrainingConfig.from_dict(data["training_config"])
    m = cfg.per_model[model_type]
    version, _record = record_version(
        registry, model_type, evaluation=evaluation, job_name=job["job_name"], backend=backend, data=data,
        hyperparameters={"model-type": model_type, "epochs": m.epochs, "batch-size": m.batch_size,
                         "learning-rate": m.learning_rate, "seed": cfg.seed, "threshold": cfg.decision_threshold},
        gate=gate, approved=passed,
        extra={"channels": data["channels"], "predictions_uri": evaluation["predictions_uri"],
               "evaluation_job": evaluation.get("evaluation_job"), "data_source": data.get("source"),
               "promotion_reasons": reasons, "trained_by": "retraining bootstrap"},
    )
    promoted = False
    if passed:
        current = registry.get_alias(model_name, "champion")
        if current is not None and current.version == version.version:  # a retried task promoted it
            promoted = True
        elif current is None:
            try:
                registry.promote(model_name, version.version, expected_version=0, reason=reasons[0])
                promoted = True
            except AliasConflict as exc:  # a concurrent run set a champion first; it stands
                reasons.append(f"not promoted: {exc}")
        else:
            reasons.append(f"not promoted: v{current.version} became champion meanwhile")
    event = {"model_type": model_type, "dag_run_id": dag_run_id, "champion_version": None,
             "challenger_version": version.version, "promoted": promoted, "reasons": reasons,
             "comparison": None, "mode": "bootstrap"}
    registry.append_event("promotion" if promoted else "challenger_rejected", event)
    return {**event, "promoted_version": version.version if promoted else None}


def ab_plan(config: dict, model_type: str, decision: dict, key: str, backend: str) -> dict:
    """The A/B endpoint configuration for champion and challenger, written as a JSON artifact.

    SageMaker mode also creates the models and the endpoint config (not the endpoint itself:
    shifting live traffic stays a human decision).
    """
    from streamguard.ab import endpoint_plan

    if decision.get("champion_version") is None:  # a bootstrap: there is no second model to test against
        reason = (f"no A/B plan: {MODEL_NAMES[model_type]} had no champion before this run, so there is "
                  "nothing to test the new version against")
        log.info(reason)
        return {"plan_uri": None, "plan": None, "skipped_reason": reason}
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
    from streamguard.jobs.images import inference_container

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
                                                     model_version=f"{version.model_name}@{version.version}",
                                                     image_uri=sm.inference_image_uri),
                Tags=[{"Key": "project", "Value": "streamguard"}],
            )
    try:
        client.describe_endpoint_config(EndpointConfigName=plan["EndpointConfigName"])
    except client.exceptions.ClientError:
        client.create_endpoint_config(**plan)
    else:  # a retried task created it already
        log.info("endpoint config %s already exists", plan["EndpointConfigName"])


def summarize_retraining(key: str, outcomes: list[dict]) -> dict:
    """One line per model saying what this run did (skipped and why, or the version it recorded),
    in the task log and as `summary.json` in the run folder."""
    lines = []
    for o in sorted(outcomes, key=lambda o: o.get("model_type", "")):
        model = o.get("model_type", "?")
        if "challenger_version" in o:
            what = "first model (bootstrap)" if o.get("mode") == "bootstrap" else "challenger"
            verdict = "promoted to champion" if o.get("promoted") else "not promoted"
            lines.append(f"{model}: {what} v{o['challenger_version']} {verdict}: " + "; ".join(o.get("reasons") or []))
        else:
            lines.append(f"{model}: skipped: {o.get('skipped_reason') or '; '.join(o.get('reasons') or [])}")
    text = "\n".join(["retraining summary:", *lines])
    uri = run_uri(key, "summary.json")
    storage.write_text(uri, json.dumps({"outcomes": outcomes, "text": text}, indent=2, default=str))
    return {"summary_uri": uri, "text": text}
