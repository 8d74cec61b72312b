"""The SageMaker side of an A/B plan: data capture, models and the endpoint config (SageMaker backend only).

`EndpointConfigs` is hook-like, as `model_packages.ModelPackages` is: it holds one SageMaker client
(the amazon provider's, from the connection in `settings.resolve_sagemaker_settings`) and offers the
few calls `ab_endpoint.ab_plan` needs. `job_running.endpoint_configs` says whether a backend has one.
The endpoint itself is never created here: shifting live traffic stays a human decision.
"""

from __future__ import annotations

import logging
from functools import cached_property

from streamguard import settings, storage

log = logging.getLogger(__name__)


class EndpointConfigs:
    """CreateModel / CreateEndpointConfig for champion and challenger, and where their traffic is captured."""

    @cached_property
    def sagemaker(self):
        """The deployment's SageMaker settings (role, region, inference image, connection)."""
        return settings.resolve_sagemaker_settings()

    @cached_property
    def conn(self):
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.sagemaker.aws_conn_id).conn

    @staticmethod
    def data_capture_uri(model_type: str) -> str:
        """Where the endpoint captures requests and responses (`streamguard feedback from-capture` reads them)."""
        return storage.join_uri(settings.artifact_root(), "datacapture", model_type)

    def create(self, plan: dict, versions: list) -> None:
        """CreateModel for each variant's registry version (if missing) and CreateEndpointConfig ``plan``.

        A retried task finds both already there and leaves them as they are.
        """
        from streamguard.ab import sagemaker_model_name
        from streamguard.jobs.images import inference_container

        sm, client = self.sagemaker, self.conn
        for version in versions:
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
