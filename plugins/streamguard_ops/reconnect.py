"""SageMakerTrainingOperator that reconnects to its own job on retry instead of starting another.

The provider's `action_if_job_exists` offers "timestamp" (start a second, billable job under a new
name) or "fail" (fail the retry). StreamGuard's job names are deterministic per DAG run and config,
so an existing job of that name *is* this attempt's job: a retry adopts it, whatever its state,
and the sensor downstream decides success or failure.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from botocore.exceptions import ClientError


class ReconnectingSageMakerTrainingOperator(SageMakerTrainingOperator):
    """Create the training job unless a job with the same (deterministic) name already exists."""

    def __init__(self, **kwargs):
        kwargs.setdefault("wait_for_completion", False)
        # Not waiting, the provider would still sleep `check_interval` (30 s) to tail the logs
        # once; the sensor downstream tails them instead.
        kwargs.setdefault("print_log", False)
        # Existence is checked here, before the provider would rename or fail.
        kwargs["check_if_job_exists"] = False
        super().__init__(**kwargs)

    def execute(self, context):
        name = self.config["TrainingJobName"]
        try:
            existing = self.hook.describe_training_job(name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
            existing = None
        if existing is not None:
            self.log.info(
                "Training job %s already exists (status %s): reconnecting instead of starting a second job.",
                name, existing.get("TrainingJobStatus"),
            )
            return self.serialize_result(name)
        return super().execute(context)
