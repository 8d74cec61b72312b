"""Quarantine entries: every rejected line or record, with where it came from and why.

An entry keeps the raw line (or the decoded record) so that nothing is lost: fixing the input
and re-running preparation recovers it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streamguard.data.io import InputLine


@dataclass
class QuarantineEntry:
    """One rejected line or record.

    ``reason`` is a short category (``invalid_json``, ``missing_code``, ``conflicting_labels``...)
    used for counting; ``message`` is the full, specific explanation.
    """

    file: str
    line: int
    reason: str
    message: str
    record: dict | None = None
    raw: str | None = None
    raw_base64: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "line": self.line, "reason": self.reason,
                               "message": self.message}
        out.update(self.extra)
        if self.record is not None:
            out["record"] = self.record
        if self.raw is not None:
            out["raw"] = self.raw
        if self.raw_base64 is not None:
            out["raw_base64"] = self.raw_base64
        return out


def from_line(item: InputLine) -> QuarantineEntry:
    """A quarantine entry for a line that did not decode to a JSON object."""
    return QuarantineEntry(item.file, item.line, item.reason or "unreadable_line", item.error or "",
                           raw=item.raw, raw_base64=item.raw_base64)


def count_reasons(entries: list[QuarantineEntry]) -> dict[str, int]:
    """Entries per reason, sorted by reason for stable reports."""
    return dict(sorted(Counter(e.reason for e in entries).items()))
