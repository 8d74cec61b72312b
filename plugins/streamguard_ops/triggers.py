"""`LocalTrainingTrigger`: the triggerer's side of a deferred `LocalTrainingOperator`.

The train operator defers while its local training job runs; this trigger reads the job's status
record every ``poll_interval`` seconds (in a thread, so the triggerer's event loop never blocks on
the file system) and fires once the job is no longer ``InProgress``/``Stopping``, or when no such
job exists. The event only says that: the operator's ``execute_complete`` describes the job again
and decides (`streamguard.lifecycle.watch_outcome`), as the provider's `SageMakerTrigger` leaves
the decision to `SageMakerTrainingOperator`. A triggerer that dies and is replaced runs the trigger
again from its serialized arguments: it follows the same job, and starts nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

CLASSPATH = "streamguard_ops.triggers.LocalTrainingTrigger"


class LocalTrainingTrigger(BaseTrigger):
    """Fire when the local training job ``job_name`` under ``jobs_dir`` has ended.

    Args:
        job_name: the attempt to follow.
        jobs_dir: the local backend's jobs directory, resolved by the operator (the triggerer may
            run with another environment).
        poll_interval: seconds between reads of the status record (> 0).
        result: what the operator had found before deferring (JSON-serializable), handed back in
            the event, so the resumed task returns it whatever the executor does with its kwargs.

    Event payload: ``{"job_name", "status", "result"}``; ``status`` is the job's
    ``TrainingJobStatus``, or ``"missing"`` when no job of that name exists.
    """

    def __init__(self, job_name: str, jobs_dir: str, poll_interval: float = 5.0, result: dict | None = None):
        super().__init__()
        if not job_name or not jobs_dir:
            raise ValueError(f"LocalTrainingTrigger: job_name {job_name!r} and jobs_dir {jobs_dir!r} are both needed")
        if not poll_interval > 0:
            raise ValueError(f"LocalTrainingTrigger: poll_interval {poll_interval!r} must be > 0 seconds")
        self.job_name = job_name
        self.jobs_dir = jobs_dir
        self.poll_interval = float(poll_interval)
        self.result = dict(result or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"job_name": self.job_name, "jobs_dir": self.jobs_dir, "poll_interval": self.poll_interval,
                          "result": self.result}

    def _status(self, backend) -> str:
        from streamguard.backends.local import JobNotFoundError

        try:
            return backend.describe_training_job(self.job_name)["TrainingJobStatus"]
        except JobNotFoundError:
            return "missing"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from streamguard.backends.local import LocalTrainingBackend
        from streamguard.jobs import ACTIVE_STATES

        backend = LocalTrainingBackend(self.jobs_dir)
        last = None
        while True:
            status = await asyncio.to_thread(self._status, backend)
            if status != last:
                self.log.info("local training job %s: %s", self.job_name, status)
                last = status
            if status not in ACTIVE_STATES:
                yield TriggerEvent({"job_name": self.job_name, "status": status, "result": self.result})
                return
            await asyncio.sleep(self.poll_interval)
