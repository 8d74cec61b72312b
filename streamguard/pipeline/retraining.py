"""The retraining DAG's steps: feedback → decision → plan → fine-tune → champion/challenger → promote.

One function per task, taking and returning records; the DAG file calls each through
`streamguard.pipeline.steps.call`. Pure decisions live in
`streamguard.{feedback,drift,retrain_policy,champion,ab}`; the I/O around them in `feedback_ingest`,
`retrain_decision`, `retrain_plan`, `promotion` and `ab_endpoint`. The retraining config is the
validated trigger params (`params.resolve_retraining_config`), a `RetrainingConfig` record.
"""

from __future__ import annotations

from streamguard.jobs.record import JobRecord
from streamguard.pipeline.records import (Evaluation, RetrainingConfig, RetrainPlan, RunContext, Skipped,
                                          SourcePackage)
from streamguard.pipeline.training import collect, package_source, start_run  # noqa: F401 - the same steps

__all__ = ["ab_plan", "build_job", "collect", "compare_and_promote", "decide", "evaluate_challenger",
           "evaluate_champion", "gate", "ingest_feedback", "package_source", "resolve_config", "retrain_data",
           "start_run", "summary"]


def resolve_config(params: dict) -> RetrainingConfig:
    """The trigger params, validated (`params.resolve_retraining_config`)."""
    from streamguard.pipeline.params import resolve_retraining_config

    return resolve_retraining_config(params)


def ingest_feedback(run: RunContext, config: RetrainingConfig) -> dict:
    """Labelled feedback, quarantine and per-model statistics (`feedback_ingest.ingest`)."""
    from streamguard.pipeline.feedback_ingest import ingest

    return ingest(config, run.key)


def decide(run: RunContext, config: RetrainingConfig, model_type: str, feedback: dict) -> dict:
    """Whether to retrain ``model_type``, recorded in the event log (`retrain_decision.decide`)."""
    from streamguard.pipeline.retrain_decision import decide as decide_

    return decide_(config, model_type, feedback, run.run_id)


def retrain_data(run: RunContext, config: RetrainingConfig, model_type: str, feedback: dict, decision: dict) -> RetrainPlan:
    """The plan: data, training config and starting weights (`retrain_plan.build_retrain_data`)."""
    from streamguard.pipeline.retrain_plan import build_retrain_data

    return build_retrain_data(config, model_type, feedback, run.key, decision)


def build_job(run: RunContext, plan: RetrainPlan, model_type: str, source: SourcePackage) -> dict:
    """``{"request", "job_name"}`` of the plan's training job (`retrain_plan.build_retrain_job`)."""
    from streamguard.pipeline.retrain_plan import build_retrain_job

    request = build_retrain_job(run, plan, model_type, source)
    return {"request": request, "job_name": request["TrainingJobName"]}


def evaluate_challenger(run: RunContext, plan: RetrainPlan, model_type: str, job: JobRecord,
                        source: SourcePackage) -> Evaluation:
    """The challenger's real inference on the plan's frozen test set."""
    from streamguard.pipeline.evaluation import evaluate_model

    return evaluate_model(run, plan.training_config, model_type, job.artifact_uri, plan.data, source)


def evaluate_champion(run: RunContext, plan: RetrainPlan, model_type: str,
                      source: SourcePackage) -> Evaluation | Skipped:
    """The champion's real inference on the same test set, from its sha256-verified archive.

    Bootstrap plans have no champion: `Skipped` with the reason.
    """
    from streamguard.pipeline.evaluation import evaluate_model
    from streamguard.pipeline.params import MODEL_NAMES

    champion = plan.champion
    if not champion:
        return Skipped(f"no champion for {MODEL_NAMES[model_type]}: nothing to compare with")
    return evaluate_model(run, plan.training_config, model_type, champion["artifact_uri"], plan.data, source,
                          name_suffix="-champ-eval", expected_sha256=champion["artifact_sha256"])


def gate(plan: RetrainPlan, evaluation: Evaluation) -> dict:
    """The metric gate's decision on the challenger, with the plan's thresholds."""
    from streamguard.pipeline.evaluation import gate_model

    return gate_model(plan.training_config, evaluation)


def compare_and_promote(run: RunContext, config: RetrainingConfig, model_type: str, challenger_eval: Evaluation,
                        champion_eval: Evaluation | Skipped, job: JobRecord, decision: dict,
                        plan: RetrainPlan) -> dict:
    """Record the challenger; promote it only when really better (`promotion.compare_and_decide`)."""
    from streamguard.pipeline.promotion import compare_and_decide

    return compare_and_decide(config, model_type, challenger_eval, champion_eval, job, decision, plan,
                              run.backend, run.run_id)


def ab_plan(run: RunContext, config: RetrainingConfig, model_type: str, result: dict) -> dict:
    """The A/B endpoint configuration after the promotion decision (`ab_endpoint.ab_plan`)."""
    from streamguard.pipeline.ab_endpoint import ab_plan as plan

    return plan(config, model_type, result, run.key, run.backend)


def summary(run: RunContext, outcomes: list) -> dict:
    """One line per model saying what this run did (`summary.summarize_retraining`)."""
    from streamguard.pipeline.summary import summarize_retraining

    return summarize_retraining(run.key, [o for o in outcomes if o])
