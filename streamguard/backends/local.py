"""Local training backend: runs a ``CreateTrainingJob`` request on this machine, SageMaker-style.

Each job gets a directory ``<root>/<job name>/`` that plays the part of ``/opt/ml``::

    request.json          the CreateTrainingJob request, as given
    status.json           the DescribeTrainingJob-shaped status record (written atomically)
    metrics.jsonl         the metric time series (one row per parsed value)
    stop_requested        marker written by `stop_training_job`
    input/data/<channel>  input/config/*.json  code/  model/  output/data/  output/failure
    checkpoints/          logs/train.log (the entry's output)  logs/supervisor.log

`create_training_job` starts a detached supervisor process (`streamguard.backends.supervisor`)
and returns at once, so an Airflow task can finish while training runs; a sensor then polls
`describe_training_job`. Creating a job whose name exists returns that job instead of starting
another process (task retries reconnect), unless the request differs, which is an error.

While a job runs only its supervisor writes ``status.json``; this module writes it before the
supervisor starts and after it is found dead, so two writers never race.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from streamguard.core import archive
from streamguard.jobs.names import check_job_name
from streamguard.jobs.record import ACTIVE_STATES, TERMINAL_STATES

SUPERVISOR_MODULE = "streamguard.backends.supervisor"
ARN_PREFIX = "arn:aws:sagemaker:local:000000000000:training-job/"
# A job whose supervisor has not recorded its pid after this long is considered never started.
START_GRACE_S = 60.0


class JobNotFoundError(LookupError):
    """No local training job of that name."""


class JobConflictError(ValueError):
    """A job of that name exists with a different request (names must identify one request)."""


# ------------------------------------------------------------------------------------ small helpers
def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def write_json_atomic(path: Path, data: Any) -> None:
    """A job file (request, status, input config) as JSON, written atomically."""
    archive.write_json_atomic(path, data, indent=1, sort_keys=True, default=str)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def canonical(request: dict) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)


def pid_alive(pid: int | None, must_contain: tuple[str, ...] = ()) -> bool:
    """True if ``pid`` runs (not a zombie) and, where /proc exists, its command line has every ``must_contain``.

    The command-line check guards against a recycled pid belonging to another program.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if "State:\tZ" in (proc / "status").read_text():
                return False
            if must_contain:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return all(text in cmdline for text in must_contain)
        except OSError:
            return False
    return True


def kill_group(pid: int | None, sig: int = signal.SIGTERM) -> bool:
    """Signal the process group led by ``pid`` (children started with ``start_new_session``)."""
    if not pid:
        return False
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class JobPaths:
    """Paths inside one job directory (the local ``/opt/ml``)."""

    def __init__(self, job_dir: Path):
        self.root = Path(job_dir)
        self.request = self.root / "request.json"
        self.status = self.root / "status.json"
        self.metrics = self.root / "metrics.jsonl"
        self.stop_marker = self.root / "stop_requested"
        self.input_data = self.root / "input" / "data"
        self.input_config = self.root / "input" / "config"
        self.code = self.root / "code"
        self.model = self.root / "model"
        self.output = self.root / "output"
        self.output_data = self.root / "output" / "data"
        self.failure = self.root / "output" / "failure"
        self.checkpoints = self.root / "checkpoints"
        self.logs = self.root / "logs"
        self.train_log = self.root / "logs" / "train.log"
        self.supervisor_log = self.root / "logs" / "supervisor.log"


def initial_status(request: dict, job_dir: Path) -> dict:
    """The status record of a job that is created but whose supervisor has not started yet."""
    now = utcnow_iso()
    name = request["TrainingJobName"]
    return {
        "TrainingJobName": name,
        "TrainingJobArn": ARN_PREFIX + name,
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Starting",
        "SecondaryStatusTransitions": [{"Status": "Starting", "StartTime": now,
                                        "StatusMessage": "Preparing the local job directory"}],
        "CreationTime": now,
        "LastModifiedTime": now,
        "TrainingStartTime": None,
        "TrainingEndTime": None,
        "TrainingTimeInSeconds": None,
        "FinalMetricDataList": [],
        "ModelArtifacts": None,
        "FailureReason": None,
        "HyperParameters": request.get("HyperParameters", {}),
        "AlgorithmSpecification": request.get("AlgorithmSpecification", {}),
        "InputDataConfig": request.get("InputDataConfig", []),
        "OutputDataConfig": request.get("OutputDataConfig", {}),
        "ResourceConfig": request.get("ResourceConfig", {}),
        "StoppingCondition": request.get("StoppingCondition", {}),
        "CheckpointConfig": request.get("CheckpointConfig"),
        "EnableManagedSpotTraining": request.get("EnableManagedSpotTraining", False),
        "Pid": None,
        "ChildPid": None,
        "LocalJobDir": str(job_dir),
        "LogPath": str(JobPaths(job_dir).train_log),
    }


def set_status(status: dict, state: str, secondary: str, message: str, *, reason: str | None = None) -> dict:
    """Move ``status`` to a new (primary, secondary) state, recording the transition."""
    now = utcnow_iso()
    transitions = status.setdefault("SecondaryStatusTransitions", [])
    if transitions and not transitions[-1].get("EndTime"):
        transitions[-1]["EndTime"] = now
    transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
    status["TrainingJobStatus"] = state
    status["SecondaryStatus"] = secondary
    status["LastModifiedTime"] = now
    if reason is not None:
        # The API caps FailureReason at 1024 characters; keep the end, where the error usually is.
        status["FailureReason"] = reason if len(reason) <= 1024 else "..." + reason[-1021:]
    if state in TERMINAL_STATES:
        transitions[-1]["EndTime"] = now
        status["TrainingEndTime"] = now
        start = parse_iso(status.get("TrainingStartTime")) or parse_iso(status.get("CreationTime"))
        if start:
            seconds = max(0, round((parse_iso(now) - start).total_seconds()))
            status["TrainingTimeInSeconds"] = seconds
            status["BillableTimeInSeconds"] = seconds
    return status


# ------------------------------------------------------------------------------------------ backend
class LocalTrainingBackend:
    """Create, describe, stop and list local training jobs under ``root_dir``."""

    def __init__(self, root_dir: str | os.PathLike):
        self.root = Path(root_dir).expanduser().absolute()
        self._procs: dict[str, subprocess.Popen] = {}

    # -------------------------------------------------------------------------------------- paths
    def job_dir(self, name: str) -> Path:
        check_job_name(name)  # also keeps names from escaping root
        return self.root / name

    def paths(self, name: str) -> JobPaths:
        return JobPaths(self.job_dir(name))

    def job_log_path(self, name: str) -> Path:
        return self.paths(name).train_log

    def exists(self, name: str) -> bool:
        return self.paths(name).request.is_file()

    # ------------------------------------------------------------------------------------- create
    def create_training_job(self, request: dict) -> dict:
        """Start the job (or find the existing one of that name); returns ARN, status and whether
        an existing job was reused (``Reconnected``).

        Raises:
            ValueError: the request is not a valid CreateTrainingJob request.
            JobConflictError: a job of that name exists with a different request.
        """
        from streamguard.jobs.request import validate_request

        validate_request(request)
        name = request["TrainingJobName"]
        hps = request.get("HyperParameters", {})
        for key in ("sagemaker_program", "sagemaker_submit_directory"):
            if key not in hps:
                raise ValueError(f"request {name}: HyperParameters lacks script-mode key {key!r}")
        job_dir = self.job_dir(name)
        existing = self._reconnect(name, request)
        if existing is not None:
            return existing

        # Exclusive creation: prepare a staging dir, then rename it into place; the rename fails
        # if another caller created the job first (then we reconnect to theirs).
        try:
            with archive.atomic_directory(job_dir) as staging:
                paths = JobPaths(staging)
                paths.logs.mkdir(parents=True)
                write_json_atomic(paths.request, request)
                write_json_atomic(paths.status, initial_status(request, job_dir))
        except OSError:
            existing = self._reconnect(name, request)
            if existing is not None:
                return existing
            raise
        self._spawn(name)
        return {"TrainingJobArn": ARN_PREFIX + name, "TrainingJobName": name,
                "TrainingJobStatus": "InProgress", "Reconnected": False}

    def _reconnect(self, name: str, request: dict) -> dict | None:
        paths = self.paths(name)
        if not paths.root.exists():
            return None
        if not paths.request.is_file():
            raise JobConflictError(f"{paths.root} exists but holds no request.json: not a local job directory")
        if canonical(read_json(paths.request)) != canonical(request):
            raise JobConflictError(
                f"local job {name} already exists with a different request ({paths.request}); "
                "job names are derived from run and config, so this means the request was changed "
                "after the job started: use a new name or delete the old job directory"
            )
        status = self.describe_training_job(name)
        return {"TrainingJobArn": ARN_PREFIX + name, "TrainingJobName": name,
                "TrainingJobStatus": status["TrainingJobStatus"], "Reconnected": True}

    def _spawn(self, name: str) -> None:
        paths = self.paths(name)
        log = open(paths.supervisor_log, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, str(paths.root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # own session: survives the task process, not killed with it
                cwd=str(paths.root), env=_supervisor_env(),
            )
        except OSError as exc:
            status = read_json(paths.status)
            write_json_atomic(paths.status, set_status(status, "Failed", "Failed", "Could not start",
                                                       reason=f"could not start the supervisor: {exc}"))
            raise
        finally:
            log.close()
        self._procs[name] = proc

    # ----------------------------------------------------------------------------------- describe
    def describe_training_job(self, name: str) -> dict:
        """The DescribeTrainingJob-shaped status record (see the module docstring).

        A job whose supervisor died while the status says it is active is marked Failed here.

        Raises:
            JobNotFoundError: no job of that name.
        """
        paths = self.paths(name)
        if not paths.status.is_file():
            raise JobNotFoundError(f"no local training job {name!r} under {self.root}")
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:  # reap our own child, so it is no zombie
            self._procs.pop(name, None)
        status = read_json(paths.status)
        if status["TrainingJobStatus"] in ACTIVE_STATES:
            status = self._check_alive(paths, status)
        if status["TrainingJobStatus"] == "InProgress" and paths.stop_marker.exists():
            status = dict(status, TrainingJobStatus="Stopping", SecondaryStatus="Stopping")
        return status

    def _check_alive(self, paths: JobPaths, status: dict) -> dict:
        pid = status.get("Pid")
        if pid:
            if pid_alive(pid, must_contain=_supervisor_marks(paths)):
                return status
            # Re-read: the supervisor may have finished between our read and the liveness check.
            status = read_json(paths.status)
            if status["TrainingJobStatus"] not in ACTIVE_STATES:
                return status
            kill_group(status.get("ChildPid"), signal.SIGKILL)  # an orphaned training process
            stopped = paths.stop_marker.exists()
            set_status(status, "Stopped" if stopped else "Failed", "Stopped" if stopped else "Failed",
                       "supervisor process died",
                       reason=None if stopped else f"InternalServerError: supervisor process died (pid {pid}); "
                                                   f"see {paths.supervisor_log}")
            if not stopped:
                status["FailureKind"] = "transient"  # the host, not the request: another attempt may succeed
            write_json_atomic(paths.status, status)
            return status
        created = parse_iso(status.get("CreationTime"))
        if created and (datetime.now(timezone.utc) - created).total_seconds() > START_GRACE_S:
            set_status(status, "Failed", "Failed", "supervisor never started",
                       reason=f"InternalServerError: supervisor never started within {START_GRACE_S:.0f}s; "
                              f"see {paths.supervisor_log}")
            status["FailureKind"] = "transient"
            write_json_atomic(paths.status, status)
        return status

    # --------------------------------------------------------------------------------------- stop
    def stop_training_job(self, name: str, wait_s: float = 0.0) -> dict:
        """Ask the job to stop (SIGTERM to its supervisor, which stops training and records Stopped).

        Args:
            wait_s: wait up to this long for a terminal state.

        Returns:
            the status record after the request (and the wait).
        """
        paths = self.paths(name)
        status = self.describe_training_job(name)
        if status["TrainingJobStatus"] in TERMINAL_STATES:
            return status
        paths.stop_marker.write_text(utcnow_iso())
        pid = status.get("Pid")
        if pid and pid_alive(pid, must_contain=_supervisor_marks(paths)):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while True:
            status = self.describe_training_job(name)
            if status["TrainingJobStatus"] in TERMINAL_STATES or time.monotonic() >= deadline:
                return status
            time.sleep(0.1)

    def wait(self, name: str, timeout_s: float, poll_s: float = 0.2) -> dict:
        """Poll until the job is terminal; returns the status (raises TimeoutError after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.describe_training_job(name)
            if status["TrainingJobStatus"] in TERMINAL_STATES:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"local job {name} still {status['TrainingJobStatus']} after {timeout_s}s")
            time.sleep(poll_s)

    # --------------------------------------------------------------------------------------- list
    def list_training_jobs(self) -> list[dict]:
        """Summaries of every job (newest first), shaped like ListTrainingJobs' summaries."""
        if not self.root.is_dir():
            return []
        out = []
        for job_dir in self.root.iterdir():
            if job_dir.name.startswith(".") or not (job_dir / "status.json").is_file():
                continue
            try:
                status = self.describe_training_job(job_dir.name)
            except (ValueError, OSError):  # a half-written or foreign directory
                continue
            out.append({k: status.get(k) for k in (
                "TrainingJobName", "TrainingJobArn", "TrainingJobStatus", "SecondaryStatus",
                "CreationTime", "TrainingEndTime", "LastModifiedTime")})
        out.sort(key=lambda s: s.get("CreationTime") or "", reverse=True)
        return out

    # ------------------------------------------------------------------------------------ metrics
    def metric_series(self, name: str) -> list[dict]:
        """Every parsed metric value so far: rows ``{"MetricName", "Value", "Timestamp"}``."""
        path = self.paths(name).metrics
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
        return rows

    def read_log(self, name: str, offset: int = 0) -> tuple[list[str], int]:
        """Complete lines of the job's train.log from byte ``offset``; returns (lines, new offset)."""
        path = self.job_log_path(name)
        if not path.is_file():
            return [], offset
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return [], offset
        chunk = data[: end + 1]
        return chunk.decode("utf-8", errors="replace").splitlines(), offset + len(chunk)


def _supervisor_marks(paths: JobPaths) -> tuple[str, ...]:
    """What a job's supervisor command line contains (module and job name, not the path spelling)."""
    return (SUPERVISOR_MODULE, paths.root.name)


def _supervisor_env() -> dict[str, str]:
    """The supervisor's environment: ours, with this checkout of streamguard importable."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    parts = [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != package_root]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    return env
