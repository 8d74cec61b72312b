"""The A/B endpoint configuration of champion and challenger after a retraining.

Written as a JSON artifact in every mode; on SageMaker also the models and the endpoint config
(not the endpoint itself: shifting live traffic stays a human decision).
"""

from __future__ import annotations

import json
import logging

from streamguard import settings, storage
from streamguard.pipeline.params import MODEL_NAMES
from streamguard.pipeline.records import run_uri
from streamguard.pipeline.registration import registry as _registry

log = logging.getLogger(__name__)


def ab_plan(config: dict, model_type: str, decision: dict, key: str, backend: str) -> dict:
    """The A/B endpoint configuration for champion and challenger, written as a JSON artifact.

    SageMaker mode also creates the models and the endpoint config (not the endpoint itself:
    shifting live traffic stays a human decision).
    """
    from streamguard.ab import endpoint_plan

    if decision.get("champion_version") is None:  # a bootstrap: there is no second model to test against
        reason = (f"no A/B plan: {MODEL_NAMES[model_type]} had no champion before this run, so there is "
                  "nothing to test the new version against")
        log.info(reason)
        return {"plan_uri": None, "plan": None, "skipped_reason": reason}
    registry = _registry()
    model_name = MODEL_NAMES[model_type]
    champion = registry.get_version(model_name, decision["champion_version"])
    challenger = registry.get_version(model_name, decision["challenger_version"])

    # After a promotion the new champion serves and the old one is the A/B challenger; after a
    # rejection the champion serves and the rejected challenger can only shadow.
    promoted = bool(decision.get("promoted"))
    serving, other = (challenger, champion) if promoted else (champion, challenger)
    # SageMaker: requests and responses are captured to S3, where `streamguard feedback from-capture` reads them.
    capture = storage.join_uri(settings.artifact_root(), "datacapture", model_type) if backend == "sagemaker" else None
    plan = endpoint_plan(serving, other, challenger_weight=config["ab_challenger_weight"], shadow=not promoted,
                         data_capture_uri=capture)
    uri = run_uri(key, "ab", f"{model_type}-endpoint-config.json")
    storage.write_text(uri, json.dumps(plan, indent=2, default=str))
    if backend == "sagemaker":
        _create_sagemaker_endpoint_config(plan, {serving.version: serving, other.version: other})
    return {"plan_uri": uri, "plan": plan}


def _create_sagemaker_endpoint_config(plan: dict, versions: dict) -> None:
    """CreateModel for each variant (if missing) and CreateEndpointConfig; the endpoint is left to people."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    from streamguard.ab import sagemaker_model_name
    from streamguard.jobs.images import inference_container

    sm = settings.resolve_sagemaker_settings()
    client = SageMakerHook(aws_conn_id=sm.aws_conn_id).conn
    for version in versions.values():
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
