"""Counterfactual augmentation, applied after splitting and within each split.

A record's explicit ``counterfactual`` becomes a new record with the opposite label and the
same group (origin ``counterfactual``); records without one may get an automatic SQL twin
(origin ``auto_counterfactual``, see :mod:`streamguard.data.counterfactuals`). Because twins stay
in their parent's split and group, augmentation cannot leak across splits. A twin whose code
already exists anywhere in the prepared data (after whitespace/comment normalisation) is skipped
and reported, as is an automatic twin that fails to re-parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamguard.data.counterfactuals import auto_counterfactual
from streamguard.data.dedup import dedup_key


@dataclass
class AugmentStats:
    """Counts over all splits (``rejected_auto``: generated but failed to re-parse;
    ``failed_auto``: the generator itself failed on the record, which is kept without a twin)."""

    explicit: int = 0
    auto: int = 0
    rejected_auto: int = 0
    skipped_duplicate: int = 0
    skipped_conflict: int = 0
    skipped_too_large: int = 0
    failed_auto: int = 0
    skipped: list[dict] = field(default_factory=list)   # rows for duplicates.jsonl
    failures: list[dict] = field(default_factory=list)  # {"id", "split", "error"} per failed_auto

    def to_dict(self) -> dict[str, int]:
        return {"explicit": self.explicit, "auto": self.auto, "rejected_auto": self.rejected_auto,
                "skipped_duplicate": self.skipped_duplicate, "skipped_conflict": self.skipped_conflict,
                "skipped_too_large": self.skipped_too_large, "failed_auto": self.failed_auto}


def twin(parent: dict, code: str, origin: str, suffix: str) -> dict:
    """A new record for ``code`` with the opposite label, sharing the parent's group and metadata."""
    out = {"id": f"{parent['id']}{suffix}", "code": code, "label": 1 - parent["label"],
           "language": parent["language"], "cwe": parent.get("cwe"), "group": parent["group"],
           "source": parent.get("source"), "origin": origin, "parent_id": parent["id"]}
    if parent.get("license"):
        out["license"] = parent["license"]
    return out


def augment_splits(splits: dict[str, list[dict]], *, auto: bool = True,
                   max_code_bytes: int = 200_000) -> AugmentStats:
    """Append counterfactual twins to each split in place; returns the counts.

    Args:
        splits: split name -> records (normalised, with ``group`` and ``origin`` set), in the order
            they will be written; twins are appended after their split's records.
        auto: also generate automatic SQL twins for records without an explicit counterfactual.
        max_code_bytes: twins larger than this are skipped like oversized inputs.
    """
    stats = AugmentStats()
    known: dict[str, tuple[str, int]] = {}
    ids = set()
    for records in splits.values():
        for rec in records:
            known.setdefault(dedup_key(rec), (rec["id"], rec["label"]))
            ids.add(rec["id"])
    for name, records in splits.items():
        added = []
        for rec in records:
            cf = rec.pop("counterfactual", None)
            candidate = None
            if cf is not None:
                candidate = twin(rec, cf, "counterfactual", "-cf")
            elif auto and rec["label"] in (0, 1):
                try:
                    made = auto_counterfactual(rec["code"], rec["language"], rec["label"], rec.get("cwe"))
                except Exception as exc:  # noqa: BLE001 - one record's failure must not stop the run
                    # e.g. RecursionError on a 3,000-term expression: the record stays, twinless.
                    stats.failed_auto += 1
                    stats.failures.append({"id": rec["id"], "split": name, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                if made is not None and not made.valid:
                    stats.rejected_auto += 1
                elif made is not None:
                    candidate = twin(rec, made.code, "auto_counterfactual", "-acf")
            if candidate is None:
                continue
            if not _admit(candidate, known, ids, stats, max_code_bytes, name):
                continue
            added.append(candidate)
            if candidate["origin"] == "counterfactual":
                stats.explicit += 1
            else:
                stats.auto += 1
        records.extend(added)
    return stats


def _admit(candidate: dict, known: dict, ids: set, stats: AugmentStats, max_code_bytes: int, split: str,
           kind: str = "counterfactual") -> bool:
    """Register a twin unless it is oversized or its code already exists; count why not."""
    if len(candidate["code"].encode("utf-8", "surrogatepass")) > max_code_bytes:
        stats.skipped_too_large += 1
        return False
    key = dedup_key(candidate)
    if key in known:
        kept_id, kept_label = known[key]
        conflict = kept_label != candidate["label"]
        if conflict:
            stats.skipped_conflict += 1
        else:
            stats.skipped_duplicate += 1
        stats.skipped.append({"id": candidate["id"], "kept_id": kept_id, "split": split,
                              "kind": f"{kind}_conflict" if conflict else f"{kind}_duplicate",
                              "record": candidate})
        return False
    while candidate["id"] in ids:  # an input record may already use the suffixed id
        candidate["id"] += "_"
    known[key] = (candidate["id"], candidate["label"])
    ids.add(candidate["id"])
    return True


def transform_splits(splits: dict[str, list[dict]], *, seed: int, per_record: int,
                     max_code_bytes: int = 200_000, only: tuple[str, ...] | None = ("train",),
                     names: tuple[str, ...] | None = None) -> dict:
    """Append program-transformation variants (`streamguard.data.transforms`) to each split in place.

    Only input records are transformed (not counterfactual twins); a variant keeps its parent's
    split and group, so it cannot leak across splits, and carries ``augmented_from`` (the parent's
    id) and ``transformation``. A variant whose code already exists (after normalisation) is
    skipped and counted like a duplicate twin. Returns the report's ``transformations`` block:
    the settings (``per_record``, ``names``: sorted, or None for all; ``splits``: sorted, or None
    for every split), ``made`` and ``skipped_*`` totals and, per ``"<language>/<name>"``, the count
    of each outcome (those of `streamguard.data.transforms.variants`, with ``skipped_present`` for a
    variant made but not kept: its code was already there, or it was too large).

    ``only``: the splits that get variants (default the training split, so that validation and test
    figures compare with and without augmentation; None: every split). ``names``: only these
    transformations (None: all).
    """
    from streamguard.data.transforms import variants

    outcomes: dict[str, dict[str, int]] = {}
    stats = AugmentStats()
    known: dict[str, tuple[str, int]] = {}
    ids = set()
    for records in splits.values():
        for rec in records:
            known.setdefault(dedup_key(rec), (rec["id"], rec["label"]))
            ids.add(rec["id"])
    made = 0
    for name, records in splits.items():
        if only is not None and name not in only:
            continue
        added = []
        for rec in records:
            if rec.get("origin") != "input" or rec.get("label") not in (0, 1):
                continue
            for v in variants(rec, seed, per_record, outcomes, names):
                out = {"id": f"{rec['id']}-t-{v.transformation.name}", "code": v.code, "label": v.label,
                       "language": rec["language"], "cwe": rec.get("cwe"), "group": rec["group"],
                       "source": rec.get("source"), "origin": "transformed", "augmented_from": rec["id"],
                       "transformation": v.transformation.name}
                if rec.get("license"):
                    out["license"] = rec["license"]
                key = f"{v.transformation.language}/{v.transformation.name}"
                if not _admit(out, known, ids, stats, max_code_bytes, name, kind="transformation"):
                    outcomes[key]["made"] -= 1
                    outcomes[key]["skipped_present"] = outcomes[key].get("skipped_present", 0) + 1
                    continue
                added.append(out)
                made += 1
        records.extend(added)
    return {"per_record": per_record, "names": None if names is None else sorted(set(names)),
            "splits": None if only is None else sorted(set(only)),
            "made": made, "skipped_duplicate": stats.skipped_duplicate, "skipped_conflict": stats.skipped_conflict,
            "skipped_too_large": stats.skipped_too_large, "skipped": stats.skipped,
            "by_transformation": {k: dict(sorted(v.items())) for k, v in sorted(outcomes.items())}}
