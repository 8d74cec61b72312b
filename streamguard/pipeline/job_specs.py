"""The ``CreateTrainingJob`` requests a run sends: training (or fine-tuning) and evaluate jobs.

The same dict for both backends (`streamguard.jobs.request`); the account fields come from
`streamguard.pipeline.job_running.job_account`. Job names are deterministic per run and inputs
(`streamguard.jobs.names.make_job_name`), so a task retry finds the job it started.
"""

from __future__ import annotations

from typing import Any

from streamguard.pipeline.params import TrainingConfig
from streamguard.pipeline.records import PreparedChannels, RunContext, SourcePackage


def training_hyperparameters(config: TrainingConfig, model_type: str) -> dict[str, Any]:
    """The entry's flags of a training job of ``model_type`` (also recorded in the registry)."""
    m = config.per_model[model_type]
    return {
        "model-type": model_type,
        "epochs": m.epochs,
        "batch-size": m.batch_size,
        "learning-rate": m.learning_rate,
        "seed": config.seed,
        "threshold": config.decision_threshold,
        **m.options,  # the form's other training options (`TRAINING_OPTIONS`), as entry flags
    }


def build_training_job(run: RunContext, config: TrainingConfig, model_type: str, data: PreparedChannels,
                       source: SourcePackage, *, extra_hyperparameters: dict | None = None,
                       model_channel_uri: str | None = None, name_suffix: str = "") -> dict:
    """The CreateTrainingJob request for one model: the same dict for both backends."""
    from streamguard.jobs.names import make_job_name
    from streamguard.jobs.request import build_training_request
    from streamguard.pipeline.job_running import job_account

    hps = training_hyperparameters(config, model_type)
    hps.update(extra_hyperparameters or {})
    job_name = make_job_name("sg", model_type + name_suffix, run.dag_run_id,
                             {"hps": hps, "data": data.data_hash, "src": source.sha256})
    role, region, image = job_account(run.backend)
    return build_training_request(
        job_name=job_name,
        model_type=model_type,
        channels=data.channels,
        output_uri=run.uri("jobs"),
        source_dir_uri=source.uri,
        hyperparameters=hps,
        role_arn=role,
        region=region,
        image_uri=image,
        instance_type=config.instance_type,
        instance_count=config.instance_count,
        max_runtime_s=config.max_runtime_s,
        spot=config.use_spot,
        # Per run and model, not per job: a retry's new job (`<name>-a<try>`) resumes from the
        # last epoch the failed attempt saved. Evaluate jobs have none (`build_evaluate_job`).
        checkpoint_uri=run.uri("checkpoints", model_type + name_suffix),
        model_channel_uri=model_channel_uri,
        tags={"dag_id": run.dag_id, "model_type": model_type},
    )


def build_evaluate_job(run: RunContext, config: TrainingConfig, model_type: str, data: PreparedChannels,
                       source: SourcePackage, *, model_channel_uri: str, name_suffix: str = "-eval",
                       expected_sha256: str | None = None) -> dict:
    """The CreateTrainingJob request of the evaluate job of one trained model (see
    `streamguard.jobs.request.build_evaluate_request`): one on-demand instance, no checkpoints.

    It scores at the model's own decision threshold (saved in its config), not at this run's default.
    """
    from streamguard.jobs.names import make_job_name
    from streamguard.jobs.request import build_evaluate_request
    from streamguard.pipeline.job_running import job_account

    m = config.per_model[model_type]
    hps: dict[str, Any] = {"model-type": model_type, "batch-size": m.batch_size, "seed": config.seed}
    if expected_sha256:
        hps["model-sha256"] = expected_sha256
    job_name = make_job_name("sg", model_type + name_suffix, run.dag_run_id,
                             {"hps": hps, "model": model_channel_uri, "data": data.data_hash,
                              "src": source.sha256})
    role, region, image = job_account(run.backend)
    return build_evaluate_request(
        job_name=job_name, model_type=model_type, test_uri=data.channels["test"],
        model_uri=model_channel_uri, output_uri=run.uri("jobs"),
        source_dir_uri=source.uri, hyperparameters=hps, role_arn=role, region=region,
        image_uri=image, instance_type=config.instance_type, max_runtime_s=config.max_runtime_s,
        tags={"dag_id": run.dag_id, "model_type": model_type, "job_kind": "evaluate"},
    )
