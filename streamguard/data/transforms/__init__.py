"""Augmentation by program transformations, for Python and Java, applied within a split after splitting.

Each transformation (`python.TRANSFORMATIONS`, `java.TRANSFORMATIONS`) is a small named
source-to-source rewrite whose docstring says why the label holds (label-preserving: renames, the
flow moved through a helper, a second class, a collection, a ternary, a switch or a
``StringBuilder``, dead code, independent statements reordered) or flips (vulnerable to safe: a
sink-appropriate sanitizer, parameterized queries, a constant overwrite, the taint routed into a
dead branch, the safe element of a collection read). The label comes from the transformation's
meaning, never from the taint rule's verdict: the featurizer's call classifier is used only to find
where the sinks are. A label-flipping rewrite is tried only on vulnerable records whose weakness is
an injection (`INJECTION_CWES`, or no cwe), and it must neutralise every sink it finds or it does
not apply.

`variants` draws, per record and seed, the order in which its transformations are tried and keeps
the first ``per_record`` that apply and re-parse; every attempt is counted by outcome (made, the
reason it did not apply, re-parse failure, error), so nothing is dropped silently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streamguard.data.transforms import java, python
from streamguard.data.transforms.base import NotApplicable, Transformation

REGISTRY: dict[str, tuple[Transformation, ...]] = {"python": python.TRANSFORMATIONS, "java": java.TRANSFORMATIONS}

# Weaknesses where tainted data reaching a sink is what makes the code vulnerable.
INJECTION_CWES = frozenset({"CWE-89", "CWE-78", "CWE-22", "CWE-23", "CWE-36", "CWE-90", "CWE-643", "CWE-79",
                            "CWE-80", "CWE-81", "CWE-83", "CWE-113", "CWE-601", "CWE-94", "CWE-95", "CWE-470",
                            "CWE-918", "CWE-77"})


@dataclass(frozen=True)
class Variant:
    transformation: Transformation
    code: str
    label: int


def parses(code: str, language: str) -> bool:
    """Re-parse check: ``ast.parse`` for Python, tree-sitter (no ERROR/MISSING node) for Java."""
    from streamguard.data.counterfactuals import parses as check

    return check(code, language)


def check_names(names) -> tuple[str, ...]:
    """The transformation names asked for, checked against the registry.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    known = sorted({t.name for ts in REGISTRY.values() for t in ts})
    names = tuple(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown program transformation(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not names:
        raise ValueError("an empty list of program transformations; leave it out to use them all")
    return names


def eligible(rec: dict, names: tuple[str, ...] | None = None) -> list[Transformation]:
    """The transformations that may be tried on a record: all label-preserving ones; the label-flipping
    ones only for a vulnerable record about an injection weakness. ``names``: only these (None: all)."""
    out = []
    for t in REGISTRY.get(rec.get("language"), ()):
        if names is not None and t.name not in names:
            continue
        if t.flips and not (rec.get("label") == 1 and (not rec.get("cwe") or rec.get("cwe") in INJECTION_CWES)):
            continue
        out.append(t)
    return out


def variants(rec: dict, seed: int, per_record: int, outcomes: dict[str, dict[str, int]],
             names: tuple[str, ...] | None = None) -> list[Variant]:
    """Up to ``per_record`` variants of one record; each attempt's outcome counted in ``outcomes``
    (``"<language>/<name>" -> {outcome: n}``; outcomes ``made``, ``not_applicable:<reason>``,
    ``parse_failed``, ``error:<exception type>``)."""
    from streamguard.data.split import stable_hash

    rng = random.Random(stable_hash(seed, rec["id"], "transforms"))
    order = eligible(rec, names)
    rng.shuffle(order)
    made: list[Variant] = []
    for t in order:
        if len(made) >= per_record:
            break
        key = f"{t.language}/{t.name}"
        counts = outcomes.setdefault(key, {})
        try:
            code = t.fn(rec["code"], random.Random(stable_hash(seed, rec["id"], t.name)))
        except NotApplicable as exc:
            outcome = f"not_applicable:{exc.reason}"
        except (RecursionError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            outcome = f"error:{type(exc).__name__}"
        else:
            if code.strip() == rec["code"].strip():
                outcome = "not_applicable:unchanged"
            elif not parses(code, rec["language"]):
                outcome = "parse_failed"
            else:
                outcome = "made"
                made.append(Variant(t, code, 1 - rec["label"] if t.flips else rec["label"]))
        counts[outcome] = counts.get(outcome, 0) + 1
    return made


__all__ = ["REGISTRY", "INJECTION_CWES", "Variant", "Transformation", "NotApplicable", "check_names", "eligible",
           "variants", "parses"]
