"""The SageMaker script-mode container contract, as the local supervisor reproduces it.

The training process's command line (``--name value`` from the hyperparameters), its ``SM_*``
environment, and the ``input/config`` documents (resource config, input data config), for the
one host a local job runs on. See SAGEMAKER.md's contract table and `streamguard.backends.supervisor`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from streamguard.backends.local import JobPaths
from streamguard.jobs.request import decode_hyperparameter, user_hyperparameters

HOST = "algo-1"
# CPUs one local job may use (default: all of them). Local jobs of one run train side by side on
# one machine, and torch's default of a thread per core in each of them oversubscribes the cores.
JOB_CPUS_VAR = "STREAMGUARD_LOCAL_JOB_CPUS"


def job_cpus(env: dict) -> int | None:
    """``$STREAMGUARD_LOCAL_JOB_CPUS`` (a positive integer); None when it is unset."""
    raw = env.get(JOB_CPUS_VAR, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{JOB_CPUS_VAR}={raw!r}: expected a positive number of CPUs per local training job")
    return value

def command_args(hyperparameters: dict[str, str]) -> list[str]:
    """``--name value`` pairs as the SageMaker training toolkit builds them (values JSON-decoded).

    Sorted by name, as the toolkit does. Dicts and lists are passed as JSON; other values via
    ``str`` (so ``true`` arrives as ``True``).
    """
    args = []
    for key, value in sorted(user_hyperparameters(hyperparameters).items()):
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        args += [f"--{key}", text]
    return args


def _env_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key).upper()


def training_environment(request: dict, paths: JobPaths, checkpoint_dir: Path, base_env: dict | None = None) -> dict:
    """The ``SM_*`` environment of the training process (see SAGEMAKER.md's contract table)."""
    env = dict(os.environ if base_env is None else base_env)
    cpus = job_cpus(env)
    hps = request.get("HyperParameters", {})
    user = user_hyperparameters(hps)
    channels = [c["ChannelName"] for c in request.get("InputDataConfig", [])]
    program = decode_hyperparameter(hps["sagemaker_program"])
    env.update({
        "SM_MODEL_DIR": str(paths.model),
        "SM_OUTPUT_DATA_DIR": str(paths.output_data),
        "SM_OUTPUT_DIR": str(paths.output),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(paths.output / "intermediate"),
        "SM_INPUT_DIR": str(paths.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(paths.input_config),
        "SM_CHECKPOINT_DIR": str(checkpoint_dir),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(user, sort_keys=True),
        "SM_USER_ARGS": json.dumps(command_args(hps)),
        "SM_NUM_GPUS": os.environ.get("STREAMGUARD_LOCAL_NUM_GPUS", "0"),
        "SM_NUM_CPUS": str(cpus or os.cpu_count() or 1),
        "SM_HOSTS": json.dumps([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_NETWORK_INTERFACE_NAME": "lo",
        "SM_MODULE_NAME": Path(str(program)).stem,
        "SM_MODULE_DIR": str(decode_hyperparameter(hps["sagemaker_submit_directory"])),
        "SM_LOG_LEVEL": str(decode_hyperparameter(hps.get("sagemaker_container_log_level", "20"))),
        "SM_RESOURCE_CONFIG": json.dumps(resource_config()),
        "SM_INPUT_DATA_CONFIG": json.dumps(input_data_config(request)),
        "SM_TRAINING_ENV": json.dumps({"job_name": request["TrainingJobName"], "hyperparameters": user,
                                       "channel_input_dirs": {c: str(paths.input_data / c) for c in channels}}),
        "PYTHONPATH": os.pathsep.join(p for p in (str(paths.code), env.get("PYTHONPATH", "")) if p),
        "PYTHONUNBUFFERED": "1",
    })
    if cpus:  # set on purpose: torch (OpenMP / MKL) sizes its thread pools from these at start-up
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(cpus)
    for channel in channels:
        env[f"SM_CHANNEL_{_env_name(channel)}"] = str(paths.input_data / channel)
    for key, value in user.items():
        env[f"SM_HP_{_env_name(key)}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env


def resource_config() -> dict:
    return {"current_host": HOST, "hosts": [HOST], "network_interface_name": "lo"}


def input_data_config(request: dict) -> dict:
    return {
        c["ChannelName"]: {
            "ContentType": c.get("ContentType"),
            "TrainingInputMode": c.get("InputMode") or request["AlgorithmSpecification"].get("TrainingInputMode", "File"),
            "S3DistributionType": c["DataSource"]["S3DataSource"].get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": "None",
        }
        for c in request.get("InputDataConfig", [])
    }
