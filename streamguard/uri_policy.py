"""Which locations StreamGuard reads from and writes to: ``s3://`` and local files, nothing else.

Every reader and writer (``streamguard.data.io``, ``streamguard.storage``) passes its URI through
:func:`check_uri`, and the trigger params that name inputs (``data_uri``, ``feedback_uri``) go
through :func:`check_input_uri`, so no value reaches another fsspec scheme (``http://``,
``ftp://``, ``memory://``, chained ``simplecache::...``) whichever way it arrives. Only the
local file system and S3 (through botocore, which follows no redirects to other hosts) are ever
opened.

A deployment may also restrict trigger inputs to a few roots: ``$STREAMGUARD_INPUT_ROOTS``
(URIs separated by commas or whitespace), else the Airflow Variable ``streamguard_input_roots``.
Unset: any local path or bucket the worker can read.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEMES = ("file", "s3")
ROOTS_ENV = "STREAMGUARD_INPUT_ROOTS"
ROOTS_VARIABLE = "streamguard_input_roots"
# Bucket names (legacy ones included): letters, digits, dots, hyphens, underscores. Above all no
# "user@host:port", which would make the URI name another endpoint.
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class UriPolicyError(ValueError):
    """A location StreamGuard will not read or write; the message says which rule it breaks.

    ``reason`` is the rule alone, without the value (for messages that name the value already).
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _refuse(text: str, reason: str) -> UriPolicyError:
    return UriPolicyError(f"{text!r}: {reason}", reason)


def check_uri(value: str | os.PathLike) -> str:
    """The canonical URI of a permitted location: ``s3://bucket/key`` or ``file:///abs/path``.

    Plain paths (relative ones against the working directory) become ``file://`` URIs.

    Raises:
        UriPolicyError: empty, a scheme other than file:// and s3://, a chained (``::``) URL,
            a ``file://`` URI with a host, query or fragment, or an invalid S3 bucket or key.
    """
    text = os.fspath(value)
    if not text:
        raise UriPolicyError("empty path or URI")
    if _CONTROL_RE.search(text):
        raise _refuse(text, "control characters are not allowed in a path or URI")
    if "::" in text:
        raise _refuse(text, "chained URLs ('::') are not allowed; use s3:// or file:// alone")
    if "://" not in text:
        return Path(text).expanduser().absolute().as_uri()
    scheme = text.split("://", 1)[0].lower()
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc:
            raise _refuse(text, f"file URIs must be local (file:///path): {parsed.netloc!r} is a host, "
                                "and another host's files are not read")
        if parsed.query or parsed.fragment or text.endswith(("?", "#")):
            raise _refuse(text, "a file URI takes no ?query or #fragment")
        return Path(unquote(parsed.path)).expanduser().absolute().as_uri()
    if scheme == "s3":
        rest = text.split("://", 1)[1].strip("/")
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise _refuse(text, "an s3 URI needs a bucket (s3://bucket/key)")
        if not _BUCKET_RE.match(bucket):
            raise _refuse(text, f"{bucket!r} is not a valid S3 bucket name")
        if any(c in key for c in "?#") or any(seg in (".", "..") for seg in key.split("/")):
            raise _refuse(text, "an s3 key may not contain '?', '#' or '.'/'..' segments")
        return f"s3://{rest}"
    raise _refuse(text, f"unsupported scheme {scheme!r}: only {' and '.join(s + '://' for s in SCHEMES)} "
                        "locations are read or written")


def configured_roots() -> list[str]:
    """The roots trigger inputs must lie under: ``$STREAMGUARD_INPUT_ROOTS``, else the Variable.

    Returns [] when neither is set (no restriction). Outside an Airflow task (the CLI, tests)
    only the environment is consulted.
    """
    text = os.environ.get(ROOTS_ENV)
    if text is None:
        text = _variable(ROOTS_VARIABLE)
    return [check_uri(part) for part in re.split(r"[\s,]+", text or "") if part]


def _variable(name: str) -> str | None:
    # A running task has imported the task runner and set its supervisor channel; anything else
    # (the CLI, tests, DAG parsing) has no Variables to read, and importing Airflow would be slow.
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if task_runner is None or getattr(task_runner, "SUPERVISOR_COMMS", None) is None:
        return None
    from airflow.sdk import Variable

    return Variable.get(name, default=None)


def is_within(uri: str, root: str) -> bool:
    """Whether canonical ``uri`` lies at or under canonical ``root`` (local paths resolved)."""
    if uri.startswith("s3://") or root.startswith("s3://"):
        return uri == root or uri.startswith(root.rstrip("/") + "/")
    path = os.path.realpath(unquote(urlparse(uri).path))
    base = os.path.realpath(unquote(urlparse(root).path))
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def check_input_uri(value: str | None, param: str, roots: Sequence[str] | None = None) -> str:
    """Validate a trigger param naming an input; returns it stripped ("" stays "": not given).

    Args:
        value: the param's value.
        param: its name, for the message.
        roots: allowed roots (canonical URIs); None: :func:`configured_roots`.

    Raises:
        UriPolicyError: naming the param and the rule (scheme, host, relative path, outside roots).
    """
    text = (value or "").strip()
    if not text:
        return ""
    if "://" not in text and not os.path.isabs(os.path.expanduser(text)):
        raise UriPolicyError(f"param {param!r}: {text!r} is a relative path; use file:///absolute/path or s3://")
    try:
        uri = check_uri(text)
    except UriPolicyError as exc:
        raise UriPolicyError(f"param {param!r}: {exc}") from None
    allowed = configured_roots() if roots is None else list(roots)
    if allowed and not any(is_within(uri, root) for root in allowed):
        raise UriPolicyError(f"param {param!r}: {text!r} is outside the allowed input roots "
                             f"({', '.join(allowed)}; set by ${ROOTS_ENV} or the Variable {ROOTS_VARIABLE!r})")
    return text
