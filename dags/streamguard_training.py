"""
### StreamGuard training

Trains the **Taint-Flow GNN** and the **SQL Intent Transformer** in parallel, evaluates each on the
frozen test channel by real inference, passes them through the metric gate and writes the result
(registered or rejected, with reasons) to the model registry.

`start_run` → `plan_data` → `build_graphs` (one mapped task per shard) → `prepare_data` → `package_source` → per model: `build_job` → `train` (training job) → `wait`
(sensor) → `collect` → `evaluate` → `gate` → `register` → `summary`.

Retries: `train` starts the job and, in deferrable mode (`STREAMGUARD_DEFERRABLE`, the default;
needs a triggerer, which `airflow dags test` runs in-process), follows it to its end from the
triggerer. A job that fails in a way a new attempt may fix (the process killed, an instance lost,
a transient error) fails that try of `train`; Airflow's retry of `train` starts the next attempt
`<job>-a<n>` with the same request, which resumes from the last epoch checkpoint. A failure that
would recur (SageMaker's `ClientError`, the entry's exit code 3) or a job someone stopped fails
`train` for good; clearing `train` starts another attempt anyway. `wait` only watches the attempt
`train` reported (it never starts a job): it streams the job's log and hands `collect` the
completed attempt. With `STREAMGUARD_DEFERRABLE=false` (no triggerer) `train` returns once the job
is started and `wait` watches it in a worker slot; a failed job then fails the run, and only
clearing `train` starts the next attempt. `evaluate` runs its job with the same
lifecycle (`streamguard.lifecycle`): it reconnects, retries a transient failure as the next attempt
and, on SageMaker, gives its worker slot back while the job runs.

Backend (`STREAMGUARD_BACKEND`): `local` (default) runs each `CreateTrainingJob` request on this
machine with the SageMaker container contract; `sagemaker` sends the same request to SageMaker
through the amazon provider. Trigger with parameters from the UI, or
`airflow dags test streamguard_training -c '{"gnn_epochs": 3}'`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TaskGroup, dag, get_current_context, task

from streamguard_ops.wiring import (backend_from_env, job_name_template, prepare_on_from_env, retry_delay_from_env,
                                    training_operators)

from streamguard.pipeline.params import MODEL_TYPES, TRAINING_PARAMS, form_params
from streamguard.pipeline.steps import call

BACKEND = backend_from_env()
PREPARE_ON = prepare_on_from_env(BACKEND)
TrainingOperator, TrainingSensor, TRAIN_KWARGS, SENSOR_KWARGS = training_operators(BACKEND)

default_args = {
    "owner": "streamguard",
    "retries": 2,
    "retry_delay": timedelta(seconds=retry_delay_from_env()),
}


@dag(
    dag_id="streamguard_training",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    tags=["streamguard", "training", BACKEND],
    default_args=default_args,
    doc_md=__doc__,
    params={name: Param(default, **kw) for name, (default, kw) in form_params(TRAINING_PARAMS).items()},
)
def streamguard_training():
    # Each task takes records (XCom dicts), calls one step of `streamguard.pipeline.training` through
    # `call` (which imports it in the task and converts the records) and returns a record.
    @task
    def start_run() -> dict:
        ctx = get_current_context()
        return call("training:start_run", ctx["dag"].dag_id, ctx["run_id"], BACKEND)

    @task
    def resolve_config() -> dict:
        return call("training:resolve_config", dict(get_current_context()["params"]))

    @task
    def plan_data(run: dict, config: dict) -> list:
        """Read, validate, deduplicate and split (decisions over all records); write the graph shards."""
        shards = call("training:plan_data", run, config)
        print(f"{len(shards)} graph shard(s): {shards}")
        return shards

    @task
    def build_graphs(shard_uri: str) -> dict:
        """One shard's program graphs: mapped over the shards, so they build on every worker at once."""
        result = call("training:build_graphs", shard_uri)
        print(f"{result['records']} graph(s) in {result['seconds']} s ({result['cpu_seconds']} CPU-s): {result['graphs']}")
        return result

    @task(trigger_rule="none_failed")
    def prepare_data(run: dict, graphs: list | None) -> dict:
        """Attach the graphs; write the channels, the quarantine and the report."""
        data = call("training:prepare_data", run, graphs)
        print(f"prepared channels: {data['channels']}; report: {data['report']}")
        return data

    @task
    def package_source(run: dict) -> dict:
        return call("training:package_source", run)

    @task
    def build_graphs_processing(run: dict, shards: list, source: dict) -> list:
        """Every shard's graphs in one SageMaker Processing job (ShardedByS3Key over the shards)."""
        return call("training:build_graphs_processing", run, shards, source)

    run = start_run()
    config = resolve_config()
    source = package_source(run)
    config >> source
    shards = plan_data(run, config)
    if PREPARE_ON == "processing":
        data = prepare_data(run, build_graphs_processing(run, shards, source))
    else:
        data = prepare_data(run, build_graphs.expand(shard_uri=shards))

    registered = []
    for model_type in MODEL_TYPES:
        with TaskGroup(group_id=model_type):

            @task(multiple_outputs=True)
            def build_job(run: dict, config: dict, data: dict, source: dict, model_type: str = model_type) -> dict:
                return call("training:build_job", run, config, model_type, data, source)

            spec = build_job(run, config, data, source)
            # `train` starts the job and (deferrable, the default) follows it to its end: its retries are
            # the job's attempts. `wait` only watches the attempt train reported, streams its log and
            # hands `collect` the completed attempt.
            train = TrainingOperator(task_id="train", config=spec["request"], **TRAIN_KWARGS)
            wait = TrainingSensor(task_id="wait", job_name=job_name_template(train), **SENSOR_KWARGS)

            @task
            def collect(run: dict, trained: dict, model_type: str = model_type) -> dict:
                # `trained` is the sensor's XCom: the attempt that completed (`<name>-a<n>` after a resume).
                return call("training:collect", run, trained, model_type)

            @task
            def evaluate(run: dict, config: dict, job: dict, data: dict, source: dict,
                         model_type: str = model_type) -> dict:
                return call("training:evaluate", run, config, model_type, job, data, source)

            @task
            def gate(config: dict, evaluation: dict) -> dict:
                decision = call("training:gate", config, evaluation)
                print(f"gate {'PASSED' if decision['passed'] else 'FAILED'}: {decision['reasons']}")
                return decision

            @task
            def register(run: dict, config: dict, job: dict, evaluation: dict, decision: dict, data: dict) -> dict:
                return call("training:register", run, config, job, evaluation, decision, data)

            spec["request"] >> train >> wait
            job = collect(run, wait.output)
            evaluation = evaluate(run, config, job, data, source)
            decision = gate(config, evaluation)
            registered.append(register(run, config, job, evaluation, decision, data))

    @task(trigger_rule="none_failed_min_one_success")
    def summary(run: dict, results: list) -> dict:
        out = call("training:summary", run, results)
        print(out["markdown"])
        return out

    summary(run, registered)


streamguard_training()
