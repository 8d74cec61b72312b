"""How the entry fails: the error for bad flags or inputs, and the failure report SageMaker reads.

Errors that would recur on every attempt (`EntryError`, unusable channel data, a model archive that
fails its checks) are reported as `StreamGuardInputError: ...` (`streamguard.core.job_errors`) and
exit with `DETERMINISTIC_EXIT_CODE`, which both backends map to "do not retry".
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import artifacts
import data as datamod
from streamguard.core.job_errors import DETERMINISTIC_EXIT_CODE, deterministic_message


class EntryError(RuntimeError):
    """A problem with the job's inputs or flags; its message is the job's failure reason."""


def require(value: str | None, what: str, env: str, flag: str) -> str:
    """`value`, or an EntryError naming the env var and the flag that would have given it."""
    if not value:
        raise EntryError(f"no {what}: set {env} or pass {flag}")
    return value


def failure_file() -> Path | None:
    """Where SageMaker reads the failure reason: `$SM_OUTPUT_DIR/failure` or `/opt/ml/output/failure`."""
    if os.environ.get("SM_OUTPUT_DIR"):
        return Path(os.environ["SM_OUTPUT_DIR"]) / "failure"
    if Path("/opt/ml/output").is_dir():
        return Path("/opt/ml/output/failure")
    return None


def is_deterministic(exc: BaseException) -> bool:
    """Errors that a retry would only repeat: the job's flags, its input data, a model archive."""
    return isinstance(exc, (EntryError, datamod.DataError, artifacts.ArtifactError))


def exit_code(exc: BaseException) -> int:
    """The process status for a failure: `DETERMINISTIC_EXIT_CODE` (do not retry) or 1."""
    return DETERMINISTIC_EXIT_CODE if is_deterministic(exc) else 1


def write_failure(exc: BaseException) -> None:
    """Report an error on stderr and in the failure file."""
    if is_deterministic(exc):
        message = deterministic_message(f"{type(exc).__name__}: {exc}")
    else:
        message = f"{type(exc).__name__}: {exc}"
    print(f"StreamGuard entry failed: {message}", file=sys.stderr, flush=True)
    traceback.print_exc(file=sys.stderr)
    path = failure_file()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # SageMaker keeps the first 1024 characters as FailureReason; the full text stays in the log.
            path.write_text(message[:4096] + "\n", encoding="utf-8")
        except OSError as err:
            print(f"could not write the failure file {path}: {err}", file=sys.stderr, flush=True)
