"""Quarantine entries: every rejected line or record, with where it came from and why.

What an entry keeps depends on whose input it is (``keep_raw``):

- ``keep_raw=True`` -- ``streamguard prepare`` on the command line, reading the user's own files:
  the raw line (or its bytes, base64) or the decoded record, so that nothing is lost and fixing
  the input recovers it.
- ``keep_raw=False`` -- the default, and what every DAG run gets (its input is whatever a
  ``data_uri``/``feedback_uri`` names, and its quarantine lands in the shared artifact store): a
  line that is not a JSON record at all (invalid JSON or UTF-8, a non-object, too deep, too long)
  and an object without a ``code`` field keep only file, line, reason, ``length`` (bytes) and
  ``sha256``, never their text. A record with ``code`` that fails validation is kept whole: it is
  training data someone meant to supply, and its owner needs it to fix the input.

Entries are spooled to a temporary file (:class:`Spool`) as they come, so a file of millions of
bad lines costs disk, not memory.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from streamguard.data.json_lines import InputLine


# One encoder for every row: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_dumps = _ENCODER.encode


def fingerprint(text: str) -> dict[str, Any]:
    """``{"length", "sha256"}`` of a text's UTF-8 bytes: identifies it without keeping it."""
    data = text.encode("utf-8", "surrogatepass")
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass
class QuarantineEntry:
    """One rejected line or record.

    ``reason`` is a short category (``invalid_json``, ``missing_code``, ``conflicting_labels``...)
    used for counting; ``message`` is the full, specific explanation. ``length``/``sha256``
    identify a rejected line's bytes (``sha256`` is None for a line too long to read).
    """

    file: str
    line: int
    reason: str
    message: str
    record: dict | None = None
    raw: str | None = None
    raw_base64: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    length: int | None = None
    sha256: str | None = None

    def to_dict(self, keep_raw: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "line": self.line, "reason": self.reason,
                               "message": self.message}
        out.update(self.extra)
        if self.length is not None:
            out["length"] = self.length
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.record is not None:
            if keep_raw or "code" in self.record:
                out["record"] = self.record
            else:
                out.update(fingerprint(_dumps(self.record)))
                out["redacted"] = True
        if keep_raw:
            if self.raw is not None:
                out["raw"] = self.raw
            if self.raw_base64 is not None:
                out["raw_base64"] = self.raw_base64
        elif self.raw or self.raw_base64:
            out["redacted"] = True
        return out


def from_line(item: InputLine) -> QuarantineEntry:
    """A quarantine entry for a line that did not decode to a JSON object."""
    return QuarantineEntry(item.file, item.line, item.reason or "unreadable_line", item.error or "",
                           raw=item.raw, raw_base64=item.raw_base64, length=item.length, sha256=item.sha256)


class Spool:
    """An append-only sequence of JSON-able rows kept in a temporary file, not in memory.

    Supports ``append``, ``len``, iteration (rows decoded again, in order), indexing and ``==``
    against a list, so it stands in for the list of rows it replaces. ``reasons`` counts rows
    by their ``reason``.
    """

    def __init__(self) -> None:
        self._fh = tempfile.TemporaryFile(prefix="sg-quarantine-")
        self._n = 0
        self.reasons: Counter = Counter()

    def append(self, row: dict[str, Any]) -> None:
        self._fh.write((_dumps(row) + "\n").encode("utf-8", "surrogatepass"))
        self._n += 1
        self.reasons[row.get("reason")] += 1

    def append_raw(self, line: bytes) -> None:
        """Append a row as the JSON line it was stored as (``raw_lines`` of another spool), byte for byte."""
        row = json.loads(line.decode("utf-8", "surrogatepass"))
        self._fh.write(line if line.endswith(b"\n") else line + b"\n")
        self._n += 1
        self.reasons[row.get("reason")] += 1

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._fh.flush()
        self._fh.seek(0)
        try:
            for _ in range(self._n):
                yield json.loads(self._fh.readline().decode("utf-8", "surrogatepass"))
        finally:
            self._fh.seek(0, 2)

    def raw_lines(self) -> Iterator[bytes]:
        """The rows as the JSON lines they were stored as (no decoding), in order."""
        self._fh.flush()
        self._fh.seek(0)
        try:
            for _ in range(self._n):
                yield self._fh.readline()
        finally:
            self._fh.seek(0, 2)

    def __getitem__(self, index):
        return list(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, Spool)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # mutable, like the list it replaces

    def __repr__(self) -> str:
        return f"Spool({self._n} rows)"

    def close(self) -> None:
        self._fh.close()


def count_reasons(entries) -> dict[str, int]:
    """Entries per reason, sorted by reason for stable reports (entries or a :class:`Spool`)."""
    counts = entries.reasons if isinstance(entries, Spool) else Counter(e.reason for e in entries)
    return dict(sorted(counts.items()))
