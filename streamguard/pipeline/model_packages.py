"""The SageMaker Model Registry mirror of registry versions (SageMaker backend only).

`ModelPackages` is hook-like: it holds one SageMaker client (the amazon provider's, from the
``aws_default`` connection) and offers the few calls registration needs.
"""

from __future__ import annotations

import logging
from functools import cached_property

from streamguard import settings, storage
from streamguard.pipeline.evaluation import evaluation_metrics_uri
from streamguard.pipeline.params import MODEL_NAMES

log = logging.getLogger(__name__)


def model_package_group_name(model_type: str) -> str:
    """The SageMaker model package group of a model type (hyphens only: the API rejects `_`)."""
    return "streamguard-" + MODEL_NAMES[model_type].replace("_", "-")


class ModelPackages:
    """Model package groups and packages in the SageMaker Model Registry.

    Args:
        aws_conn_id: the Airflow connection of the SageMaker client.
    """

    def __init__(self, aws_conn_id: str = "aws_default"):
        self.aws_conn_id = aws_conn_id

    @cached_property
    def conn(self):
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.aws_conn_id).conn

    def register(self, version: dict, *, approved: bool) -> str:
        """Mirror one registry version into its model's package group; returns the package ARN.

        The package group is created on first use. The package is `Approved` when ``approved`` (the
        gate passed; for a retraining challenger, it was promoted) and `Rejected` otherwise, serves
        `ModelDataUrl` = the registered artifact with the PyTorch inference image, and carries the
        registry version and training job in `CustomerMetadataProperties`. Idempotent by training job
        name: a task retry finds the package it created before.

        Args:
            version: the registry record (`ModelVersion.to_dict()`).
        """
        from streamguard.jobs.images import inference_container

        sm = self.conn
        group = model_package_group_name(version["model_type"])
        job_name = version["training_job_name"]
        self.ensure_group(group, f"StreamGuard {version['model_name']} ({version['model_type']})")
        existing = self.find(group, job_name)
        if existing:
            log.info("model package for job %s already registered (retry): %s", job_name, existing)
            return existing
        response = sm.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=(f"{version['model_name']} registry version {version['version']} "
                                     f"({version['status']}) from training job {job_name}")[:1024],
            InferenceSpecification={
                "Containers": [inference_container(
                    sm.meta.region_name, version["artifact_uri"],
                    model_version=f"{version['model_name']}@{version['version']}",
                    image_uri=settings.inference_image_override())],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved" if approved else "Rejected",
            **_model_metrics(version),
            CustomerMetadataProperties={
                "registry_model_name": version["model_name"],
                "registry_version": str(version["version"]),
                "registry_status": version["status"],
                "training_job_name": job_name,
                "artifact_sha256": version["artifact_sha256"],
            },
        )
        return response["ModelPackageArn"]

    def ensure_group(self, group: str, description: str) -> None:
        """Create the package group unless it exists (or another run creates it meanwhile)."""
        from botocore.exceptions import ClientError

        try:
            self.conn.describe_model_package_group(ModelPackageGroupName=group)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise
            try:
                self.conn.create_model_package_group(ModelPackageGroupName=group,
                                                     ModelPackageGroupDescription=description)
            except ClientError as create_exc:  # another run created it between describe and create
                if "already exists" not in str(create_exc):
                    raise

    def find(self, group: str, job_name: str) -> str | None:
        """ARN of the package in ``group`` made from training job ``job_name``, if any."""
        sm = self.conn
        for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
            for summary in page.get("ModelPackageSummaryList", []):
                arn = summary["ModelPackageArn"]
                props = sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties") or {}
                if props.get("training_job_name") == job_name:
                    return arn
        return None


def _model_metrics(version: dict) -> dict:
    """``ModelMetrics`` of a package: the evaluate job's metrics.json on S3 (shown in the SageMaker
    registry as model quality statistics); empty when the evaluation left none there."""
    predictions = (version.get("extra") or {}).get("predictions_uri")
    if not predictions:
        return {}
    uri = evaluation_metrics_uri(predictions)
    if not uri.startswith("s3://") or not storage.exists(uri):
        return {}
    return {"ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}}}
