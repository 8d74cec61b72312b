"""
### StreamGuard retraining

Keeps the deployed models current. Runs monthly **and** whenever new feedback lands (the
`streamguard_feedback` asset), decides from evidence whether to retrain each model, fine-tunes a
challenger from the champion's weights on the original training data plus the feedback, evaluates
champion and challenger on the same frozen test set by real inference, and promotes the challenger
only when it is really better (accuracy gain, FPR rise, McNemar significance, no CWE/language slice
regression, metric gate). Every decision goes to the registry's event log.

Per model: `decide` → branch → `skip` | `retrain_data` → `build_job` → `train` → `wait` →
`collect` → `evaluate_challenger` + `evaluate_champion` → `gate` → `compare_and_promote` → `ab_plan`.
A fine-tuning job that fails in a way a new attempt may fix is resumed from its checkpoint by
Airflow's retry of `train`, as in training (`STREAMGUARD_DEFERRABLE`, on by default).

A model with no champion yet (never trained, or every version rejected by the gate) is trained
from scratch on the champion-less path: the job a training run would start, on the newest
registered data channels plus the feedback (or the feedback alone when nothing is registered),
gated, and made champion when it passes. With no champion and no data the model is skipped with
the reason.

Trigger manually with `force`, `models` and thresholds in the form, or
`airflow dags test streamguard_retraining -c '{"force": true}'`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, TaskGroup, dag, get_current_context, task

from streamguard_ops.wiring import backend_from_env, job_name_template, retry_delay_from_env, training_operators

from streamguard.pipeline.params import FEEDBACK_ASSET_NAME, MODEL_TYPES, RETRAINING_PARAMS, form_params

BACKEND = backend_from_env()
TrainingOperator, TrainingSensor, TRAIN_KWARGS, SENSOR_KWARGS = training_operators(BACKEND)

# Feedback producers write under <artifact root>/feedback/ (`streamguard feedback push` checks and
# copies a file there) and then update this asset (REST API: POST /api/v2/assets/events).
FEEDBACK = Asset(name=FEEDBACK_ASSET_NAME)

default_args = {"owner": "streamguard", "retries": 2, "retry_delay": timedelta(seconds=retry_delay_from_env())}


@dag(
    dag_id="streamguard_retraining",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 1 * *", timezone="UTC"),  # 03:00 UTC on the 1st of each month
        assets=FEEDBACK,
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two concurrent retrainings of one champion would race for promotion
    tags=["streamguard", "retraining", BACKEND],
    default_args=default_args,
    doc_md=__doc__,
    params={name: Param(default, **kw) for name, (default, kw) in form_params(RETRAINING_PARAMS).items()},
)
def streamguard_retraining():
    @task
    def resolve_config() -> dict:
        from streamguard.pipeline.retraining import resolve_retraining_config

        return resolve_retraining_config(dict(get_current_context()["params"]))

    @task
    def ingest_feedback(config: dict) -> dict:
        from streamguard.pipeline.retraining import ingest
        from streamguard.pipeline.training import run_key

        ctx = get_current_context()
        out = ingest(config, run_key(ctx["dag"].dag_id, ctx["run_id"]))
        print(f"feedback: {out['n_labelled']} labelled, {out['n_quarantined']} quarantined, "
              f"{out['duplicates']} duplicates (quarantine: {out['quarantine_uri']})")
        return out

    @task
    def package_source() -> dict:
        from streamguard.pipeline.training import package_source as package, run_key

        ctx = get_current_context()
        return package(run_key(ctx["dag"].dag_id, ctx["run_id"]))

    config = resolve_config()
    feedback = ingest_feedback(config)
    source = package_source()
    config >> source

    outcomes = []
    for model_type in MODEL_TYPES:
        with TaskGroup(group_id=model_type):

            @task
            def decide(config: dict, feedback: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.retraining import decide as decide_

                result = decide_(config, model_type, feedback, get_current_context()["run_id"])
                print(f"{model_type}: retrain={result['retrain']} mode={result.get('mode')} reasons={result.get('reasons')} "
                      f"skipped_reason={result.get('skipped_reason')}")
                return result

            @task.branch
            def branch(decision: dict, model_type: str = model_type) -> str:
                return f"{model_type}.retrain_data" if decision["retrain"] else f"{model_type}.skip"

            @task
            def skip(decision: dict) -> dict:
                print(f"retraining skipped: {decision.get('skipped_reason') or decision.get('reasons')}")
                return decision

            @task
            def retrain_data(config: dict, feedback: dict, decision: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.retraining import build_retrain_data
                from streamguard.pipeline.training import run_key

                ctx = get_current_context()
                plan = build_retrain_data(config, model_type, feedback, run_key(ctx["dag"].dag_id, ctx["run_id"]),
                                          decision)
                print(f"{model_type}: {plan['mode']} on {plan['source']}")
                return plan

            @task(multiple_outputs=True)
            def build_job(plan: dict, source: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.retraining import build_retrain_job

                ctx = get_current_context()
                request = build_retrain_job(plan, model_type, source, ctx["dag"].dag_id, ctx["run_id"], BACKEND)
                return {"request": request, "job_name": request["TrainingJobName"]}

            @task
            def collect(trained: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.training import describe_job_record

                # `trained` is the sensor's XCom: the attempt that completed (`<name>-a<n>` after a resume).
                return describe_job_record(trained["job_name"], BACKEND, model_type)

            @task
            def evaluate_challenger(plan: dict, job: dict, source: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.retraining import evaluate_challenger as evaluate

                ctx = get_current_context()
                return evaluate(plan, model_type, job, source, ctx["dag"].dag_id, ctx["run_id"], BACKEND)

            @task
            def evaluate_champion(plan: dict, source: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.retraining import evaluate_champion as evaluate

                ctx = get_current_context()
                return evaluate(plan, model_type, source, ctx["dag"].dag_id, ctx["run_id"], BACKEND)

            @task
            def gate(plan: dict, evaluation: dict) -> dict:
                from streamguard.pipeline.retraining import gate_challenger

                decision = gate_challenger(plan, evaluation)
                print(f"gate {'PASSED' if decision['passed'] else 'FAILED'}: {decision['reasons']}")
                return decision

            @task
            def compare_and_promote(config: dict, challenger_eval: dict, champion_eval: dict, job: dict,
                                    decision: dict, plan: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.retraining import compare_and_decide

                result = compare_and_decide(config, model_type, challenger_eval, champion_eval, job, decision,
                                            plan, BACKEND, get_current_context()["run_id"])
                print(f"{model_type}: promoted={result['promoted']} reasons={result['reasons']}")
                return result

            @task
            def ab_plan(config: dict, result: dict, model_type: str = model_type) -> dict:
                from streamguard.pipeline.retraining import ab_plan as plan
                from streamguard.pipeline.training import run_key

                ctx = get_current_context()
                out = plan(config, model_type, result, run_key(ctx["dag"].dag_id, ctx["run_id"]), BACKEND)
                print(out.get("skipped_reason") or f"A/B endpoint plan: {out['plan_uri']}")
                return out

            decision = decide(config, feedback)
            choice = branch(decision)
            skipped = skip(decision)
            plan = retrain_data(config, feedback, decision)
            choice >> [skipped, plan]
            spec = build_job(plan, source)
            # `train` starts the job and (deferrable, the default) follows it to its end: its retries are
            # the job's attempts. `wait` only watches the attempt train reported, streams its log and
            # hands `collect` the completed attempt.
            train = TrainingOperator(task_id="train", config=spec["request"], **TRAIN_KWARGS)
            wait = TrainingSensor(task_id="wait", job_name=job_name_template(train), **SENSOR_KWARGS)
            spec["request"] >> train >> wait
            job = collect(wait.output)
            challenger_eval = evaluate_challenger(plan, job, source)
            champion_eval = evaluate_champion(plan, source)
            verdict = gate(plan, challenger_eval)
            result = compare_and_promote(config, challenger_eval, champion_eval, job, verdict, plan)
            ab_plan(config, result)
            outcomes += [skipped, result]

    @task(trigger_rule="none_failed_min_one_success")
    def summary(outcomes: list) -> dict:
        from streamguard.pipeline.retraining import summarize_retraining
        from streamguard.pipeline.training import run_key

        ctx = get_current_context()
        out = summarize_retraining(run_key(ctx["dag"].dag_id, ctx["run_id"]), [o for o in outcomes if o])
        print(out["text"])
        return out

    summary(outcomes)


streamguard_retraining()
