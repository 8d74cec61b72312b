"""The A/B endpoint configuration of champion and challenger after a retraining.

Written as a JSON artifact in every mode; where the backend serves endpoints also the models and
the endpoint config (`endpoint_configs.EndpointConfigs`; not the endpoint itself: shifting live
traffic stays a human decision).
"""

from __future__ import annotations

import json
import logging

from streamguard import storage
from streamguard.pipeline.params import MODEL_NAMES
from streamguard.pipeline.records import RetrainingConfig, run_uri
from streamguard.pipeline.registration import registry as _registry

log = logging.getLogger(__name__)


def ab_plan(config: RetrainingConfig, model_type: str, decision: dict, key: str, backend: str) -> dict:
    """The A/B endpoint configuration for champion and challenger, written as a JSON artifact.

    Where the backend serves endpoints (`job_running.endpoint_configs`: SageMaker) the traffic is
    captured and the models and the endpoint config are created too (not the endpoint itself:
    shifting live traffic stays a human decision).
    """
    from streamguard.ab import endpoint_plan
    from streamguard.pipeline.job_running import endpoint_configs

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
    endpoints = endpoint_configs(backend)
    plan = endpoint_plan(serving, other, challenger_weight=config.ab_challenger_weight, shadow=not promoted,
                         data_capture_uri=endpoints.data_capture_uri(model_type) if endpoints else None)
    uri = run_uri(key, "ab", f"{model_type}-endpoint-config.json")
    storage.write_text(uri, json.dumps(plan, indent=2, default=str))
    if endpoints:
        endpoints.create(plan, list({serving.version: serving, other.version: other}.values()))
    return {"plan_uri": uri, "plan": plan}
