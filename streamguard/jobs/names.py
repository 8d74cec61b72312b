"""Deterministic, valid training job names (`make_job_name`) and their check.

A task retry in the same DAG run finds the same job by name; attempt names (`streamguard.lifecycle`)
keep the hash tail.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

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
