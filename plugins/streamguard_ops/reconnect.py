"""SageMakerTrainingOperator that reconnects to its own job on retry instead of starting another.

The provider's `action_if_job_exists` offers "timestamp" (start a second, billable job under a new
name) or "fail" (fail the retry). StreamGuard's job names are deterministic per DAG run and config,
so an existing job of that name *is* this attempt's job: a retry adopts it while it runs or once
it completed. A job that ended Failed or Stopped cannot recover, so a retry (try >= 2) starts
``<name>-a<try>`` with the same request: its ``CheckpointConfig`` (per run and model) makes the
entry resume from the last epoch checkpoint SageMaker copied out of the failed job.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from botocore.exceptions import ClientError

from streamguard_ops.backend import choose_job, try_number_of


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
        try:
            return self.hook.describe_training_job(name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
            return None

    def execute(self, context):
        base = self.config["TrainingJobName"]
        name, existing, replaces = choose_job(base, try_number_of(context), self._describe_or_none)
        if existing is not None:
            self.log.info(
                "Training job %s already exists (status %s): reconnecting instead of starting a second job.",
                name, existing.get("TrainingJobStatus"),
            )
            return self.serialize_result(name)
        if replaces:
            self.log.info("Training job %s ended Failed or Stopped: starting %s, which resumes from its checkpoints.",
                          replaces, name)
        self.config["TrainingJobName"] = name
        return self._with_name(super().execute(context), name)

    def serialize_result(self, job_name: str) -> dict:
        # Also what the provider's deferred `execute_complete` returns, with the event's job name.
        return self._with_name(super().serialize_result(job_name), job_name)

    @staticmethod
    def _with_name(result, job_name: str):
        # The provider returns {"Training": describe}; the DAG reads "job_name" for the sensor.
        if isinstance(result, dict):
            return {**result, "job_name": job_name}
        return result
