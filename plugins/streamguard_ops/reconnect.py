"""The SageMaker training operator that owns its job to the end, and a sensor that only watches.

The provider's `action_if_job_exists` offers "timestamp" (start a second, billable job under a new
name) or "fail" (fail the retry). StreamGuard's job names are deterministic per DAG run and config,
so an existing job of that name *is* this attempt's job: `ReconnectingSageMakerTrainingOperator`
adopts it while it runs or once it completed. A job that ended Failed or Stopped cannot recover,
so a retry (try >= 2) starts ``<name>-a<n>`` with the same request: its ``CheckpointConfig`` (per
run and model) makes the entry resume from the last epoch checkpoint SageMaker copied out of the
failed job (`streamguard_ops.attempts.start_job`, which asks `streamguard.lifecycle.next_action`).

In deferrable mode (``wait_for_completion=True, deferrable=True``, the DAGs' default) the
operator follows the job from the triggerer with the provider's own `SageMakerTrigger`, as the
provider's deferrable `SageMakerTrainingOperator` does, and decides from the job's describe when
it resumes: a failure a new attempt may fix fails the try retryably, so Airflow's retry of the
train task is the next attempt; a ``ClientError``, the entry's deterministic exit code or a
Stopped job fails it for good. A trigger that runs out of polls while the job still runs defers
again.

`ResumingSageMakerTrainingSensor` only watches the job it is given (never creates one). In
``reschedule`` mode with ``print_log`` it tails CloudWatch itself (`streamguard.cloudwatch.LogTail`),
with its offsets kept between pokes.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTrainingSensor
from botocore.exceptions import ClientError

from streamguard_ops.attempts import attempt_failure, start_job, watch_failure

_NOT_FOUND = ("ValidationException", "ResourceNotFound")


def _validate(request: dict) -> None:
    """The bundle's offline check of a CreateTrainingJob request (botocore's service model plus the
    rules it leaves out), before the request reaches SageMaker; a bad request fails the task for good."""
    from airflow.sdk.exceptions import AirflowFailException

    from streamguard.jobs.request import validate_request

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
    """Create the training job unless a job with the same (deterministic) name already exists; own it.

    Args: the provider's. Defaults differ: ``wait_for_completion=False`` and ``print_log=False``
        (the sensor downstream tails the logs). ``check_if_job_exists`` is always False: existence
        is checked here, before the provider would rename or fail. With ``deferrable`` and
        ``wait_for_completion``, the trigger polls every ``check_interval`` seconds for as long as
        the request's ``StoppingCondition`` lets the job run, then defers again while it still runs.

    Returns (XCom): the provider's ``{"Training": <describe>}`` plus ``"job_name"``, the job
    actually used (``<name>-a<n>`` on a new attempt), as `LocalTrainingOperator` returns it.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("wait_for_completion", False)
        kwargs.setdefault("print_log", False)
        kwargs["check_if_job_exists"] = False
        super().__init__(**kwargs)

    def _describe_or_none(self, name: str) -> dict | None:
        return _describe_or_none(self.hook, name)

    def execute(self, context):
        from streamguard.lifecycle import RECONNECT

        def create(request: dict) -> None:
            self.config = request
            _validate(request)

        action = start_job(self, context, self.config, self._describe_or_none, create)
        if action.kind == RECONNECT:
            self.log.info(
                "Training job %s already exists (status %s): reconnecting instead of starting a second job.",
                action.name, action.describe.get("TrainingJobStatus"),
            )
            describe = action.describe
        else:
            # The provider's execute sends self.config (renamed by `create` for a new attempt) and
            # returns at once; waiting (deferred or polling) is done below, with one decision.
            wait, deferrable = self.wait_for_completion, self.deferrable
            self.wait_for_completion = self.deferrable = False
            try:
                super().execute(context)
            finally:
                self.wait_for_completion, self.deferrable = wait, deferrable
            describe = self._describe_or_none(action.name) or {"TrainingJobStatus": "InProgress"}
        if not self.wait_for_completion:
            return self.serialize_result(action.name)
        return self._follow(context, action.name, describe)

    def _follow(self, context, name: str, describe: dict):
        status = describe.get("TrainingJobStatus")
        if status in ("InProgress", "Stopping"):
            if self.deferrable:
                self._defer(name)
            self._poll(name)
            describe = self._describe_or_none(name) or {}
        error = attempt_failure(self, context, dict(describe, TrainingJobName=name), "SageMaker")
        if error is not None:
            raise error
        self.log.info("SageMaker training job %s completed.", name)
        return self.serialize_result(name)

    def _poll(self, name: str) -> None:
        import time

        while (self._describe_or_none(name) or {}).get("TrainingJobStatus") in ("InProgress", "Stopping"):
            time.sleep(self.check_interval)

    def _defer(self, name: str):
        from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

        stopping = self.config.get("StoppingCondition") or {}
        longest = stopping.get("MaxWaitTimeInSeconds") or stopping.get("MaxRuntimeInSeconds") or 86400
        polls = int(longest // max(1, int(self.check_interval))) + 10
        self.log.info("Following SageMaker training job %s from the triggerer (every %ss, up to %s polls)",
                      name, self.check_interval, polls)
        self.defer(
            trigger=SageMakerTrigger(job_name=name, job_type="Training", waiter_delay=int(self.check_interval),
                                     waiter_max_attempts=polls, aws_conn_id=self.aws_conn_id,
                                     region_name=self.region_name, verify=self.verify,
                                     botocore_config=self.botocore_config),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.max_ingestion_time) if self.max_ingestion_time else None,
        )

    def execute_complete(self, context, event=None):
        """Resumed by `SageMakerTrigger`: describe the job again and decide from its state (not the event's
        wording): done, a retryable failure (Airflow's retry starts the next attempt), or final."""
        from airflow.sdk.exceptions import AirflowException

        name = (event or {}).get("job_name")
        if not name:
            raise AirflowException(f"{self.task_id}: resumed without a job name (event {event!r})")
        describe = self._describe_or_none(name)
        if describe is None:
            raise AirflowException(f"SageMaker training job {name} not found after the trigger fired ({event!r})")
        if describe.get("TrainingJobStatus") in ("InProgress", "Stopping"):  # the trigger ran out of polls
            self.log.info("SageMaker training job %s still %s: following it again", name,
                          describe.get("TrainingJobStatus"))
            self._defer(name)
        return self._follow(context, name, describe)

    def serialize_result(self, job_name: str) -> dict:
        return self._with_name(super().serialize_result(job_name), job_name)

    @staticmethod
    def _with_name(result, job_name: str):
        # The provider returns {"Training": describe}; the DAG reads "job_name" for the sensor.
        if isinstance(result, dict):
            return {**result, "job_name": job_name}
        return result


class ResumingSageMakerTrainingSensor(SageMakerTrainingSensor):
    """`SageMakerTrainingSensor` that watches one attempt, tails its logs incrementally and reports it.

    Watches only: the job the train task reported (``job_name``, templated). A job that ended
    Failed or Stopped fails the sensor for good with its ``FailureReason``, saying who can start
    the next attempt (the train task: by itself in deferrable mode, else when a person clears it).

    Returns (XCom): ``{"job_name", "status", "backend": "sagemaker"}`` of the attempt that completed.
    """

    def __init__(self, *, job_name: str, **kwargs):
        if not job_name:
            raise ValueError(f"{kwargs.get('task_id')}: job_name is needed (the job the train task reported)")
        super().__init__(job_name=job_name, **kwargs)

    def execute(self, context):
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
            raise watch_failure(dict(response, TrainingJobName=self.job_name), "SageMaker")
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
