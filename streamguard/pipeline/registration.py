"""Recording an evaluated model in the registry: the one path both DAGs take.

`record_version` registers a version (``registered`` or ``rejected``) and, on SageMaker, mirrors it
into the model package group; `register_model` is the training DAG's step, which also makes the
first version that passes the gate champion.
"""

from __future__ import annotations

import logging

from streamguard import settings
from streamguard.jobs.record import JobRecord
from streamguard.pipeline.job_specs import training_hyperparameters
from streamguard.pipeline.params import MODEL_NAMES, TrainingConfig
from streamguard.pipeline.records import Evaluation, PreparedChannels, RunContext, plain

log = logging.getLogger(__name__)


def registry():
    """The model registry of this deployment (`STREAMGUARD_REGISTRY_URI`)."""
    from streamguard.registry import RegistryClient

    return RegistryClient(settings.registry_uri())


def register_model(run: RunContext, config: TrainingConfig, job: JobRecord, evaluation: Evaluation, gate: dict,
                   data: PreparedChannels) -> dict:
    """Write the registry record (status `registered` or `rejected`), idempotent by job name."""
    from streamguard.registry import AliasConflict

    model_type = evaluation.model_type
    client = registry()
    version, result = record_version(
        client, model_type, evaluation=evaluation, job_name=job.job_name, backend=run.backend, data=data,
        hyperparameters=training_hyperparameters(config, model_type), gate=gate, approved=bool(gate["passed"]),
        extra={
            "predictions_uri": evaluation.predictions_uri,
            "evaluation_job": evaluation.evaluation_job,
            "job_metrics": job.metrics,
            "data_source": data.source,
            "channels": data.channels,
        },
    )
    if gate["passed"] and client.get_alias(MODEL_NAMES[model_type], "champion") is None:
        # The first version that passes the gate becomes champion; later ones must beat it
        # in the retraining DAG's champion/challenger comparison.
        try:
            client.promote(MODEL_NAMES[model_type], version.version, expected_version=0,
                           reason="first version to pass the gate")
        except AliasConflict as exc:  # a concurrent run promoted first; its champion stands
            log.info("champion alias not set by this run: %s", exc)
    return result


def record_version(client, model_type: str, *, evaluation: Evaluation, job_name: str, backend: str,
                   data: PreparedChannels, hyperparameters: dict, gate: dict, approved: bool, extra: dict):
    """Register one evaluated model (``registered`` if ``approved``, else ``rejected``); in SageMaker
    mode also mirror it into the model package group. Idempotent by ``job_name``.

    The one way both DAGs record a trained model: the training DAG's `register_model` and the
    retraining DAG's challengers (`streamguard.pipeline.promotion`).

    Returns:
        ``(ModelVersion, its dict)``; the dict has ``model_package_arn`` in SageMaker mode.
    """
    from streamguard.pipeline.job_running import model_package_mirror
    from streamguard.registry import code_version

    version = client.register(
        MODEL_NAMES[model_type],
        model_type=model_type,
        artifact_uri=evaluation.artifact_uri,
        artifact_sha256=evaluation.artifact_sha256,
        metrics=evaluation.metrics,
        training_job_name=job_name,
        backend=backend,
        data_hash=data.data_hash,
        code_version=code_version(),
        hyperparameters=hyperparameters,
        gate=gate,
        status="registered" if approved else "rejected",
        extra=extra,
    )
    result = plain(version)
    mirror = model_package_mirror(backend)
    if mirror is not None:
        result["model_package_arn"] = mirror.register(result, approved=approved)
    return version, result
