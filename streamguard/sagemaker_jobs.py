"""Pure builders of SageMaker ``CreateTrainingJob`` requests, job names and metric definitions.

One request dict describes a training job for both backends: SageMaker receives it through the
amazon provider, the local backend (`streamguard.backends.local`) runs it with the same container
contract. Nothing here does I/O; botocore is imported only by `validate_request`.

Hyperparameters are JSON-encoded the way the SageMaker Python SDK does it (``json.dumps(value)``:
the string ``gnn`` becomes ``"\\"gnn\\""``, the integer 8 becomes ``"8"``). The raw API only
requires strings; the training toolkit in the container (and the local supervisor) JSON-decodes
every value that parses, so the script receives ``--model-type gnn --epochs 8``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

# ------------------------------------------------------------------------------------------ metrics
# The entry prints one line per epoch:
#   "Epoch 3/8: Train Loss=0.4121; Train Acc=0.8333; Val Acc=0.8100; Val F1=0.8000; Val FPR=0.0500;"
EPOCH_METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train:loss", "Regex": "Train Loss=(.*?);"},
    {"Name": "train:accuracy", "Regex": "Train Acc=(.*?);"},
    {"Name": "validation:accuracy", "Regex": "Val Acc=(.*?);"},
    {"Name": "validation:f1", "Regex": "Val F1=(.*?);"},
    {"Name": "validation:fpr", "Regex": "Val FPR=(.*?);"},
]
# SageMaker's FinalMetricDataList holds the *last* value of each metric, i.e. the last epoch's, while
# the model kept is the best epoch's. After training the entry prints one line with the kept model's
# figures, measured again by inference with the saved weights:
#   "Best epoch 2: Validation accuracy=0.8100; Validation f1=0.8000; Validation fpr=0.0500; Test ...;"
# under names of their own, so that `best:*` in FinalMetricDataList describes the registered model.
BEST_METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "best:epoch", "Regex": "Best epoch ([0-9]+):"},
    {"Name": "best:validation:accuracy", "Regex": "Validation accuracy=(.*?);"},
    {"Name": "best:validation:f1", "Regex": "Validation f1=(.*?);"},
    {"Name": "best:validation:fpr", "Regex": "Validation fpr=(.*?);"},
    {"Name": "best:test:accuracy", "Regex": "Test accuracy=(.*?);"},
    {"Name": "best:test:f1", "Regex": "Test f1=(.*?);"},
    {"Name": "best:test:fpr", "Regex": "Test fpr=(.*?);"},
]
METRIC_DEFINITIONS: list[dict[str, str]] = EPOCH_METRIC_DEFINITIONS + BEST_METRIC_DEFINITIONS
# Evaluate jobs print "Evaluated N rows (...): Test Acc=0.8000; Test F1=0.7500; Test FPR=0.1000;".
EVALUATE_METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "test:accuracy", "Regex": "Test Acc=(.*?);"},
    {"Name": "test:f1", "Regex": "Test F1=(.*?);"},
    {"Name": "test:fpr", "Regex": "Test FPR=(.*?);"},
]


class MetricParser:
    """Incremental parser of log lines with SageMaker ``MetricDefinitions`` (first group = value).

    Like SageMaker, a value that is not a finite number is ignored (and counted in ``skipped``).
    """

    def __init__(self, metric_definitions: Iterable[Mapping[str, str]] = METRIC_DEFINITIONS):
        self.definitions = [(d["Name"], re.compile(d["Regex"])) for d in metric_definitions]
        self.last: dict[str, float] = {}
        self.series: dict[str, list[float]] = {name: [] for name, _ in self.definitions}
        self.skipped = 0

    def feed(self, line: str) -> list[tuple[str, float]]:
        """Parse one line; returns the (name, value) pairs it carried, in definition order."""
        found = []
        for name, regex in self.definitions:
            match = regex.search(line)
            if not match:
                continue
            try:
                value = float(match.group(1).strip())
            except (ValueError, IndexError):
                self.skipped += 1
                continue
            if not math.isfinite(value):
                self.skipped += 1
                continue
            self.last[name] = value
            self.series[name].append(value)
            found.append((name, value))
        return found


def parse_metrics(log_lines: Iterable[str],
                  metric_definitions: Iterable[Mapping[str, str]] = METRIC_DEFINITIONS) -> dict[str, float]:
    """The last value of each metric found in ``log_lines`` (metrics never seen are absent)."""
    parser = MetricParser(metric_definitions)
    for line in log_lines:
        parser.feed(line)
    return dict(parser.last)


def parse_metric_series(log_lines: Iterable[str],
                        metric_definitions: Iterable[Mapping[str, str]] = METRIC_DEFINITIONS) -> dict[str, list[float]]:
    """Every value of each metric in log order (one per epoch for the entry's line format)."""
    parser = MetricParser(metric_definitions)
    for line in log_lines:
        parser.feed(line)
    return {name: values for name, values in parser.series.items() if values}


# ---------------------------------------------------------------------------------------- job names
JOB_NAME_MAX = 63
JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# Every job name ends "-<sha256[:JOB_NAME_HASH_LEN]>"; attempt names (`streamguard.lifecycle`) keep that tail.
JOB_NAME_HASH_LEN = 10


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9]+", "-", text)).strip("-")


def make_job_name(prefix: str, model_type: str, dag_run_id: str, config: Mapping[str, Any]) -> str:
    """A deterministic, valid training job name: ``<prefix>-<model_type>-<run slug>-<sha256[:10]>``.

    The hash covers the run id and the JSON of ``config`` (sorted keys), so a task retry in the
    same DAG run finds the same job while any change of data, code or hyperparameters gets a new
    one. The run slug is shortened first; prefix, model type and hash always survive.

    Raises:
        ValueError: prefix/model type empty or too long to leave room for the hash.
    """
    head = _slug(f"{prefix}-{model_type}")
    if not head or not head[0].isalnum():
        raise ValueError(f"make_job_name: prefix {prefix!r} + model type {model_type!r} give no valid name start")
    payload = json.dumps({"run": dag_run_id, "config": config}, sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:JOB_NAME_HASH_LEN]
    room = JOB_NAME_MAX - len(head) - len(digest) - 2
    if room < 0:
        raise ValueError(f"make_job_name: {head!r} is too long ({len(head)} chars) for a {JOB_NAME_MAX}-char name")
    run = _slug(dag_run_id)[:room].strip("-")
    name = "-".join(p for p in (head, run, digest) if p)
    check_job_name(name)
    return name


def check_job_name(name: str) -> str:
    """Raise ValueError unless ``name`` is a valid SageMaker training job name; returns it."""
    if not isinstance(name, str) or len(name) > JOB_NAME_MAX or not JOB_NAME_RE.match(name):
        raise ValueError(
            f"invalid training job name {name!r}: 1-{JOB_NAME_MAX} letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


# ------------------------------------------------------------------------------------------ images
# The AWS PyTorch Deep Learning Containers this bundle runs in: (repository, tag) -> (torch, python).
# From the DLC release notes (github.com/aws/deep-learning-containers, `available_images.md`, tables
# "SageMaker Framework Containers" and "Prior SageMaker Framework Containers"). The training toolkit
# pip-installs `training_entry/requirements.txt` on top of the image's torch, so the image's torch and
# Python must satisfy every pin there: transformers 5 refuses torch < 2.6 ("AutoModel requires
# PyTorch >= 2.6"), which rules out the 2.5.1 images; tests check the defaults against the installed
# packages' metadata.
DLC_IMAGES: dict[tuple[str, str], tuple[str, str]] = {
    ("pytorch-training", "2.9.0-cpu-py312-ubuntu22.04-sagemaker"): ("2.9.0", "3.12"),
    ("pytorch-training", "2.9.0-gpu-py312-cu130-ubuntu22.04-sagemaker"): ("2.9.0", "3.12"),
    ("pytorch-training", "2.8.0-cpu-py312-ubuntu22.04-sagemaker"): ("2.8.0", "3.12"),
    ("pytorch-training", "2.8.0-gpu-py312-cu129-ubuntu22.04-sagemaker"): ("2.8.0", "3.12"),
    ("pytorch-training", "2.7.1-cpu-py312-ubuntu22.04-sagemaker"): ("2.7.1", "3.12"),
    ("pytorch-training", "2.7.1-gpu-py312-cu128-ubuntu22.04-sagemaker"): ("2.7.1", "3.12"),
    ("pytorch-training", "2.6.0-cpu-py312-ubuntu22.04-sagemaker"): ("2.6.0", "3.12"),
    ("pytorch-training", "2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker"): ("2.6.0", "3.12"),
    # The former default; listed so that a configured image of this tag is recognised (and refused
    # by `image_pin_conflicts` for the transformer).
    ("pytorch-training", "2.5.1-cpu-py311"): ("2.5.1", "3.11"),
    ("pytorch-training", "2.5.1-gpu-py311"): ("2.5.1", "3.11"),
    ("pytorch-inference", "2.6.0-cpu-py312-ubuntu22.04-sagemaker"): ("2.6.0", "3.12"),
    ("pytorch-inference", "2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"): ("2.6.0", "3.12"),
}
TRAINING_REPOSITORY = "pytorch-training"
INFERENCE_REPOSITORY = "pytorch-inference"
DEFAULT_TRAINING_TAGS = {"cpu": "2.9.0-cpu-py312-ubuntu22.04-sagemaker",
                         "gpu": "2.9.0-gpu-py312-cu130-ubuntu22.04-sagemaker"}
DEFAULT_INFERENCE_TAGS = {"cpu": "2.6.0-cpu-py312-ubuntu22.04-sagemaker",
                          "gpu": "2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"}
# The inference images alone, tag -> (torch, python).
INFERENCE_IMAGES: dict[str, tuple[str, str]] = {
    tag: versions for (repo, tag), versions in DLC_IMAGES.items() if repo == INFERENCE_REPOSITORY}
INFERENCE_PROGRAM = "inference.py"  # `code/inference.py` inside model.tar.gz (training_entry/inference.py)

# The registry account of the DLC images per region (the SageMaker Python SDK's
# `image_uri_config/pytorch.json` "registries", and the DLC region table). Most regions use the
# same account; opt-in regions and China have their own.
DLC_ACCOUNT = "763104351884"
_DLC_STANDARD_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
    "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
)
DLC_ACCOUNTS: dict[str, str] = {
    **{region: DLC_ACCOUNT for region in _DLC_STANDARD_REGIONS},
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}
_CPU_FAMILIES = ("m", "c", "r", "t")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


def is_gpu_instance(instance_type: str) -> bool:
    """True for accelerated instance families (``ml.g5.xlarge``, ``ml.p4d.24xlarge``, ...)."""
    parts = instance_type.split(".")
    return len(parts) == 3 and not parts[1].startswith(_CPU_FAMILIES)


def dlc_registry(region: str) -> str:
    """The ECR registry host of the DLC images in ``region`` (account from `DLC_ACCOUNTS`).

    Raises:
        ValueError: not a region name, or a region without DLC images in the table (pass the image
            URI explicitly there: setting `streamguard_training_image` / `streamguard_inference_image`).
    """
    if not _REGION_RE.fullmatch(region or ""):
        raise ValueError(f"{region!r} is not an AWS region name")
    account = DLC_ACCOUNTS.get(region)
    if account is None:
        raise ValueError(f"no Deep Learning Containers registry known for region {region!r}: set the image URI "
                         "explicitly (Variable streamguard_training_image / streamguard_inference_image)")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def dlc_image(region: str, repository: str, tag: str) -> str:
    """``<registry of region>/<repository>:<tag>`` for an image of `DLC_IMAGES`."""
    if (repository, tag) not in DLC_IMAGES:
        known = sorted(t for r, t in DLC_IMAGES if r == repository)
        raise ValueError(f"{repository}:{tag} is not one of the known images {known}")
    return f"{dlc_registry(region)}/{repository}:{tag}"


def image_versions(image_uri: str) -> tuple[str, str] | None:
    """(torch, python) of a DLC image URI from `DLC_IMAGES`; None for an image not in the table."""
    name = image_uri.rsplit("/", 1)[-1]
    repository, _, tag = name.partition(":")
    return DLC_IMAGES.get((repository, tag))


def pytorch_training_image(region: str, *, gpu: bool, tag: str | None = None) -> str:
    """The PyTorch training DLC for ``region`` (default tag from `DEFAULT_TRAINING_TAGS`).

    e.g. ``763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.9.0-cpu-py312-ubuntu22.04-sagemaker``.
    """
    return dlc_image(region, TRAINING_REPOSITORY, tag or DEFAULT_TRAINING_TAGS["gpu" if gpu else "cpu"])


def pytorch_inference_image(region: str, *, gpu: bool = False, tag: str | None = None) -> str:
    """The PyTorch inference DLC that serves the models (CPU by default); ``tag`` from `INFERENCE_IMAGES`."""
    tag = tag or DEFAULT_INFERENCE_TAGS["gpu" if gpu else "cpu"]
    if tag not in INFERENCE_IMAGES:
        raise ValueError(f"pytorch_inference_image: tag {tag!r} is not one of {sorted(INFERENCE_IMAGES)}")
    return dlc_image(region, INFERENCE_REPOSITORY, tag)


def image_pin_conflicts(torch_version: str, python_version: str,
                        requirements: Mapping[str, Iterable[str]],
                        requires_python: Mapping[str, str | None]) -> list[str]:
    """What in the pins an image with ``torch_version`` / ``python_version`` does not satisfy.

    Args:
        requirements: package -> its declared requirements (``importlib.metadata.requires``);
            only the ``torch`` ones are checked, extras included (the entry imports torch).
        requires_python: package -> its ``Requires-Python`` (None when it declares none).

    Returns:
        One line per conflict (empty: the image satisfies every pin).
    """
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    problems = []
    for package, reqs in requirements.items():
        for text in reqs or ():
            req = Requirement(text)
            if req.name.lower() == "torch" and not req.specifier.contains(torch_version, prereleases=True):
                problems.append(f"{package} needs torch{req.specifier}, the image has torch {torch_version}")
    for package, spec in requires_python.items():
        if spec and not SpecifierSet(spec).contains(python_version + ".0", prereleases=True):
            problems.append(f"{package} needs Python {spec}, the image has Python {python_version}")
    return problems


def inference_container(region: str, model_data_url: str, *, model_version: str | None = None,
                        gpu: bool = False, image_uri: str | None = None) -> dict:
    """The container of a SageMaker Model / model package serving one registry version.

    ``SAGEMAKER_PROGRAM`` makes the PyTorch inference toolkit run ``code/inference.py`` from the
    archive instead of its default handler (which looks for a TorchScript ``model.pt``).
    ``image_uri`` overrides the default inference DLC (a mirror, or a region outside the table).
    """
    env = {"SAGEMAKER_PROGRAM": INFERENCE_PROGRAM}
    if model_version:
        env["STREAMGUARD_MODEL_VERSION"] = model_version
    image = image_uri or pytorch_inference_image(region, gpu=gpu)
    return {"Image": image, "ModelDataUrl": model_data_url, "Environment": env}


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
        image_uri = LOCAL_IMAGE if local else pytorch_training_image(region, gpu=is_gpu_instance(instance_type))

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
