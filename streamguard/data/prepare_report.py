"""The report and the error of `streamguard prepare` (kept apart so every preparation module can use them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


class PrepareError(Exception):
    """Preparation cannot produce usable channels (unreadable input, nothing usable left...)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class PrepareReport:
    """What preparation read, kept, rejected, generated and wrote.

    ``splits`` maps each split to counts: ``total``, ``label_0``, ``label_1`` and per origin.
    ``data_hash`` is the sha256 over the three written split files. ``elapsed_s`` is not written
    to report.json (it would make reruns differ).
    """

    inputs: list[str]
    files: list[str]
    out: str
    seed: int
    ratios: list[float]
    lines_read: int = 0
    records_valid: int = 0
    kept: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantined_total: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    augmented: dict[str, int] = field(default_factory=dict)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    graphs: dict | None = None
    data_hash: str = ""
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("elapsed_s")
        return out

