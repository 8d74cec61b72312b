"""Where StreamGuard keeps things, resolved from the environment (cheap, no I/O).

Airflow Variables are read only inside tasks (`resolve_sagemaker_settings`), never at DAG parse time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("local", "sagemaker")


def streamguard_home() -> Path:
    """Local state directory: $STREAMGUARD_HOME, else $AIRFLOW_HOME/streamguard, else ~/.streamguard."""
    if os.environ.get("STREAMGUARD_HOME"):
        return Path(os.environ["STREAMGUARD_HOME"]).expanduser()
    if os.environ.get("AIRFLOW_HOME"):
        return Path(os.environ["AIRFLOW_HOME"]).expanduser() / "streamguard"
    return Path.home() / ".streamguard"


def backend() -> str:
    """The training backend: $STREAMGUARD_BACKEND, `local` (default) or `sagemaker`."""
    value = os.environ.get("STREAMGUARD_BACKEND", "local").strip().lower() or "local"
    if value not in BACKENDS:
        raise ValueError(f"STREAMGUARD_BACKEND={value!r} is not one of {', '.join(BACKENDS)}")
    return value


def artifact_root() -> str:
    """Root URI of the artifact store (data channels, source dirs, job outputs, run summaries)."""
    return os.environ.get("STREAMGUARD_ARTIFACT_ROOT") or (streamguard_home() / "artifacts").as_uri()


def registry_uri() -> str:
    """Root URI of the model registry."""
    return os.environ.get("STREAMGUARD_REGISTRY_URI") or (streamguard_home() / "registry").as_uri()


def local_jobs_dir() -> Path:
    """Where the local backend keeps job directories (the `/opt/ml` of each local job)."""
    return Path(os.environ.get("STREAMGUARD_LOCAL_JOBS_DIR") or streamguard_home() / "jobs").expanduser()


@dataclass(frozen=True)
class SageMakerSettings:
    """Account-specific SageMaker configuration; never hard-coded, always looked up at run time."""

    role_arn: str
    region: str
    aws_conn_id: str = "aws_default"
    image_uri: str | None = None
    inference_image_uri: str | None = None


def _setting(env: str | None, variable: str) -> str | None:
    """$``env``, else the Airflow Variable ``variable`` (None when neither is set or Airflow is absent)."""
    value = os.environ.get(env) if env else None
    if value:
        return value
    try:
        from airflow.sdk import Variable
    except ImportError:  # the library outside Airflow: environment only
        return None
    return Variable.get(variable, default=None) or None


def inference_image_override() -> str | None:
    """$STREAMGUARD_INFERENCE_IMAGE / Variable `streamguard_inference_image` (None: the region's DLC)."""
    return _setting("STREAMGUARD_INFERENCE_IMAGE", "streamguard_inference_image")


def resolve_sagemaker_settings() -> SageMakerSettings:
    """Read role, region and image overrides from env or Airflow Variables (call inside a task only).

    Each is read on its own, env first:
    role: $STREAMGUARD_SAGEMAKER_ROLE_ARN / Variable `streamguard_sagemaker_role_arn`;
    region: $AWS_DEFAULT_REGION / $AWS_REGION / Variable `streamguard_aws_region`;
    training image: $STREAMGUARD_TRAINING_IMAGE / Variable `streamguard_training_image` (default: the
    PyTorch training DLC of the region); inference image: $STREAMGUARD_INFERENCE_IMAGE / Variable
    `streamguard_inference_image` (default: the PyTorch inference DLC of the region). The overrides
    serve a private mirror of the images or a region outside the DLC account table.
    """
    role = _setting("STREAMGUARD_SAGEMAKER_ROLE_ARN", "streamguard_sagemaker_role_arn")
    region = (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
              or _setting(None, "streamguard_aws_region"))
    image = _setting("STREAMGUARD_TRAINING_IMAGE", "streamguard_training_image")
    inference_image = inference_image_override()
    if not role:
        raise ValueError(
            "SageMaker backend needs an execution role: set the Airflow Variable "
            "`streamguard_sagemaker_role_arn` (or env STREAMGUARD_SAGEMAKER_ROLE_ARN)"
        )
    if not region:
        raise ValueError(
            "SageMaker backend needs a region: set AWS_DEFAULT_REGION or the Airflow Variable `streamguard_aws_region`"
        )
    return SageMakerSettings(role_arn=role, region=region, image_uri=image, inference_image_uri=inference_image)
