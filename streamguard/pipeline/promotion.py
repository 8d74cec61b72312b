"""Champion vs challenger on the same frozen test set, and the promotion that follows (by CAS).

With no champion (a bootstrap plan) the gate alone decides, as in the training DAG: a first model
that passes it becomes champion. Every outcome is appended to the registry's event log.
"""

from __future__ import annotations

import json

from streamguard import storage
from streamguard.jobs.record import JobRecord
from streamguard.pipeline.job_specs import training_hyperparameters
from streamguard.pipeline.params import MODEL_NAMES
from streamguard.pipeline.records import Evaluation, RetrainingConfig, RetrainPlan, Skipped, plain
from streamguard.pipeline.registration import record_version, registry as _registry


def _load_predictions(uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def compare_and_decide(config: RetrainingConfig, model_type: str, challenger_eval: Evaluation,
                       champion_eval: Evaluation | Skipped, challenger_job: JobRecord, gate: dict,
                       plan: RetrainPlan, backend: str, dag_run_id: str) -> dict:
    """Champion vs challenger on the same test set; promote by CAS only when really better.

    With no champion (a bootstrap plan) the gate alone decides, as in the training DAG: a first
    model that passes it becomes champion.
    """
    if not plan.champion:
        return _record_bootstrap(model_type, challenger_eval, challenger_job, gate, plan, backend, dag_run_id)
    from streamguard.champion import compare_models

    registry = _registry()
    model_name = MODEL_NAMES[model_type]
    comparison = compare_models(
        _load_predictions(champion_eval.predictions_uri), _load_predictions(challenger_eval.predictions_uri),
        min_gain=config.min_gain, max_fpr_rise=config.max_fpr_rise, alpha=config.alpha,
        slice_tolerance=config.slice_tolerance,
    )
    comp = plain(comparison)
    promote = bool(comparison.promote and gate["passed"])
    reasons = list(comp.get("reasons", []))
    if not gate["passed"]:
        reasons.append("challenger failed the metric gate: " + "; ".join(gate.get("reasons", [])))
    champion = plan.champion
    version, _record = record_version(
        registry, model_type, evaluation=challenger_eval, job_name=challenger_job.job_name, backend=backend,
        data=plan.data, hyperparameters={**training_hyperparameters(plan.training_config, model_type),
                                         "fine_tuned_from": champion["version"]},
        gate=gate, approved=promote,
        extra={"channels": plan.data.channels, "predictions_uri": challenger_eval.predictions_uri,
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


def _record_bootstrap(model_type: str, evaluation: Evaluation, job: JobRecord, gate: dict, plan: RetrainPlan,
                      backend: str, dag_run_id: str) -> dict:
    """Register a first model trained by the retraining DAG; champion when it passes the gate."""
    from streamguard.registry import AliasConflict

    registry = _registry()
    model_name = MODEL_NAMES[model_type]
    passed = bool(gate["passed"])
    reasons = (["no champion: the first version to pass the gate becomes champion"] if passed
               else ["first model failed the metric gate: " + "; ".join(gate.get("reasons", []))])
    version, _record = record_version(
        registry, model_type, evaluation=evaluation, job_name=job.job_name, backend=backend, data=plan.data,
        hyperparameters=training_hyperparameters(plan.training_config, model_type),
        gate=gate, approved=passed,
        extra={"channels": plan.data.channels, "predictions_uri": evaluation.predictions_uri,
               "evaluation_job": evaluation.evaluation_job, "data_source": plan.data.source,
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
