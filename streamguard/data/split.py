"""Group-aware, label-stratified, seeded train/validation/test split.

Records sharing a ``group`` always land in the same split (records without one are their own
group). Groups are visited in an order fixed by a hash of (seed, group id) — not by input
order — and each goes to the split whose per-label quota is least filled, which keeps the
label ratio of every split close to the overall one.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence

SPLITS = ("train", "validation", "test")


def validate_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Check three non-negative ratios summing to 1 with a positive train share."""
    if len(ratios) != 3:
        raise ValueError(f"expected 3 ratios (train, validation, test), got {len(ratios)}")
    train, val, test = (float(r) for r in ratios)
    if min(train, val, test) < 0:
        raise ValueError(f"ratios must be non-negative, got {train}, {val}, {test}")
    if train <= 0:
        raise ValueError(f"the train ratio must be positive, got {train}")
    if abs(train + val + test - 1.0) > 1e-6:
        raise ValueError(f"ratios must sum to 1, got {train} + {val} + {test} = {train + val + test:g}")
    return train, val, test


def stable_hash(*parts: object) -> str:
    return hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def assign_groups(group_labels: dict[str, list[int]], ratios: Sequence[float], seed: int) -> dict[str, str]:
    """Map each group id to a split name.

    Args:
        group_labels: group id -> labels of its records.
        ratios: (train, validation, test) fractions.
        seed: changes the visiting order, hence the assignment.

    Returns:
        group id -> "train" | "validation" | "test".
    """
    ratios = validate_ratios(ratios)
    totals = Counter(label for labels in group_labels.values() for label in labels)
    target = {s: {lab: r * n for lab, n in totals.items()} for s, r in zip(SPLITS, ratios)}
    filled: dict[str, Counter] = {s: Counter() for s in SPLITS}
    # Larger groups first (they are the hard ones to place), then a seeded pseudo-random order.
    order = sorted(group_labels, key=lambda g: (-len(group_labels[g]), stable_hash(seed, g)))
    assignment: dict[str, str] = {}
    for g in order:
        counts = Counter(group_labels[g])
        best, best_score = SPLITS[0], None
        for s in SPLITS:
            score = 0.0
            usable = False
            for lab, n in counts.items():
                t = target[s].get(lab, 0.0)
                if t > 0:
                    usable = True
                    score += n * (t - filled[s][lab]) / t   # unfilled share of this split's quota
            if not usable:
                continue
            if best_score is None or score > best_score + 1e-12:
                best, best_score = s, score
        assignment[g] = best
        filled[best].update(counts)
    return assignment


def split_items(items: list, ratios: Sequence[float], seed: int, *, group_of, label_of) -> dict[str, list]:
    """Split arbitrary items by group; within a split items keep their relative input order."""
    group_labels: dict[str, list[int]] = defaultdict(list)
    for it in items:
        group_labels[group_of(it)].append(label_of(it))
    assignment = assign_groups(group_labels, ratios, seed)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for it in items:
        out[assignment[group_of(it)]].append(it)
    return out
