"""What every program transformation shares: why one does not apply, fresh names, safe constants."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable


class NotApplicable(Exception):
    """The transformation does not apply to this code; ``reason`` is counted in the report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Transformation:
    """A named source-to-source rewrite; ``flips`` says whether the variant's label is the opposite one.

    ``fn(code, rng) -> code`` raises `NotApplicable` when it does not apply. Label-flipping ones
    apply to vulnerable code only (they remove what makes it vulnerable); the others keep the label.
    """

    name: str
    language: str
    flips: bool
    fn: Callable[[str, random.Random], str]

    @property
    def why(self) -> str:
        return " ".join((self.fn.__doc__ or "").strip().split("\n\n")[0].split())


# A value of each sink class that is harmless in it (what a constant overwrite or a dead branch leaves).
CONSTANTS = {"sql": "SELECT 1", "command": "ls", "path": "report.txt", "html": "ok", "header": "ok",
             "redirect": "/", "url": "https://example.org/", "ldap": "(cn=guest)", "xpath": "/items/item",
             "code": "0"}


def const_for(sink_class: str) -> str:
    return CONSTANTS.get(sink_class, "constant")


def fresh_name(pool: tuple[str, ...], taken: set[str], rng: random.Random) -> str:
    """A name from ``pool`` (seeded choice) that ``taken`` does not hold, numbered if need be."""
    base = rng.choice(pool)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    return name
