"""Supervisor of one local training job: ``python -m streamguard.backends.supervisor <job dir>``.

Started detached by `LocalTrainingBackend.create_training_job`. It reproduces the SageMaker
script-mode container contract on this machine (see SAGEMAKER.md):

1. ``Downloading``: copy each channel's URI (``s3://`` or ``file://``) into ``input/data/<channel>``,
   the source dir tarball into ``code/`` (safely unpacked), checkpoints from ``CheckpointConfig``,
   and write ``input/config/{hyperparameters,inputdataconfig,resourceconfig}.json``.
2. ``Training``: run ``python <sagemaker_program> --name value ...`` in ``code/`` with the ``SM_*``
   environment, streaming its output to ``logs/train.log`` and parsing ``MetricDefinitions``
   into ``FinalMetricDataList`` and ``metrics.jsonl``; enforce ``MaxRuntimeInSeconds``.
3. ``Uploading``: ``model/`` -> ``<S3OutputPath>/<job>/output/model.tar.gz`` and ``output/data/``
   -> ``.../output/output.tar.gz``; checkpoints back to ``CheckpointConfig.S3Uri``.

Checkpoints are also copied to ``CheckpointConfig.S3Uri`` while training runs (every
``$STREAMGUARD_LOCAL_CHECKPOINT_SYNC_S`` seconds, default 5, when they changed) and after the
training process ends whatever the outcome (Failed and Stopped included), as SageMaker does, so
a new job with the same ``CheckpointConfig`` (a task retry) resumes from the last epoch saved.
A copy is only made of a consistent checkpoint: no file newer than the entry's state JSON,
which the entry writes last (`streamguard.backends.checkpoint_sync`). The command line and the
``SM_*`` environment are built by `streamguard.backends.container_env`.

Differences from SageMaker, on purpose: one host only (``InstanceCount`` > 1 runs one process and
says so in the log), no ``requirements.txt`` install (the local environment already has the
packages), ``SM_NUM_GPUS`` from ``$STREAMGUARD_LOCAL_NUM_GPUS`` (default 0), ``SM_HP_<NAME>``
with every non-alphanumeric character as ``_`` (``model-type`` -> ``SM_HP_MODEL_TYPE``), channels
copied as directory prefixes (S3Prefix ``data/train`` does not also match ``data/train2/``),
``SM_CHECKPOINT_DIR`` pointing at the job's ``checkpoints/`` (SageMaker: ``CheckpointConfig.LocalPath``),
and timestamps as ISO-8601 strings.

SIGTERM (from `stop_training_job` or a killed Airflow task) stops the training process group and
records ``Stopped``; the model trained so far is still uploaded, as SageMaker does on stop.

Kept whole: `Supervisor` is one job's state machine (its status file, stop flag and child process
are shared by every phase and by the SIGTERM handler); the helpers that stand alone already live
in `container_env`, `checkpoint_sync` and `streamguard.jobs.metrics`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from streamguard.backends.local import (
    JobPaths,
    kill_group,
    read_json,
    set_status,
    utcnow_iso,
    write_json_atomic,
)
from streamguard.backends.checkpoint_sync import checkpoint_fingerprint, copy_checkpoints
from streamguard.backends.container_env import (HOST, command_args, input_data_config, resource_config,
                                                training_environment)
from streamguard.jobs.metrics import MetricParser
from streamguard.jobs.request import decode_hyperparameter

# Seconds between SIGTERM and SIGKILL: SageMaker allows 120 s; a local run needs less.
STOP_GRACE_S = float(os.environ.get("STREAMGUARD_LOCAL_STOP_GRACE_S", "10"))
STATUS_WRITE_INTERVAL_S = 0.5
# Seconds between checkpoint copies to CheckpointConfig.S3Uri while training runs.
CHECKPOINT_SYNC_S = float(os.environ.get("STREAMGUARD_LOCAL_CHECKPOINT_SYNC_S", "5"))
TAIL_LINES = 20
MAX_REASON_CHARS = 1024  # the API's limit for FailureReason
LOG_MARK = "[streamguard-local "


class JobStopped(Exception):
    """Raised inside the supervisor when a stop was requested between steps."""


class JobInputError(RuntimeError):
    """The request's inputs cannot be used as given (a channel with no data, no entry point): recurs on retry."""


# Errors of the supervisor's own steps that recur with the same request. Anything else (a network or
# S3 error, a full disk) is transient: the job ends ``FailureKind`` "transient" and is retried.
_INPUT_ERRORS = (JobInputError, ValueError, KeyError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
                 PermissionError)


def failure_kind_of(exc: BaseException) -> str:
    """`streamguard.lifecycle` ``FailureKind`` of an error raised by the supervisor's own steps."""
    from streamguard.lifecycle import INPUT, TRANSIENT

    return INPUT if isinstance(exc, _INPUT_ERRORS) else TRANSIENT


def failure_text(kind: str, message: str) -> str:
    """``FailureReason`` in SageMaker's form: its category for the kind, then the message."""
    from streamguard.lifecycle import INPUT

    return f"{'ClientError' if kind == INPUT else 'InternalServerError'}: {message}"


def fetch(uri: str, dest: Path) -> None:
    """Copy a file or a prefix at ``uri`` (``file://`` or ``s3://``) into directory ``dest``."""
    from streamguard import storage

    dest.mkdir(parents=True, exist_ok=True)
    storage.download(uri, str(dest))


def upload(local: Path, uri: str) -> str:
    from streamguard import storage

    return storage.upload_file(str(local), uri)


class Supervisor:
    """Runs one job directory from ``Starting`` to a terminal state."""

    def __init__(self, job_dir: Path):
        self.paths = JobPaths(job_dir)
        self.request = read_json(self.paths.request)
        self.status = read_json(self.paths.status)
        self.name = self.request["TrainingJobName"]
        self.child: subprocess.Popen | None = None
        self.stop_requested = False
        self.parser = MetricParser(self.request["AlgorithmSpecification"].get("MetricDefinitions", []))
        self._last_write = 0.0
        self._synced: tuple | None = None  # fingerprint of the checkpoint last copied
        self._last_sync = 0.0

    # ------------------------------------------------------------------------------------ status
    def save(self) -> None:
        self.status["LastModifiedTime"] = utcnow_iso()
        write_json_atomic(self.paths.status, self.status)
        self._last_write = time.monotonic()

    def transition(self, state: str, secondary: str, message: str, reason: str | None = None,
                   kind: str | None = None) -> None:
        set_status(self.status, state, secondary, message, reason=reason)
        if kind is not None:
            self.status["FailureKind"] = kind
        self.save()

    def log(self, message: str) -> None:
        """A supervisor line in train.log (marked, so it is not mistaken for the entry's output)."""
        with open(self.paths.train_log, "a", encoding="utf-8") as fh:
            fh.write(f"{LOG_MARK}{utcnow_iso()}] {message}\n")

    def sync_checkpoints(self, checkpoint_dir: Path, *, final: bool = False) -> None:
        """Copy the job's checkpoints to ``CheckpointConfig.S3Uri`` if they changed since the last copy.

        Periodic copies are best effort (logged); the final one of a Completed job raises, so
        the job fails rather than silently losing its checkpoints.
        """
        self._last_sync = time.monotonic()
        ckpt = self.request.get("CheckpointConfig")
        if not ckpt or not checkpoint_dir.is_dir():
            return
        if checkpoint_fingerprint(checkpoint_dir) == self._synced:
            return
        try:
            copied = copy_checkpoints(checkpoint_dir, ckpt["S3Uri"], self.paths.root / "checkpoint-upload")
        except Exception as exc:  # noqa: BLE001 - a failed periodic copy is retried at the next interval
            if final:
                raise
            self.log(f"checkpoint copy to {ckpt['S3Uri']} failed (will retry): {type(exc).__name__}: {exc}")
            return
        if copied is not None:
            self._synced = copied
            if final:
                self.log(f"checkpoints copied to {ckpt['S3Uri']}")
        elif final:
            self.log("the checkpoint dir was left mid-write; the last complete copy at "
                     f"{ckpt['S3Uri']} is kept")

    # ----------------------------------------------------------------------------------- signals
    def on_sigterm(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.stop_requested = True
        if self.child is not None and self.child.poll() is None:
            kill_group(self.child.pid, signal.SIGTERM)

    def check_stop(self) -> None:
        if self.stop_requested or self.paths.stop_marker.exists():
            self.stop_requested = True
            raise JobStopped()

    # ------------------------------------------------------------------------------------- steps
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.status["Pid"] = os.getpid()
        self.status["TrainingStartTime"] = utcnow_iso()
        self.save()
        try:
            self.check_stop()
            self.transition("InProgress", "Downloading", "Downloading input data and code")
            checkpoint_dir = self.prepare()
            self.check_stop()
            self.transition("InProgress", "Training", "Training in progress")
            outcome, reason = self.train(checkpoint_dir)
            if outcome != "Completed":  # Completed copies them in upload_outputs (and fails if it cannot)
                self._final_checkpoint_copy(checkpoint_dir)
        except JobStopped:
            self.finish_stopped("Stopped", "Job stopped before training started", None)
            return 0
        except Exception as exc:  # noqa: BLE001 - every error must end as a Failed status with a reason
            self.log(traceback.format_exc())
            kind = failure_kind_of(exc)
            self.transition("Failed", "Failed", "Job failed", reason=failure_text(kind, f"{type(exc).__name__}: {exc}"),
                            kind=kind)
            return 1
        if outcome == "Completed":
            try:
                self.transition("InProgress", "Uploading", "Uploading generated training model")
                self.upload_outputs(checkpoint_dir)
            except Exception as exc:  # noqa: BLE001
                self.log(traceback.format_exc())
                kind = failure_kind_of(exc)
                self.transition("Failed", "Failed", "Upload failed", reason=failure_text(kind, f"upload failed: {exc}"),
                                kind=kind)
                return 1
            self.transition("Completed", "Completed", "Training job completed")
            return 0
        if outcome in ("Stopped", "MaxRuntimeExceeded"):
            self.finish_stopped(outcome, "Training job stopped" if outcome == "Stopped"
                                else "Training job exceeded MaxRuntimeInSeconds", reason, checkpoint_dir)
            return 0
        self.transition("Failed", "Failed", "Training job failed", reason=reason, kind=self.status.get("FailureKind"))
        return 1

    def _final_checkpoint_copy(self, checkpoint_dir: Path) -> None:
        """After a failed or stopped run: keep its checkpoints for the next attempt (best effort)."""
        try:
            self.sync_checkpoints(checkpoint_dir, final=True)
        except Exception as exc:  # noqa: BLE001 - the job's own failure reason matters more
            self.log(f"checkpoint copy after {self.status.get('SecondaryStatus')} failed: {exc}")

    def finish_stopped(self, secondary: str, message: str, reason: str | None, checkpoint_dir: Path | None = None) -> None:
        # As on SageMaker, whatever the script saved before it stopped is still uploaded.
        if checkpoint_dir is not None and any(self.paths.model.rglob("*")):
            try:
                self.transition("Stopping", "Uploading", "Uploading the model saved before the stop")
                self.upload_outputs(checkpoint_dir)
            except Exception as exc:  # noqa: BLE001
                self.log(f"upload after stop failed: {exc}")
        self.transition("Stopped", secondary, message, reason=reason)

    def prepare(self) -> Path:
        """Channels, code, checkpoints and config files; returns the checkpoint directory."""
        p = self.paths
        for d in (p.input_data, p.input_config, p.code, p.model, p.output_data, p.output / "intermediate"):
            d.mkdir(parents=True, exist_ok=True)
        count = self.request["ResourceConfig"].get("InstanceCount", 1)
        if count > 1:
            self.log(f"InstanceCount={count}: the local backend runs one host ({HOST}); "
                     "torchrun/DDP across instances happens on SageMaker only")
        for channel in self.request.get("InputDataConfig", []):
            name = channel["ChannelName"]
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            self.log(f"channel {name}: {uri} -> {p.input_data / name}")
            try:
                fetch(uri, p.input_data / name)
            except FileNotFoundError as exc:
                raise JobInputError(f"channel {name!r}: nothing found at {uri} ({exc})") from None
            self.check_stop()
        hps = self.request["HyperParameters"]
        submit = str(decode_hyperparameter(hps["sagemaker_submit_directory"]))
        tarball = p.root / "sourcedir.tar.gz"
        self.log(f"source dir: {submit}")
        from streamguard import storage
        from streamguard.core.archive import safe_extract

        storage.download(submit, str(tarball))
        safe_extract(tarball, p.code)
        program = str(decode_hyperparameter(hps["sagemaker_program"]))
        if not (p.code / program).is_file():
            raise JobInputError(f"sagemaker_program {program!r} is not in the source dir {submit}")

        checkpoint_dir = p.checkpoints
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        ckpt = self.request.get("CheckpointConfig")
        if ckpt and _exists(ckpt["S3Uri"]):
            self.log(f"checkpoints: resuming from {ckpt['S3Uri']}")
            try:
                fetch(ckpt["S3Uri"], checkpoint_dir)
            except FileNotFoundError:  # an empty local directory exists but holds no checkpoint yet
                self.log(f"checkpoints: {ckpt['S3Uri']} is empty; starting fresh")
            self._synced = checkpoint_fingerprint(checkpoint_dir)  # already there: no copy back until it changes

        write_json_atomic(p.input_config / "hyperparameters.json", hps)
        write_json_atomic(p.input_config / "inputdataconfig.json", input_data_config(self.request))
        write_json_atomic(p.input_config / "resourceconfig.json", resource_config())
        return checkpoint_dir

    def train(self, checkpoint_dir: Path) -> tuple[str, str | None]:
        """Run the entry; returns (outcome, reason) with outcome Completed|Failed|Stopped|MaxRuntimeExceeded."""
        hps = self.request["HyperParameters"]
        program = str(decode_hyperparameter(hps["sagemaker_program"]))
        argv = [sys.executable, program, *command_args(hps)]
        env = training_environment(self.request, self.paths, checkpoint_dir)
        max_runtime = float(self.request["StoppingCondition"]["MaxRuntimeInSeconds"])
        self.log("running: " + " ".join(argv[1:]))
        lines: queue.Queue = queue.Queue()
        self.child = subprocess.Popen(
            argv, cwd=str(self.paths.code), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.status["ChildPid"] = self.child.pid
        self.save()
        if self.stop_requested:  # SIGTERM arrived while the child was starting
            kill_group(self.child.pid, signal.SIGTERM)
        reader = threading.Thread(target=_pump, args=(self.child.stdout, lines), daemon=True)
        reader.start()
        started = time.monotonic()
        outcome, reason = None, None
        with open(self.paths.train_log, "a", encoding="utf-8") as log, \
                open(self.paths.metrics, "a", encoding="utf-8") as metrics:
            dirty = False
            while True:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    line = ""
                if line is None:  # end of output
                    break
                if line:
                    log.write(line if line.endswith("\n") else line + "\n")
                    log.flush()
                    now = utcnow_iso()
                    for metric, value in self.parser.feed(line):
                        metrics.write(json.dumps({"MetricName": metric, "Value": value, "Timestamp": now}) + "\n")
                        dirty = True
                    metrics.flush()
                if dirty and time.monotonic() - self._last_write >= STATUS_WRITE_INTERVAL_S:
                    self._record_metrics()
                    dirty = False
                if outcome is None and time.monotonic() - self._last_sync >= CHECKPOINT_SYNC_S:
                    self.sync_checkpoints(checkpoint_dir)
                if outcome is None and (self.stop_requested or self.paths.stop_marker.exists()):
                    self.stop_requested = True
                    outcome = "Stopped"
                    self._terminate()
                elif outcome is None and time.monotonic() - started > max_runtime:
                    outcome = "MaxRuntimeExceeded"
                    reason = f"Training job exceeded MaxRuntimeInSeconds ({max_runtime:.0f}s) and was stopped"
                    self.log(reason)
                    self._terminate()
        rc = self.child.wait()
        self._record_metrics()
        if self.parser.skipped:
            self.log(f"{self.parser.skipped} metric value(s) were not finite numbers and were ignored")
        if outcome is None and self.stop_requested:
            outcome = "Stopped"
        if outcome is not None:
            return outcome, reason
        if rc == 0:
            return "Completed", None
        return "Failed", self._failure_reason(rc)

    def _terminate(self) -> None:
        """SIGTERM the training process group; SIGKILL whatever is left after STOP_GRACE_S."""
        kill_group(self.child.pid, signal.SIGTERM)

        def escalate(pid: int) -> None:
            time.sleep(STOP_GRACE_S)
            kill_group(pid, signal.SIGKILL)

        threading.Thread(target=escalate, args=(self.child.pid,), daemon=True).start()

    def _record_metrics(self) -> None:
        now = utcnow_iso()
        self.status["FinalMetricDataList"] = [
            {"MetricName": name, "Value": value, "Timestamp": now} for name, value in self.parser.last.items()
        ]
        self.save()

    def _failure_reason(self, rc: int) -> str:
        from streamguard.core.job_errors import DETERMINISTIC_EXIT_CODE
        from streamguard.lifecycle import ALGORITHM, INPUT

        # Structured, as SageMaker's toolkit reports it (`ExitCode N`): the exit code decides the class.
        self.status["ExitCode"] = rc
        self.status["FailureKind"] = INPUT if rc == DETERMINISTIC_EXIT_CODE else ALGORITHM
        if self.paths.failure.is_file():
            text = self.paths.failure.read_text(errors="replace").strip()
            if text:
                return text
        how = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
        head = f"AlgorithmError: the training script ended with {how}. Last log lines:\n"
        tail = _tail(self.paths.train_log, TAIL_LINES)
        room = MAX_REASON_CHARS - len(head)
        if len(tail) > room:  # keep the header and the very end of the log within the API's limit
            tail = "..." + tail[-(room - 3):]
        return head + tail

    def upload_outputs(self, checkpoint_dir: Path) -> None:
        from streamguard.sourcedir import tar_directory
        from streamguard.storage import join_uri

        base = join_uri(self.request["OutputDataConfig"]["S3OutputPath"], self.name, "output")
        staging = self.paths.root / "upload"
        staging.mkdir(exist_ok=True)
        model_tar, model_sha = tar_directory(self.paths.model, staging / "model.tar.gz")
        output_tar, _ = tar_directory(self.paths.output_data, staging / "output.tar.gz")
        model_uri = upload(model_tar, join_uri(base, "model.tar.gz"))
        upload(output_tar, join_uri(base, "output.tar.gz"))
        self.log(f"model artifact: {model_uri} (sha256 {model_sha})")
        self.sync_checkpoints(checkpoint_dir, final=True)
        self.status["ModelArtifacts"] = {"S3ModelArtifacts": model_uri}
        self.status["ModelArtifactSha256"] = model_sha
        self.save()


def _exists(uri: str) -> bool:
    from streamguard import storage

    return storage.exists(uri)


def _pump(stream, lines: queue.Queue) -> None:
    """Reader thread: one decoded line at a time into ``lines``, then None at end of output."""
    try:
        for raw in iter(stream.readline, b""):
            lines.put(raw.decode("utf-8", errors="replace"))
    finally:
        lines.put(None)


def _tail(path: Path, n: int) -> str:
    """The last ``n`` lines the training script printed (the supervisor's own lines left out)."""
    if not path.is_file():
        return "(no log)"
    lines = [line for line in path.read_text(errors="replace").splitlines() if not line.startswith(LOG_MARK)]
    return "\n".join(lines[-n:]) or "(the script printed nothing)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m streamguard.backends.supervisor <job dir>", file=sys.stderr)
        return 2
    job_dir = Path(argv[0])
    try:
        supervisor = Supervisor(job_dir)
    except Exception as exc:  # noqa: BLE001 - the job dir is unusable; say so where describe looks
        status_path = JobPaths(job_dir).status
        if status_path.is_file():
            status = read_json(status_path)
            set_status(status, "Failed", "Failed", "Supervisor could not start",
                       reason=f"supervisor could not read the job directory: {exc}")
            write_json_atomic(status_path, status)
        raise
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
