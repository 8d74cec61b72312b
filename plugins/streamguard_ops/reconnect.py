"""SageMaker training operator and sensor that reconnect to their own job and resume after a failure.

The provider's `action_if_job_exists` offers "timestamp" (start a second, billable job under a new
name) or "fail" (fail the retry). StreamGuard's job names are deterministic per DAG run and config,
so an existing job of that name *is* this attempt's job: a retry adopts it while it runs or once
it completed. A job that ended Failed or Stopped cannot recover, so a retry (try >= 2) starts
``<name>-a<try>`` with the same request: its ``CheckpointConfig`` (per run and model) makes the
entry resume from the last epoch checkpoint SageMaker copied out of the failed job.

`ResumingSageMakerTrainingSensor` makes that automatic: a job that Failed fails the sensor's try with
the job's ``FailureReason``, and the sensor's retry starts the next attempt itself, so nobody has to
clear the train task. Both go through `streamguard_ops.backend.start_job`, which asks
`streamguard.lifecycle.next_action`; the sensor's pokes only watch. In ``reschedule`` mode with
``print_log`` the sensor tails CloudWatch itself (`streamguard.cloudwatch.LogTail`), with its
offsets kept between pokes.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTrainingSensor
from botocore.exceptions import ClientError

from streamguard_ops.backend import AUTOMATIC, MANUAL, job_failure, start_job

_NOT_FOUND = ("ValidationException", "ResourceNotFound")


def _validate(request: dict) -> None:
    """The bundle's offline check of a CreateTrainingJob request (botocore's service model plus the
    rules it leaves out), before the request reaches SageMaker; a bad request fails the task for good."""
    from airflow.sdk.exceptions import AirflowFailException

    from streamguard.sagemaker_jobs import validate_request

    try:
        validate_request(request)
    except ValueError as exc:
        raise AirflowFailException(f"not sending {request.get('TrainingJobName')!r} to SageMaker: {exc}") from exc


def _describe_or_none(hook, name: str) -> dict | None:
    try:
        return hook.describe_training_job(name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _NOT_FOUND:
            raise
        return None


class ReconnectingSageMakerTrainingOperator(SageMakerTrainingOperator):
    """Create the training job unless a job with the same (deterministic) name already exists.

    Returns (XCom): the provider's ``{"Training": <describe>}`` plus ``"job_name"``, the job
    actually used (``<name>-a<try>`` on a new attempt), as `LocalTrainingOperator` returns it.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("wait_for_completion", False)
        # Not waiting, the provider would still sleep `check_interval` (30 s) to tail the logs
        # once; the sensor downstream tails them instead.
        kwargs.setdefault("print_log", False)
        # Existence is checked here, before the provider would rename or fail.
        kwargs["check_if_job_exists"] = False
        super().__init__(**kwargs)

    def _describe_or_none(self, name: str) -> dict | None:
        return _describe_or_none(self.hook, name)

    def execute(self, context):
        from streamguard.lifecycle import RECONNECT

        created: list[str] = []

        def create(request: dict) -> None:
            self.config = request
            _validate(request)
            created.append(request["TrainingJobName"])

        action = start_job(self, context, self.config, self._describe_or_none, create, who=MANUAL)
        if action.kind == RECONNECT:
            self.log.info(
                "Training job %s already exists (status %s): reconnecting instead of starting a second job.",
                action.name, action.describe.get("TrainingJobStatus"),
            )
            return self.serialize_result(action.name)
        # The provider's execute sends self.config (renamed by `create` for a new attempt).
        return self._with_name(super().execute(context), action.name)

    def serialize_result(self, job_name: str) -> dict:
        # Also what the provider's deferred `execute_complete` returns, with the event's job name.
        return self._with_name(super().serialize_result(job_name), job_name)

    @staticmethod
    def _with_name(result, job_name: str):
        # The provider returns {"Training": describe}; the DAG reads "job_name" for the sensor.
        if isinstance(result, dict):
            return {**result, "job_name": job_name}
        return result


class ResumingSageMakerTrainingSensor(SageMakerTrainingSensor):
    """`SageMakerTrainingSensor` that watches a request's newest attempt and resumes a failed job.

    Args:
        config: the ``CreateTrainingJob`` request the train task sent (templated). Without it the
            sensor behaves as the provider's, except that a failure is final (its retry would only
            see the same failed job again).
        job_name: the job the train task used (templated); with ``config``, the newest attempt is watched.

    Returns (XCom): ``{"job_name", "status", "backend": "sagemaker"}`` of the attempt that completed.
    """

    template_fields: Sequence[str] = (*SageMakerTrainingSensor.template_fields, "config")

    def __init__(self, *, config: dict | None = None, job_name: str | None = None, **kwargs):
        if not job_name and config is None:
            raise ValueError(f"{kwargs.get('task_id')}: give job_name, config or both")
        super().__init__(job_name=job_name, **kwargs)
        self.config = config

    def execute(self, context):
        if self.config is not None:
            self.job_name = start_job(self, context, self.config, self._describe, self._create, who=AUTOMATIC).name
        super().execute(context)
        status = (self.last_description or {}).get("TrainingJobStatus", "Completed")
        return {"job_name": self.job_name, "status": status, "backend": "sagemaker"}

    def poke(self, context):
        # The provider's own tailing (`describe_training_job_with_log`) keeps its positions on the
        # sensor instance: in reschedule mode each poke is a new instance and re-reads every stream
        # from the start. Describe only, then tail with offsets kept between pokes.
        print_log, self.print_log = self.print_log, False
        try:
            response = self.get_sagemaker_response()
        finally:
            self.print_log = print_log
        if print_log:
            self._tail_logs(context)
        state = self.state_from_response(response)
        if state in self.non_terminal_states():
            self.log.info("training job %s: %s (%s)", self.job_name, state, response.get("SecondaryStatus"))
            return False
        if state in self.failed_states():
            raise job_failure(self, context, response, "SageMaker")
        return True

    def _tail_logs(self, context) -> None:
        """Print the job's CloudWatch events not printed by an earlier poke (of this or another try)."""
        from streamguard.cloudwatch import LogTail

        store = _offset_store(context)
        offsets = getattr(self, "_log_offsets", None)
        if offsets is None:
            offsets = store.load() if store is not None else {}
        tail = LogTail(self._logs_client(), self.job_name, offsets)
        try:
            events = tail.poll()
        except Exception as exc:  # noqa: BLE001 - logs are for people; the job's state decides the task
            self.log.warning("CloudWatch logs of %s unavailable: %s: %s", self.job_name, type(exc).__name__, exc)
            events = []
        for stream, message in events:
            self.log.info("[%s] %s", stream, message)
        self._log_offsets = tail.offsets
        if store is not None and events:
            store.save(tail.offsets)

    def _logs_client(self):
        return self.hook.logs_hook.get_conn()

    def _describe(self, name: str) -> dict | None:
        return _describe_or_none(self.hook, name)

    def _create(self, request: dict) -> None:
        _validate(request)
        try:
            self.hook.create_training_job(request, wait_for_completion=False, print_log=False)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ResourceInUse" or "already exists" in str(error.get("Message", "")):
                self.log.info("training job %s already exists (started by a concurrent retry): watching it",
                              request["TrainingJobName"])
                return
            raise


def _offset_store(context):
    """Where a sensor's CloudWatch offsets live between pokes: a small JSON file in the run's folder of
    the artifact store (XComs are cleared at each reschedule; the next poke may run on another worker).
    One file per task (not per try), so a retry that reconnects does not print old events again."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None or not getattr(ti, "dag_id", None) or not getattr(ti, "run_id", None):
        return None
    from streamguard.cloudwatch import OffsetFile
    from streamguard.pipeline.training import run_key, run_uri

    map_index = getattr(ti, "map_index", -1)
    name = ti.task_id + (f".{map_index}" if isinstance(map_index, int) and map_index >= 0 else "")
    return OffsetFile(run_uri(run_key(ti.dag_id, ti.run_id), "logs", f"{name}.cloudwatch-offsets.json"))
