"""The training DAG's steps: one function per task, taking and returning records.

The DAG file calls each through `streamguard.pipeline.steps.call`, which converts the XCom dicts.
Every step is idempotent for a given run key so that task retries neither redo finished work nor
start a second billable job. The work itself is in the modules named in each docstring:
`preparation`, `source_package`, `job_specs`, `job_running`, `evaluation`, `registration`, `summary`.
"""

from __future__ import annotations

from streamguard.jobs.record import JobRecord
from streamguard.pipeline.params import TrainingConfig
from streamguard.pipeline.records import (Evaluation, PreparedChannels, RunContext, SourcePackage,  # noqa: F401
                                          run_key, run_uri)

# `run_key` / `run_uri` are also read from here by `streamguard_ops.reconnect` (CloudWatch offsets).


def start_run(dag_id: str, run_id: str, backend: str) -> RunContext:
    """The run's context, made once by the first task."""
    return RunContext.create(dag_id, run_id, backend)


def resolve_config(params: dict) -> TrainingConfig:
    """The trigger params, validated (`streamguard.pipeline.params.resolve_training_config`)."""
    from streamguard.pipeline.params import resolve_training_config

    return resolve_training_config(params)


def plan_data(run: RunContext, config: TrainingConfig) -> list[str]:
    """The graph shards to build (`preparation.plan_channels`); none when the data is prepared already."""
    from streamguard.pipeline.preparation import plan_channels

    return plan_channels(config, run.key)


def build_graphs(shard_uri: str) -> dict:
    """One shard's graphs (`preparation.graph_shard`)."""
    from streamguard.pipeline.preparation import graph_shard

    return graph_shard(shard_uri)


def build_graphs_processing(run: RunContext, shards: list, source: SourcePackage) -> list[dict]:
    """Every shard's graphs in one SageMaker Processing job (`preparation.graph_processing`)."""
    from streamguard.pipeline.preparation import graph_processing

    return graph_processing(run, list(shards), source)


def prepare_data(run: RunContext, graphs: list | None) -> PreparedChannels:
    """The channels, quarantine and report, with the shards' graphs (`preparation.finish_channels`)."""
    from streamguard.pipeline.preparation import finish_channels

    return finish_channels(run.key, list(graphs or []))


def package_source(run: RunContext) -> SourcePackage:
    """The source-dir tarball every job unpacks (`source_package.package_source`)."""
    from streamguard.pipeline.source_package import package_source as package

    return package(run.key)


def build_job(run: RunContext, config: TrainingConfig, model_type: str, data: PreparedChannels,
              source: SourcePackage) -> dict:
    """``{"request", "job_name"}`` of the model's training job; skipped when the model is not selected."""
    from streamguard.pipeline.job_specs import build_training_job

    if model_type not in config.models:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(f"{model_type} not selected (param 'models' = {list(config.models)})")
    request = build_training_job(run, config, model_type, data, source)
    return {"request": request, "job_name": request["TrainingJobName"]}


def collect(run: RunContext, trained: dict, model_type: str) -> JobRecord:
    """The `JobRecord` of the attempt the sensor saw complete (`job_running.collect_job`)."""
    from streamguard.pipeline.job_running import collect_job

    return collect_job(trained, run.backend, model_type)


def evaluate(run: RunContext, config: TrainingConfig, model_type: str, job: JobRecord, data: PreparedChannels,
             source: SourcePackage) -> Evaluation:
    """The trained model's real inference on the test channel (`evaluation.evaluate_model`)."""
    from streamguard.pipeline.evaluation import evaluate_model

    return evaluate_model(run, config, model_type, job.artifact_uri, data, source)


def gate(config: TrainingConfig, evaluation: Evaluation) -> dict:
    """The metric gate's decision (`evaluation.gate_model`)."""
    from streamguard.pipeline.evaluation import gate_model

    return gate_model(config, evaluation)


def register(run: RunContext, config: TrainingConfig, job: JobRecord, evaluation: Evaluation, decision: dict,
             data: PreparedChannels) -> dict:
    """The registry record, registered or rejected (`registration.register_model`)."""
    from streamguard.pipeline.registration import register_model

    return register_model(run, config, job, evaluation, decision, data)


def summary(run: RunContext, results: list) -> dict:
    """The run's table of models, versions and gate verdicts (`summary.summarize`)."""
    from streamguard.pipeline.summary import summarize

    return summarize(run.key, [r for r in results if r])
