"""Running the jobs a run starts itself, on either backend: the one place that branches on it.

`job_account` gives a request's role, region and image; `_job_ops` the describe/create calls;
`run_evaluation_job` runs an evaluate job with the training jobs' lifecycle (`streamguard.lifecycle`);
`collect_job` turns the training sensor's result into the `JobRecord` downstream tasks read;
`model_package_mirror` and `endpoint_configs` give the SageMaker-only services (None elsewhere).
"""

from __future__ import annotations

import logging
import time

from streamguard import settings
from streamguard.jobs.record import JobRecord

log = logging.getLogger(__name__)

# The role of a local backend's requests: the local backend ignores it (and the image), but the
# request keeps the same shape.
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/streamguard-local"


def job_account(backend: str) -> tuple[str, str, str | None]:
    """(role, region, configured training image or None) of a job request for ``backend``.

    None leaves the image to `streamguard.jobs.request`, which picks the default for the instance type.
    """
    from streamguard.jobs.request import LOCAL_REGION

    if backend == "sagemaker":
        sm = settings.resolve_sagemaker_settings()
        return sm.role_arn, sm.region, sm.image_uri
    return LOCAL_ROLE_ARN, LOCAL_REGION, None


def _local_backend():
    from streamguard.backends.local import LocalTrainingBackend

    return LocalTrainingBackend(settings.local_jobs_dir())


def _job_ops(backend: str):
    """(describe-or-None, describe, create) of ``backend``'s training jobs."""
    if backend == "local":
        from streamguard.backends.local import JobNotFoundError

        be = _local_backend()

        def describe_or_none(name: str) -> dict | None:
            try:
                return be.describe_training_job(name)
            except JobNotFoundError:
                return None

        return describe_or_none, be.describe_training_job, be.create_training_job
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.exceptions import ClientError

    hook = SageMakerHook(aws_conn_id="aws_default")

    def describe_or_none(name: str) -> dict | None:
        try:
            return hook.describe_training_job(name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
            return None

    def create(request: dict) -> None:
        # print_log=False: with it the provider sleeps check_interval (30 s) after creating.
        hook.create_training_job(request, wait_for_completion=False, print_log=False)

    return describe_or_none, hook.describe_training_job, create


def poke_seconds(backend: str) -> float:
    """Seconds between looks at a running job: ``STREAMGUARD_SAGEMAKER_POKE_SECONDS`` (60; a task that
    reschedules) or ``STREAMGUARD_LOCAL_POKE_SECONDS`` (3; a task that waits in its slot)."""
    import os

    if backend == "sagemaker":
        return float(os.environ.get("STREAMGUARD_SAGEMAKER_POKE_SECONDS", "60"))
    return float(os.environ.get("STREAMGUARD_LOCAL_POKE_SECONDS", "3"))


def _current_context():
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # noqa: BLE001 - called outside a task (tests, scripts): no retries to count
        return None


def run_evaluation_job(request: dict, backend: str, *, context=None, before_create=None,
                       poll_s: float | None = None, timeout_s: float | None = None) -> dict:
    """Run an evaluation job with the training jobs' lifecycle (`streamguard.lifecycle`).

    The task creates the job, or reconnects to the request's newest attempt (a retry, a reschedule);
    a retry after a failure that a new attempt may fix starts ``<name>-a<n>``; a failure that would
    recur fails the task for good (`AirflowFailException`), any other failure fails this try
    (`AirflowException`) so that its retry starts the next attempt. While the job runs, a SageMaker
    task gives its worker slot back (`AirflowRescheduleException`, every `poke_seconds`); a local one
    waits in its slot, as the local sensor does.

    Args:
        context: the task context (default: the current one; None outside a task).
        before_create: called before any job is created (an integrity check of the inputs).
        timeout_s: a local wait's limit (default ``MaxRuntimeInSeconds`` + 600).

    Returns:
        the Completed job's describe dict.
    """
    from datetime import datetime, timedelta, timezone

    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowRescheduleException

    from streamguard.jobs.request import validate_request
    from streamguard.lifecycle import AUTOMATIC, FAIL, ensure_job, watch_outcome

    validate_request(request)  # before any create, on both backends: the service would refuse it anyway
    context = context if context is not None else _current_context()
    ti = context.get("ti") if context is not None else None
    try_number = getattr(ti, "try_number", None)
    first_execution = not (context.get("task_reschedule_count", 0) if context is not None else 0)
    retry = isinstance(try_number, int) and try_number >= 2 and first_execution
    max_tries = getattr(ti, "max_tries", None)
    # Outside a task nothing retries, but the failure still says whether a new attempt could help.
    will_retry = not (isinstance(try_number, int) and isinstance(max_tries, int)) or try_number <= max_tries
    describe_or_none, describe, create = _job_ops(backend)

    def checked_create(job_request: dict) -> None:
        validate_request(job_request)
        if before_create is not None:
            before_create()
        log.info("starting evaluation job %s", job_request["TrainingJobName"])
        create(job_request)

    action = ensure_job(request, describe_or_none, checked_create, retry=retry, who=AUTOMATIC)
    if action.kind == FAIL:
        raise AirflowFailException(f"evaluation job {action.name} {action.describe.get('TrainingJobStatus')}: "
                                   f"{action.describe.get('FailureReason') or 'no reason given'} ({action.reason})")
    name = action.name
    poll_s = poll_s if poll_s is not None else poke_seconds(backend)
    timeout_s = timeout_s or request["StoppingCondition"]["MaxRuntimeInSeconds"] + 600
    deadline = time.monotonic() + timeout_s
    while True:
        desc = describe(name)
        outcome, message = watch_outcome(desc, will_retry=will_retry)
        if outcome == "done":
            return desc
        if outcome == "retry":
            raise AirflowException(f"evaluation {message}")
        if outcome == "fail":
            raise AirflowFailException(f"evaluation {message}")
        if backend == "sagemaker" and context is not None:
            log.info("%s; looking again in %.0f s (the worker slot is free meanwhile)", message, poll_s)
            raise AirflowRescheduleException(datetime.now(timezone.utc) + timedelta(seconds=poll_s))
        if time.monotonic() > deadline:
            raise AirflowException(f"evaluation job {name} still {desc['TrainingJobStatus']} after {timeout_s:.0f}s")
        time.sleep(poll_s)


def _describe(backend: str, job_name: str) -> dict:
    return _job_ops(backend)[1](job_name)


def collect_job(trained: dict, backend: str, model_type: str) -> JobRecord:
    """The `JobRecord` of the job the training sensor saw complete (its XCom is ``trained``).

    The local sensor returns the record itself, which is used as it is; the SageMaker sensor returns
    ``{"job_name", "status", "backend"}``, so the job is described once here.

    Raises:
        RuntimeError: the job did not complete.
    """
    from streamguard.jobs.record import job_record_from_describe

    if "artifact_uri" in trained:  # a whole JobRecord
        record = JobRecord.from_dict(dict(trained, model_type=trained.get("model_type") or model_type))
    else:
        record = job_record_from_describe(_describe(backend, trained["job_name"]), backend, model_type)
    if record.status != "Completed":
        raise RuntimeError(f"job {record.job_name} is {record.status}: {record.failure_reason or 'no reason given'}")
    return record


def model_package_mirror(backend: str):
    """The SageMaker Model Registry mirror of recorded versions (`ModelPackages`), or None off SageMaker."""
    if backend != "sagemaker":
        return None
    from streamguard.pipeline.model_packages import ModelPackages

    return ModelPackages()


def endpoint_configs(backend: str):
    """The SageMaker models/endpoint configs of an A/B plan (`EndpointConfigs`), or None off SageMaker."""
    if backend != "sagemaker":
        return None
    from streamguard.pipeline.endpoint_configs import EndpointConfigs

    return EndpointConfigs()
