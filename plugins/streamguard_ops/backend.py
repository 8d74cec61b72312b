"""The training operator and sensor for the configured backend, chosen once at DAG parse time.

`local` imports nothing heavy; `sagemaker` imports the amazon provider (and so boto3), which is
what a SageMaker deployment parses with anyway.
"""

from __future__ import annotations

import os
from typing import Any


def backend_from_env() -> str:
    """`STREAMGUARD_BACKEND` (`local` default, or `sagemaker`), validated."""
    value = os.environ.get("STREAMGUARD_BACKEND", "local").strip().lower() or "local"
    if value not in ("local", "sagemaker"):
        raise ValueError(f"STREAMGUARD_BACKEND={value!r} is not one of local, sagemaker")
    return value


def training_operators(backend: str) -> tuple[type, type, dict[str, Any]]:
    """(operator class, sensor class, sensor kwargs) for `backend`."""
    if backend == "sagemaker":
        from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTrainingSensor

        from streamguard_ops.reconnect import ReconnectingSageMakerTrainingOperator

        # Reschedule mode frees the worker slot between pokes of a job that runs for hours.
        return ReconnectingSageMakerTrainingOperator, SageMakerTrainingSensor, {
            "poke_interval": 60, "mode": "reschedule", "print_log": True}
    from streamguard_ops.operators import LocalTrainingOperator
    from streamguard_ops.sensors import LocalTrainingSensor

    return LocalTrainingOperator, LocalTrainingSensor, {
        "poke_interval": float(os.environ.get("STREAMGUARD_LOCAL_POKE_SECONDS", "3")), "mode": "poke"}


# ------------------------------------------------------------------------------------ task retries
# A retry replaces a job that ended Failed or Stopped; any other existing job is this task's own.
RESTART_STATES = frozenset({"Failed", "Stopped"})
_HASH_TAIL = 11  # "-<sha256[:10]>" that `make_job_name` ends every name with


def attempt_job_name(base: str, try_number: int) -> str:
    """The job name of task try ``try_number`` (>= 2): ``<base>-a<try>``, at most 63 characters.

    When the base name is too long, its middle (the run slug) is shortened: the head and the
    hash tail that makes it unique survive.

    Raises:
        ValueError: ``try_number`` < 2, or no valid name results.
    """
    from streamguard.sagemaker_jobs import JOB_NAME_MAX, check_job_name

    if try_number < 2:
        raise ValueError(f"attempt_job_name: try {try_number} is not a retry (the first try uses {base!r})")
    suffix = f"-a{try_number}"
    name = base + suffix
    if len(name) > JOB_NAME_MAX:
        tail = base[-_HASH_TAIL:]
        head = base[: len(base) - _HASH_TAIL][: JOB_NAME_MAX - len(suffix) - len(tail)].rstrip("-")
        name = head + tail + suffix
    return check_job_name(name)


def choose_job(base: str, try_number: int | None, describe) -> tuple[str, dict | None, str | None]:
    """Which job a (re)tried training task should create or reconnect to.

    Args:
        base: the configured (deterministic) job name.
        try_number: the task's try (``ti.try_number``); None or 1 means a first try.
        describe: ``name -> DescribeTrainingJob dict``, or None when no such job exists.

    Returns:
        ``(name, existing, replaces)``: the job to use, its describe (None: create it) and the
        Failed/Stopped job it replaces (None unless a new attempt starts). A first try, or a
        newest attempt that is still running or completed, is reconnected to whatever its state;
        a newest attempt that ended Failed or Stopped gets a new job ``<base>-a<try>`` (same
        request otherwise, so it resumes from the checkpoints at ``CheckpointConfig``).
    """
    if not try_number or try_number < 2:
        return base, describe(base), None
    own = attempt_job_name(base, try_number)
    # Newest first: the previous tries' jobs, then the first try's.
    for name in [attempt_job_name(base, k) for k in range(try_number, 1, -1)] + [base]:
        existing = describe(name)
        if existing is None:
            continue
        if name == own or existing.get("TrainingJobStatus") not in RESTART_STATES:
            return name, existing, None
        return own, None, name
    return base, None, None


def try_number_of(context) -> int | None:
    """``context["ti"].try_number``, or None where the context has no task instance (direct calls)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) else None


def job_name_template(train_task) -> str:
    """A Jinja template for a sensor's ``job_name``: the job ``train_task`` actually used.

    Both training operators return a dict with ``job_name`` (``<name>-a<try>`` after a retry
    replaced a failed job), and both sensors template ``job_name``. (``XComArg["key"]`` would
    name an XCom key, not a key of the returned dict.)
    """
    return "{{ ti.xcom_pull(task_ids='%s')['job_name'] }}" % train_task.task_id
