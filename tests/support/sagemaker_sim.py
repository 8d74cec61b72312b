"""A SageMaker training simulator for tests: moto's API, real training by the local backend.

moto marks every training job ``Completed`` at creation and writes nothing to S3, so a DAG that
evaluates and registers the model would have nothing to read. `SageMakerSimulator` patches the
moto server that runs in this process (``ThreadedMotoServer``, see `tests.support.moto_server`):

* ``CreateTrainingJob``: the raw request body, exactly as the client sent it over the wire, is
  recorded in ``requests``; a second job of an existing name is refused with ``ResourceInUse`` as
  SageMaker does (moto would silently replace it); otherwise the moto job is created, set
  ``InProgress``, and the same request is started by `streamguard.backends.local.LocalTrainingBackend`,
  which reads the ``s3://`` channels from moto and writes ``model.tar.gz`` / ``output.tar.gz`` to the
  request's ``S3OutputPath``.
* ``DescribeTrainingJob``: before moto answers, the moto job takes the local job's status,
  secondary status, failure reason, final metrics, artifact URI and times; the request's own
  ``MetricDefinitions`` are kept (moto replaces them with placeholders). The local job's log lines
  go to the CloudWatch stream ``/aws/sagemaker/TrainingJobs`` ``<job>/algo-1-<ts>``, where the
  provider's sensor reads them with ``print_log=True``.
* `fail_training(model_type, reason, times)` makes the next training jobs of that model type (not
  evaluate jobs; all of them, or the next ``times``) fail with ``reason`` after one ``InProgress``
  describe, without running anything.

Use as a context manager; leaving it stops every local job it started and restores moto.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from streamguard.backends.local import LocalTrainingBackend
from streamguard.jobs.request import decode_hyperparameter
from tests.support.moto_server import TRAINING_LOG_GROUP as LOG_GROUP

HOST = "algo-1"


def _naive_utc(value: str | None) -> datetime | None:
    """moto keeps naive UTC datetimes; the local backend writes ISO-8601 strings with an offset."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def hyperparameter(request: dict, name: str) -> Any:
    """The decoded value of one hyperparameter of a CreateTrainingJob request (None if absent)."""
    value = (request.get("HyperParameters") or {}).get(name)
    return None if value is None else decode_hyperparameter(value)


class _SimJob:
    """What the simulator knows about one job it accepted."""

    def __init__(self, request: dict, fail_reason: str | None):
        self.request = request
        self.fail_reason = fail_reason
        self.describes = 0
        self.statuses: list[str] = []  # TrainingJobStatus as each describe saw it
        self.log_offset = 0
        self.log_stream: str | None = None


class SageMakerSimulator:
    """Patch the in-process moto server so its training jobs really train (see module docstring).

    Args:
        jobs_dir: where the local backend keeps its job directories (the simulated ``/opt/ml``).
    """

    def __init__(self, jobs_dir: str | Path):
        self.backend = LocalTrainingBackend(jobs_dir)
        self.requests: list[dict] = []  # every CreateTrainingJob body received, in order
        self._jobs: dict[str, _SimJob] = {}
        self._failures: dict[str, tuple[str, int | None]] = {}
        self._lock = threading.RLock()
        self._originals: list[tuple[type, str, Any]] = []

    # ------------------------------------------------------------------------------------ control
    def fail_training(self, model_type: str, reason: str, times: int | None = None) -> None:
        """Training jobs (``mode`` != evaluate) of ``model_type`` created from now on fail with ``reason``:
        all of them, or the next ``times``."""
        with self._lock:
            self._failures[model_type] = (reason, times)

    def _take_failure(self, model_type: str) -> str | None:
        with self._lock:
            reason, times = self._failures.get(model_type, (None, None))
            if reason is not None and times is not None:
                if times <= 1:
                    del self._failures[model_type]
                else:
                    self._failures[model_type] = (reason, times - 1)
            return reason

    def reset(self) -> None:
        """Forget recorded requests and failure switches (the moto server keeps its jobs)."""
        self.stop_all()
        with self._lock:
            self.requests.clear()
            self._jobs.clear()
            self._failures.clear()

    def training_requests(self, mode: str | None = None) -> list[dict]:
        """Recorded requests whose ``mode`` hyperparameter is ``mode`` (None: training jobs, no ``mode``)."""
        with self._lock:
            return [copy.deepcopy(r) for r in self.requests if hyperparameter(r, "mode") == mode]

    def status_history(self, name: str) -> list[str]:
        """The ``TrainingJobStatus`` every ``DescribeTrainingJob`` of job ``name`` answered, in order."""
        with self._lock:
            job = self._jobs.get(name)
            return list(job.statuses) if job else []

    def stop_all(self) -> None:
        """Stop every local job still running (so a failed test leaves no training process behind)."""
        with self._lock:
            names = [name for name, job in self._jobs.items() if job.fail_reason is None]
        for name in names:
            try:
                self.backend.stop_training_job(name, wait_s=15)
            except LookupError:
                pass

    # ----------------------------------------------------------------------------------- patching
    def __enter__(self) -> SageMakerSimulator:
        from moto.sagemaker.models import SageMakerModelBackend
        from moto.sagemaker.responses import SageMakerResponse

        sim = self
        original_create = SageMakerResponse.create_training_job
        original_describe = SageMakerModelBackend.describe_training_job

        def create_training_job(response_self):
            return sim._create(response_self, original_create)

        def describe_training_job(backend_self, training_job_name):
            sim._sync(backend_self, training_job_name)
            return original_describe(backend_self, training_job_name)

        self._originals = [(SageMakerResponse, "create_training_job", original_create),
                           (SageMakerModelBackend, "describe_training_job", original_describe)]
        SageMakerResponse.create_training_job = create_training_job
        SageMakerModelBackend.describe_training_job = describe_training_job
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.stop_all()
        finally:
            for owner, name, original in self._originals:
                setattr(owner, name, original)
            self._originals = []

    # ------------------------------------------------------------------------------------- create
    def _create(self, response_self, original_create):
        from moto.sagemaker.exceptions import ResourceInUseException

        body = json.loads(response_self.body)
        name = body["TrainingJobName"]
        backend = response_self.sagemaker_backend
        with self._lock:
            self.requests.append(copy.deepcopy(body))
            if name in backend.training_jobs:
                raise ResourceInUseException(
                    f"Training job names must be unique within an AWS account and region, and a training "
                    f"job with this name already exists ({backend.training_jobs[name].arn})")
            result = original_create(response_self)
            job = backend.training_jobs[name]
            # moto swaps in placeholder metric definitions; SageMaker echoes the request's own.
            job.algorithm_specification = copy.deepcopy(body["AlgorithmSpecification"])
            job.training_job_status = "InProgress"
            job.secondary_status = "Starting"
            job.training_end_time = None
            job.final_metric_data_list = []
            fail_reason = None
            if hyperparameter(body, "mode") is None:
                fail_reason = self._take_failure(str(hyperparameter(body, "model-type")))
            sim_job = _SimJob(copy.deepcopy(body), fail_reason)
            self._jobs[name] = sim_job
            if fail_reason is None:
                try:
                    self.backend.create_training_job(copy.deepcopy(body))
                except Exception as exc:  # the request could not even start: SageMaker fails the job
                    sim_job.fail_reason = f"ClientError: {exc}"
        return result

    # ----------------------------------------------------------------------------------- describe
    def _sync(self, backend, name: str) -> None:
        with self._lock:
            sim_job = self._jobs.get(name)
            job = backend.training_jobs.get(name)
            if sim_job is None or job is None:
                return
            sim_job.describes += 1
            if sim_job.fail_reason is not None:
                if sim_job.describes > 1 and job.training_job_status == "InProgress":
                    self._finish(job, "Failed", sim_job.fail_reason)
            else:
                self._sync_local(backend, job, sim_job, name)
            sim_job.statuses.append(job.training_job_status)

    def _sync_local(self, backend, job, sim_job: _SimJob, name: str) -> None:
        """Copy the local job's state onto the moto job."""
        desc = self.backend.describe_training_job(name)
        job.training_job_status = desc["TrainingJobStatus"]
        job.secondary_status = desc.get("SecondaryStatus") or desc["TrainingJobStatus"]
        if desc.get("FailureReason"):
            job.failure_reason = desc["FailureReason"]
        job.final_metric_data_list = [
            {"MetricName": m["MetricName"], "Value": float(m["Value"]),
             "Timestamp": _naive_utc(m.get("Timestamp")) or _naive_utc(desc["LastModifiedTime"])}
            for m in desc.get("FinalMetricDataList") or []
        ]
        if desc.get("ModelArtifacts"):
            job.model_artifacts = dict(desc["ModelArtifacts"])
        for field, key in (("training_start_time", "TrainingStartTime"),
                           ("training_end_time", "TrainingEndTime"),
                           ("last_modified_time", "LastModifiedTime")):
            value = _naive_utc(desc.get(key))
            if value is not None:
                setattr(job, field, value)
        for key in ("TrainingTimeInSeconds", "BillableTimeInSeconds"):
            if desc.get(key) is not None:
                setattr(job, "training_time_in_seconds" if key.startswith("Training")
                        else "billable_time_in_seconds", int(desc[key]))
        self._forward_logs(backend, sim_job, name)

    @staticmethod
    def _finish(job, status: str, reason: str) -> None:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        job.training_job_status = status
        job.secondary_status = status
        job.failure_reason = reason
        job.training_end_time = now
        job.last_modified_time = now

    def _forward_logs(self, backend, sim_job: _SimJob, name: str) -> None:
        """Copy new lines of the local job's log into moto's CloudWatch Logs, as the container would."""
        from moto.logs.exceptions import ResourceAlreadyExistsException
        from moto.logs.models import logs_backends

        lines, sim_job.log_offset = self.backend.read_log(name, sim_job.log_offset)
        if not lines:
            return
        logs = logs_backends[backend.account_id][backend.region_name]
        if sim_job.log_stream is None:
            sim_job.log_stream = f"{name}/{HOST}-{int(time.time())}"
            try:
                logs.create_log_group(LOG_GROUP, {})
            except ResourceAlreadyExistsException:
                pass
            logs.create_log_stream(LOG_GROUP, sim_job.log_stream)
        now_ms = int(time.time() * 1000)
        logs.put_log_events(LOG_GROUP, sim_job.log_stream,
                            [{"timestamp": now_ms, "message": line} for line in lines])
