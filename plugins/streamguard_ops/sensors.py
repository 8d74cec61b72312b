"""`LocalTrainingSensor`: wait for a local training job, streaming its log into the task log."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowTaskTimeout

from streamguard_ops.attempts import watch_failure
from streamguard_ops.hooks import LocalTrainingHook


class LocalTrainingSensor(BaseSensorOperator):
    """Poke a local training job until it ends; push its `JobRecord` dict on success. Watches only.

    The sensor never creates or restarts a job: it watches the attempt the train task reported
    (``job_name``, templated from the train task's XCom) and streams its log into the task log. A
    job that ended Failed or Stopped fails the sensor for good with the job's ``FailureReason``: a
    retry of the sensor would see the same ended job, and only the train task starts attempts (by
    itself in deferrable mode; otherwise a person clears it). A sensor that is retried after its
    worker died follows the same job. A sensor that times out or is killed stops the job.

    Args:
        job_name: the job to watch (templated).
        model_type: recorded in the pushed `JobRecord`.
        print_log: stream the job's log into the task log.
        jobs_dir: override the local jobs directory.

    Returns (XCom): the finished job's `JobRecord` dict (its ``job_name`` is the attempt that completed).
    """

    template_fields: Sequence[str] = ("job_name",)
    ui_color = "#d6eaf8"

    def __init__(self, *, job_name: str, model_type: str | None = None, print_log: bool = True,
                 jobs_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if not job_name:
            raise ValueError(f"{kwargs.get('task_id')}: job_name is needed (the job the train task reported)")
        self.job_name = job_name
        self.model_type = model_type
        self.print_log = print_log
        self.jobs_dir = jobs_dir

    @cached_property
    def hook(self) -> LocalTrainingHook:
        return LocalTrainingHook(self.jobs_dir)

    def poke(self, context) -> bool | PokeReturnValue:
        from streamguard.backends.local import JobNotFoundError

        try:
            describe = self.hook.describe_training_job(self.job_name)
        except JobNotFoundError as exc:
            raise AirflowException(str(exc)) from exc
        if self.print_log:
            for line in self.hook.read_new_log_lines(self.job_name, _reader_key(context, self)):
                self.log.info("[%s] %s", self.job_name, line)
        state = describe["TrainingJobStatus"]
        if state in self.hook.non_terminal_states:
            self.log.info("%s: %s (%s)", self.job_name, state, describe.get("SecondaryStatus"))
            return False
        if state in self.hook.failed_states:
            raise watch_failure(describe, "local")
        record = self.hook.job_record(describe, self.model_type)
        self.log.info("%s completed: artifact %s, metrics %s", self.job_name, record.artifact_uri, record.metrics)
        return PokeReturnValue(is_done=True, xcom_value=record.to_dict())

    def execute(self, context):
        try:
            return super().execute(context)
        except (AirflowSensorTimeout, AirflowTaskTimeout):
            self._stop("sensor timed out")
            raise

    def on_kill(self) -> None:
        self._stop("task killed")

    def _stop(self, why: str) -> None:
        self.log.warning("%s: stopping local training job %s", why, self.job_name)
        try:
            self.hook.stop_training_job(self.job_name, wait_s=15)
        except Exception as exc:  # noqa: BLE001 - stopping is best effort while the task is ending
            self.log.warning("could not stop %s: %s", self.job_name, exc)


def _reader_key(context, sensor) -> str:
    """One log offset per task try, so a reschedule continues where the last poke stopped."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return f"instance-{id(sensor)}"
    parts = (ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1), getattr(ti, "try_number", 0))
    return ".".join(str(p) for p in parts)
