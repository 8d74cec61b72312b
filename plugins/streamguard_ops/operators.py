"""`LocalTrainingOperator`: run a ``CreateTrainingJob`` request with the local backend."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from streamguard_ops.backend import MANUAL, start_job
from streamguard_ops.hooks import LocalTrainingHook


class LocalTrainingOperator(BaseOperator):
    """Start a local training job from a SageMaker ``CreateTrainingJob`` dict (templated).

    A retry finds the job already created under its (deterministic) name and reconnects to it
    instead of starting a second process, unless that job ended Failed or Stopped: then the retry
    starts ``<name>-a<try_number>`` with the same request, which resumes from the checkpoints the
    failed job left at ``CheckpointConfig.S3Uri`` (the decision: `streamguard.lifecycle.next_action`).
    With ``wait_for_completion=False`` (the default) the task returns while training runs;
    `LocalTrainingSensor` waits for the end, given the job name from this task's XCom.

    Args:
        config: the request, as built by `streamguard.sagemaker_jobs.build_training_request`.
        wait_for_completion: poll until the job ends and fail if it did not complete.
        check_interval: seconds between polls when waiting.
        max_ingestion_time: give up waiting (and stop the job) after this many seconds.
        jobs_dir: override the local jobs directory.

    Returns (XCom):
        ``{"job_name", "status", "reconnected", "replaces", "log_path", "backend": "local"}``;
        ``job_name`` is the job actually used (``<name>-a<try>`` on a new attempt), ``replaces``
        the Failed/Stopped job it replaces or None.
    """

    template_fields: Sequence[str] = ("config",)
    ui_color = "#d6eaf8"

    def __init__(self, *, config: dict, wait_for_completion: bool = False, check_interval: float = 5.0,
                 max_ingestion_time: float | None = None, jobs_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.wait_for_completion = wait_for_completion
        self.check_interval = check_interval
        self.max_ingestion_time = max_ingestion_time
        self.jobs_dir = jobs_dir
        self._job_name: str | None = None

    @cached_property
    def hook(self) -> LocalTrainingHook:
        return LocalTrainingHook(self.jobs_dir)

    def execute(self, context) -> dict[str, Any]:
        if not isinstance(self.config, dict) or "TrainingJobName" not in self.config:
            raise AirflowFailException(
                f"{self.task_id}: config must be a CreateTrainingJob dict with TrainingJobName, "
                f"got {type(self.config).__name__}"
            )
        name = self.config["TrainingJobName"]
        created: dict = {}
        try:
            # A retry replaces a Failed/Stopped job with `<name>-a<n>`; anything else is reconnected.
            action = start_job(self, context, self.config, self.hook.describe_or_none,
                               lambda request: created.update(self.hook.create_training_job(request)), who=MANUAL)
            name, replaces = action.name, action.replaces
            if not created:  # reconnecting: the backend checks that the job has this request
                created = self.hook.create_training_job(
                    self.config if name == self.config["TrainingJobName"] else dict(self.config, TrainingJobName=name))
        except ValueError as exc:  # invalid request or a name clash: a retry cannot fix either
            raise AirflowFailException(f"local training job {name}: {exc}") from exc
        self._job_name = name
        log_path = self.hook.log_path(name)
        if replaces:
            self.log.info("Local training job %s ended Failed or Stopped: started %s, which resumes from its "
                          "checkpoints; log: %s", replaces, name, log_path)
        elif created["Reconnected"]:
            self.log.info("Local training job %s already exists (%s): reconnecting, not starting another.",
                          name, created["TrainingJobStatus"])
        else:
            self.log.info("Started local training job %s; log: %s", name, log_path)
        status = created["TrainingJobStatus"]
        if self.wait_for_completion:
            status = self._wait(name)["TrainingJobStatus"]
        return {"job_name": name, "status": status, "reconnected": created["Reconnected"], "replaces": replaces,
                "log_path": str(log_path), "backend": "local"}

    def _wait(self, name: str) -> dict:
        started = time.monotonic()
        while True:
            describe = self.hook.describe_training_job(name)
            state = describe["TrainingJobStatus"]
            if state in self.hook.failed_states:
                raise AirflowException(f"local training job {name} {state}: "
                                       f"{describe.get('FailureReason') or 'no reason given'}")
            if state not in self.hook.non_terminal_states:
                return describe
            if self.max_ingestion_time and time.monotonic() - started > self.max_ingestion_time:
                self.hook.stop_training_job(name, wait_s=30)
                raise AirflowException(f"local training job {name} still {state} after "
                                       f"{self.max_ingestion_time}s: stopped")
            time.sleep(self.check_interval)

    def on_kill(self) -> None:
        if self._job_name:
            self.log.info("Task killed: stopping local training job %s", self._job_name)
            self.hook.stop_training_job(self._job_name, wait_s=15)
