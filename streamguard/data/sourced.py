"""A normalised record together with the input file and line it came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sourced:
    """``record`` is the output of ``normalize_record``; ``file``/``line`` locate its input line."""

    record: dict
    file: str
    line: int

    @property
    def id(self) -> str:
        return self.record["id"]
