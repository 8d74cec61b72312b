"""How a training/evaluate job reports a failure that would recur on every attempt.

Bad input, bad arguments and integrity errors (a model archive whose sha256 differs from the
registry's) do not go away when the job is retried, so a retry only bills the same failure again.
The entry exits with `DETERMINISTIC_EXIT_CODE` and writes ``<DETERMINISTIC_MARKER>: <message>``
on stderr and in the failure file.

What the orchestrator then sees as ``FailureReason``:

- local backend: the failure file as the entry wrote it (``StreamGuardInputError: ...``);
- SageMaker: the training toolkit replaces the failure file with its own report,
  ``ExecuteUserScriptError:\\nExitCode 3\\nErrorMessage "<stderr from the first error line>"...``,
  and the service prefixes ``AlgorithmError: ``.

`is_deterministic_failure` recognises both forms (the marker, or the toolkit's ``ExitCode`` line).
"""

from __future__ import annotations

import re

DETERMINISTIC_EXIT_CODE = 3  # not 1 (any Python error), 2 (a shell's usage error) nor 128+N (a signal)
DETERMINISTIC_MARKER = "StreamGuardInputError"
_TOOLKIT_EXIT = re.compile(r"\bExitCode (\d+)\b")


def deterministic_message(message: str) -> str:
    """The failure-file / stderr form of a deterministic failure."""
    return f"{DETERMINISTIC_MARKER}: {message}"


def is_deterministic_failure(reason: str | None) -> bool:
    """Whether a job's ``FailureReason`` says the failure recurs on retry (see the module docstring)."""
    text = reason or ""
    if DETERMINISTIC_MARKER in text:
        return True
    match = _TOOLKIT_EXIT.search(text)
    return bool(match) and int(match.group(1)) == DETERMINISTIC_EXIT_CODE
