"""`LocalTrainingOperator`: run a ``CreateTrainingJob`` request with the local backend."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from streamguard_ops.attempts import attempt_failure, start_job
from streamguard_ops.hooks import LocalTrainingHook


class LocalTrainingOperator(BaseOperator):
    """Start a local training job from a SageMaker ``CreateTrainingJob`` dict (templated), and own it.

    The one task that starts the request's jobs (`streamguard_ops.attempts.start_job`, which asks
    `streamguard.lifecycle.next_action`). A job already created under its (deterministic) name is
    reconnected to, not started twice. On a retry (try >= 2) a job that ended Failed is replaced by
    ``<name>-a<n>`` with the same request, which resumes from the checkpoints the failed job left at
    ``CheckpointConfig.S3Uri``, when a new attempt may fix the failure; a failure that would recur,
    or a job stopped on purpose, is replaced only on the first try after a person cleared the task.

    With ``deferrable=True`` (the DAGs' default) the task follows its job to the end in the
    triggerer (`streamguard_ops.triggers.LocalTrainingTrigger`): a job that fails in a way a new
    attempt may fix fails this try retryably, and Airflow's retry of this task is the next
    attempt; any other failure fails the task for good. With ``wait_for_completion=True`` and
    ``deferrable=False`` it polls in its worker slot instead, with the same outcomes. With neither,
    the task returns while training runs and `LocalTrainingSensor` watches the job; a failure the
    sensor reports is then retried only by clearing this task.

    Args:
        config: the request, as built by `streamguard.jobs.request.build_training_request`.
        wait_for_completion: follow the job until it ends and fail if it did not complete.
        deferrable: follow it from the triggerer (needs ``wait_for_completion``).
        check_interval: seconds between polls (> 0).
        max_ingestion_time: give up waiting after this many seconds (deferred: the try times out,
            and its retry reconnects; polling: the job is stopped).
        jobs_dir: override the local jobs directory.

    Returns (XCom):
        ``{"job_name", "status", "reconnected", "replaces", "log_path", "backend": "local"}``;
        ``job_name`` is the job actually used (``<name>-a<n>`` on a new attempt), ``replaces``
        the Failed/Stopped job it replaces or None.
    """

    template_fields: Sequence[str] = ("config",)
    ui_color = "#d6eaf8"

    def __init__(self, *, config: dict, wait_for_completion: bool = False, deferrable: bool = False,
                 check_interval: float = 5.0, max_ingestion_time: float | None = None, jobs_dir: str | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if deferrable and not wait_for_completion:
            raise ValueError(f"{kwargs.get('task_id')}: deferrable=True needs wait_for_completion=True")
        if not check_interval > 0:
            raise ValueError(f"{kwargs.get('task_id')}: check_interval {check_interval!r} must be > 0 seconds")
        self.config = config
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
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
                               lambda request: created.update(self.hook.create_training_job(request)))
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
        result = {"job_name": name, "status": created["TrainingJobStatus"], "reconnected": created["Reconnected"],
                  "replaces": replaces, "log_path": str(log_path), "backend": "local"}
        if not self.wait_for_completion:
            return result
        return self._follow(context, result)

    def _follow(self, context, result: dict) -> dict:
        """Wait for the job (deferred or polling), then succeed, fail retryably or fail for good."""
        name = result["job_name"]
        describe = self.hook.describe_training_job(name)
        if describe["TrainingJobStatus"] in self.hook.non_terminal_states:
            if self.deferrable:
                self._defer(result)
            describe = self._poll(name)
        return self._finish(context, result, describe)

    def _defer(self, result: dict):
        from streamguard_ops.triggers import LocalTrainingTrigger

        timeout = timedelta(seconds=self.max_ingestion_time) if self.max_ingestion_time else None
        self.log.info("Following local training job %s from the triggerer (every %ss)", result["job_name"],
                      self.check_interval)
        trigger = LocalTrainingTrigger(result["job_name"], str(self.hook.jobs_dir), self.check_interval, result=result)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

    def execute_complete(self, context, event: dict | None = None) -> dict[str, Any]:
        """Resumed by the trigger's event: describe the job again and decide from its state."""
        from streamguard.backends.local import JobNotFoundError

        name = (event or {}).get("job_name")
        if not name:
            raise AirflowException(f"{self.task_id}: resumed without a job name (event {event!r})")
        self._job_name = name
        result = dict((event or {}).get("result") or {}, job_name=name)
        result.setdefault("log_path", str(self.hook.log_path(name)))
        result.setdefault("backend", "local")
        try:
            describe = self.hook.describe_training_job(name)
        except JobNotFoundError as exc:
            raise AirflowException(f"local training job {name} vanished while deferred: {exc}") from exc
        if describe["TrainingJobStatus"] in self.hook.non_terminal_states:  # cannot happen unless the record changed
            self._defer(result)
        return self._finish(context, result, describe)

    def _finish(self, context, result: dict, describe: dict) -> dict:
        error = attempt_failure(self, context, describe, "local")
        if error is not None:
            raise error
        self.log.info("Local training job %s %s", result["job_name"], describe["TrainingJobStatus"])
        return dict(result, status=describe["TrainingJobStatus"])

    def _poll(self, name: str) -> dict:
        started = time.monotonic()
        while True:
            describe = self.hook.describe_training_job(name)
            state = describe["TrainingJobStatus"]
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
