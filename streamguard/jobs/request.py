"""The ``CreateTrainingJob`` request: one dict describes a training or evaluate job for both backends.

SageMaker receives it through the amazon provider, the local backend (`streamguard.backends.local`)
runs it with the same container contract. Nothing here does I/O; botocore is imported only by
`validate_request`.

Hyperparameters are JSON-encoded the way the SageMaker Python SDK does it (``json.dumps(value)``:
the string ``gnn`` becomes ``"\\"gnn\\""``, the integer 8 becomes ``"8"``). The raw API only
requires strings; the training toolkit in the container (and the local supervisor) JSON-decodes
every value that parses, so the script receives ``--model-type gnn --epochs 8``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from streamguard.jobs.images import training_image
from streamguard.jobs.metrics import EVALUATE_METRIC_DEFINITIONS, METRIC_DEFINITIONS
from streamguard.jobs.names import check_job_name

# --------------------------------------------------------------------------------- hyperparameters
SCRIPT_MODE_KEYS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_region",
    "sagemaker_container_log_level",
)
DISTRIBUTED_KEY = "sagemaker_torch_distributed_enabled"  # the SDK's PyTorch `torch_distributed` switch
INSTANCE_TYPE_KEY = "sagemaker_instance_type"
RESERVED_PREFIX = "sagemaker_"
LOG_LEVEL_INFO = 20


def encode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """JSON-encode every value as the SageMaker SDK does (``"gnn"`` -> ``'"gnn"'``, 8 -> ``"8"``)."""
    out = {}
    for key, value in hyperparameters.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"hyperparameter name {key!r} must be a non-empty string")
        if value is None:
            raise ValueError(f"hyperparameter {key!r} is None: drop it or give a value")
        out[key] = json.dumps(value, sort_keys=True)
    return out


def decode_hyperparameter(value: str) -> Any:
    """What the container toolkit does: JSON-decode when the string parses, else keep it."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def user_hyperparameters(encoded: Mapping[str, str]) -> dict[str, Any]:
    """Decoded hyperparameters without the script-mode ``sagemaker_*`` keys (what the script sees)."""
    return {k: decode_hyperparameter(v) for k, v in encoded.items() if not k.startswith(RESERVED_PREFIX)}


# ------------------------------------------------------------------------------------ the request
CHANNEL_NAMES = ("train", "validation", "test", "model")
CONTENT_TYPE = "application/jsonlines"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
LOCAL_REGION = "local"  # region of a request meant for the local backend (file:// URIs allowed)
LOCAL_IMAGE = "local"
MAX_RUNTIME_LIMIT_S = 28 * 24 * 3600  # the API's upper bound for MaxRuntimeInSeconds
DEFAULT_MAX_RUNTIME_S = 2 * 3600


def _check_uri(field: str, uri: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(uri, str) or "://" not in uri:
        raise ValueError(f"{field}: {uri!r} is not a URI ({' or '.join(s + '://' for s in allowed)})")
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in allowed:
        raise ValueError(f"{field}: {uri!r} uses {scheme}://, but this backend needs "
                         f"{' or '.join(s + '://' for s in allowed)}")
    if not uri.split("://", 1)[1].strip("/"):
        raise ValueError(f"{field}: {uri!r} has no bucket or path")
    return uri


def _tags(model_type: str, tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    merged = {"project": "streamguard", "model_type": model_type}
    merged.update({str(k): str(v) for k, v in (tags or {}).items()})
    out = []
    for key, value in merged.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise ValueError(f"tag {key!r}: keys are 1-128 chars and values at most 256")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tag {key!r}: the aws: prefix is reserved")
        out.append({"Key": key, "Value": value})
    return out


def build_training_request(
    *,
    job_name: str,
    model_type: str,
    channels: Mapping[str, str],
    output_uri: str,
    source_dir_uri: str,
    hyperparameters: Mapping[str, Any],
    role_arn: str,
    region: str,
    entry_point: str = "train_enhanced_models.py",
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    volume_gb: int = 30,
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S,
    spot: bool = False,
    max_wait_s: int | None = None,
    checkpoint_uri: str | None = None,
    image_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    model_channel_uri: str | None = None,
    distributed: bool | None = None,
    container_log_level: int = LOG_LEVEL_INFO,
    metric_definitions: Iterable[Mapping[str, str]] | None = None,
) -> dict:
    """The raw ``CreateTrainingJob`` request for one script-mode PyTorch job.

    Args:
        channels: channel name -> URI of a prefix (names from ``CHANNEL_NAMES``); ``model`` may
            also be given as ``model_channel_uri`` (previous weights for fine-tuning/evaluation).
        output_uri: ``S3OutputPath``; artifacts land at ``<output_uri>/<job>/output/model.tar.gz``.
        source_dir_uri: the ``sourcedir.tar.gz`` from `streamguard.sourcedir`.
        hyperparameters: script arguments (``{"epochs": 8}`` -> ``--epochs 8``); names starting
            with ``sagemaker_`` are reserved for script mode.
        region: an AWS region, or ``"local"`` for the local backend, which also allows
            ``file://`` URIs (SageMaker itself only reads ``s3://``).
        spot: managed spot training; ``max_wait_s`` defaults to ``max_runtime_s`` and must not be
            smaller. Give ``checkpoint_uri`` so an interrupted job resumes.
        distributed: run the entry under ``torchrun`` (DDP). ``None``: on when instance_count > 1.

    Returns:
        A dict ready for ``boto3.client("sagemaker").create_training_job(**request)``.

    Raises:
        ValueError: naming the argument and what is wrong with it.
    """
    check_job_name(job_name)
    local = region == LOCAL_REGION
    schemes = ("s3", "file") if local else ("s3",)
    if not isinstance(model_type, str) or not model_type:
        raise ValueError("model_type must be a non-empty string")
    if isinstance(instance_count, bool) or not isinstance(instance_count, int) or instance_count < 1:
        raise ValueError(f"instance_count must be an integer >= 1, got {instance_count!r}")
    if not re.fullmatch(r"ml\.[a-z0-9]+\.[a-z0-9]+", instance_type or ""):
        raise ValueError(f"instance_type {instance_type!r} is not like ml.m5.xlarge")
    if isinstance(volume_gb, bool) or not isinstance(volume_gb, int) or volume_gb < 1:
        raise ValueError(f"volume_gb must be an integer >= 1, got {volume_gb!r}")
    if isinstance(max_runtime_s, bool) or not isinstance(max_runtime_s, int) \
            or not 1 <= max_runtime_s <= MAX_RUNTIME_LIMIT_S:
        raise ValueError(f"max_runtime_s must be an integer in 1..{MAX_RUNTIME_LIMIT_S}, got {max_runtime_s!r}")
    if not local and not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/\S+", role_arn or ""):
        raise ValueError(f"role_arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    if not local and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region or ""):
        raise ValueError(f"region {region!r} is not an AWS region (or 'local' for the local backend)")
    if not entry_point or "/" in entry_point or not entry_point.endswith(".py"):
        raise ValueError(f"entry_point {entry_point!r} must be a .py file at the source dir root")

    all_channels = dict(channels)
    if model_channel_uri is not None:
        if "model" in all_channels and all_channels["model"] != model_channel_uri:
            raise ValueError("model channel given twice (channels['model'] and model_channel_uri) with different URIs")
        all_channels["model"] = model_channel_uri
    if not all_channels:
        raise ValueError("channels: at least one input channel is needed")
    unknown = sorted(set(all_channels) - set(CHANNEL_NAMES))
    if unknown:
        raise ValueError(f"channels: unknown channel(s) {unknown}; allowed: {list(CHANNEL_NAMES)}")
    for name, uri in all_channels.items():
        _check_uri(f"channels[{name!r}]", uri, schemes)
    _check_uri("output_uri", output_uri, schemes)
    _check_uri("source_dir_uri", source_dir_uri, schemes)
    if checkpoint_uri is not None:
        _check_uri("checkpoint_uri", checkpoint_uri, schemes)

    reserved = sorted(k for k in hyperparameters if str(k).startswith(RESERVED_PREFIX))
    if reserved:
        raise ValueError(f"hyperparameters: {reserved} use the reserved prefix {RESERVED_PREFIX!r}")
    hps = encode_hyperparameters(hyperparameters)
    hps.update(encode_hyperparameters({
        "sagemaker_program": entry_point,
        "sagemaker_submit_directory": source_dir_uri,
        "sagemaker_region": region,
        "sagemaker_container_log_level": container_log_level,
    }))
    if distributed is None:
        distributed = instance_count > 1
    if distributed:
        hps.update(encode_hyperparameters({DISTRIBUTED_KEY: True, INSTANCE_TYPE_KEY: instance_type}))

    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_runtime_s}
    if spot:
        wait = max_runtime_s if max_wait_s is None else max_wait_s
        if isinstance(wait, bool) or not isinstance(wait, int) or wait < max_runtime_s:
            raise ValueError(f"max_wait_s ({wait!r}) must be an integer >= max_runtime_s ({max_runtime_s})")
        stopping["MaxWaitTimeInSeconds"] = wait
    elif max_wait_s is not None:
        raise ValueError("max_wait_s applies only to spot training (spot=True)")

    if image_uri is None:
        image_uri = LOCAL_IMAGE if local else training_image(region, instance_type)

    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(d) for d in (METRIC_DEFINITIONS if metric_definitions is None
                                                    else metric_definitions)],
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "RoleArn": role_arn,
        "HyperParameters": hps,
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": all_channels[name],
                    "S3DataDistributionType": "FullyReplicated",
                }},
                "ContentType": CONTENT_TYPE,
                "InputMode": "File",
            }
            for name in CHANNEL_NAMES if name in all_channels
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": volume_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": bool(spot),
        "Tags": _tags(model_type, tags),
    }
    if checkpoint_uri is not None:
        request["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": CHECKPOINT_LOCAL_PATH}
    return request


def build_evaluate_request(
    *,
    job_name: str,
    model_type: str,
    test_uri: str,
    model_uri: str,
    output_uri: str,
    source_dir_uri: str,
    hyperparameters: Mapping[str, Any],
    role_arn: str,
    region: str,
    entry_point: str = "train_enhanced_models.py",
    instance_type: str = "ml.m5.xlarge",
    volume_gb: int = 30,
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S,
    image_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict:
    """The ``CreateTrainingJob`` request of an evaluate job: the entry's ``--mode evaluate`` on one
    model (channel ``model``) and one test set (channel ``test``).

    Built on its own terms, not derived from a training request: one on-demand instance (an evaluate
    job is short, so spot saves little and a spot-only ``MaxWaitTimeInSeconds`` would make the
    request invalid), no ``CheckpointConfig`` (it must not read a training job's checkpoints) and no
    torchrun switch. ``mode`` is set here; ``hyperparameters`` add to it (``model-type``, ``batch-size``,
    ``model-sha256``...).
    """
    if "mode" in hyperparameters and hyperparameters["mode"] != "evaluate":
        raise ValueError(f"build_evaluate_request: hyperparameters give mode={hyperparameters['mode']!r}")
    return build_training_request(
        job_name=job_name, model_type=model_type, channels={"test": test_uri}, model_channel_uri=model_uri,
        output_uri=output_uri, source_dir_uri=source_dir_uri,
        hyperparameters={**hyperparameters, "mode": "evaluate"}, role_arn=role_arn, region=region,
        entry_point=entry_point, instance_type=instance_type, instance_count=1, volume_gb=volume_gb,
        max_runtime_s=max_runtime_s, spot=False, checkpoint_uri=None, image_uri=image_uri, tags=tags,
        distributed=False, metric_definitions=EVALUATE_METRIC_DEFINITIONS)


def validate_request(request: Mapping[str, Any]) -> None:
    """Check ``request`` offline against botocore's ``CreateTrainingJob`` input shape, plus the
    rules botocore's validator does not enforce (name pattern, string hyperparameters, spot wait).

    Raises:
        ValueError: with botocore's report (one line per problem) or the rule that failed.
    """
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateTrainingJob").input_shape
    report = ParamValidator().validate(dict(request), shape)
    if report.has_errors():
        raise ValueError(f"CreateTrainingJob request is invalid:\n{report.generate_report()}")
    check_job_name(request["TrainingJobName"])
    bad = {k: type(v).__name__ for k, v in request.get("HyperParameters", {}).items() if not isinstance(v, str)}
    if bad:
        raise ValueError(f"HyperParameters values must be strings: {bad}")
    stopping = request["StoppingCondition"]
    if "MaxWaitTimeInSeconds" in stopping:
        if not request.get("EnableManagedSpotTraining"):
            raise ValueError("StoppingCondition.MaxWaitTimeInSeconds is only valid with EnableManagedSpotTraining")
        if stopping["MaxWaitTimeInSeconds"] < stopping["MaxRuntimeInSeconds"]:
            raise ValueError("StoppingCondition.MaxWaitTimeInSeconds must be >= MaxRuntimeInSeconds")
