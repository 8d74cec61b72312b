"""The AWS PyTorch Deep Learning Container images: which exist, their registry per region, the
defaults for training and inference, GPU detection, and the serving container of a model.

The one place that decides whether an instance type is a GPU one and which image is the default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

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


def training_image(region: str | None, instance_type: str, *, override: str | None = None) -> str:
    """The image of a training, evaluate or processing job: ``override`` (a configured image), else the
    default PyTorch training DLC of ``region`` for ``instance_type`` (GPU or CPU build)."""
    if override:
        return override
    return pytorch_training_image(region, gpu=is_gpu_instance(instance_type))


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
