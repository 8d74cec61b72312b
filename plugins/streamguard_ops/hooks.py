"""`LocalTrainingHook`: the local backend's I/O and job-state constants, for operators and sensors."""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path

from airflow.sdk import BaseHook

from streamguard import settings
from streamguard.core.archive import write_text_atomic
from streamguard.jobs import ACTIVE_STATES, FAILED_STATES, TERMINAL_STATES, JobRecord, job_record_from_describe


class LocalTrainingHook(BaseHook):
    """Create, describe, stop and tail local training jobs.

    Args:
        jobs_dir: where job directories live; default ``$STREAMGUARD_LOCAL_JOBS_DIR``, else
            ``$STREAMGUARD_HOME/jobs``, ``$AIRFLOW_HOME/streamguard/jobs`` or ``~/.streamguard/jobs``.
    """

    non_terminal_states = set(ACTIVE_STATES)
    terminal_states = set(TERMINAL_STATES)
    failed_states = set(FAILED_STATES)

    def __init__(self, jobs_dir: str | os.PathLike | None = None):
        super().__init__()
        self.jobs_dir = Path(jobs_dir) if jobs_dir else settings.local_jobs_dir()

    @cached_property
    def backend(self):
        """One backend per hook, so the supervisors it starts are reaped when they exit."""
        from streamguard.backends.local import LocalTrainingBackend

        return LocalTrainingBackend(self.jobs_dir)

    def create_training_job(self, config: dict) -> dict:
        """Start the job, or find the existing job of that name (``Reconnected`` in the result)."""
        return self.backend.create_training_job(config)

    def describe_training_job(self, job_name: str) -> dict:
        return self.backend.describe_training_job(job_name)

    def describe_or_none(self, job_name: str) -> dict | None:
        """The job's describe, or None when no job of that name exists."""
        from streamguard.backends.local import JobNotFoundError

        try:
            return self.describe_training_job(job_name)
        except JobNotFoundError:
            return None

    def stop_training_job(self, job_name: str, wait_s: float = 0.0) -> dict:
        return self.backend.stop_training_job(job_name, wait_s=wait_s)

    def job_record(self, describe: dict, model_type: str | None = None) -> JobRecord:
        return job_record_from_describe(describe, "local", model_type)

    def log_path(self, job_name: str) -> Path:
        return self.backend.job_log_path(job_name)

    def read_new_log_lines(self, job_name: str, reader: str) -> list[str]:
        """Lines appended to the job's train.log since ``reader`` last asked.

        The offset lives in a small file in the job's log directory, so it survives a sensor in
        ``reschedule`` mode (a new operator instance per poke).
        """
        backend = self.backend
        key = hashlib.sha256(reader.encode()).hexdigest()[:16]
        offset_file = backend.paths(job_name).logs / f".offset-{key}"
        try:
            offset = int(offset_file.read_text())
        except (OSError, ValueError):
            offset = 0
        lines, new_offset = backend.read_log(job_name, offset)
        if new_offset != offset:
            write_text_atomic(offset_file, str(new_offset))
        return lines
