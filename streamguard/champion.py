"""Champion/challenger comparison on one frozen test set: promote only a clear, safe improvement.

Both models' predictions (`predictions.jsonl` rows from the entry's evaluate mode: `id`, `label`,
`score`, `pred`, optionally `cwe`, `language`) are paired by `id`. The challenger is promoted when
all of these hold:
1. accuracy gain ≥ `min_gain`;
2. FPR rise ≤ `max_fpr_rise`;
3. the gain is significant: exact McNemar p < `alpha` on the discordant pairs (`method="mcnemar"`),
   or the paired-bootstrap (1 − alpha) CI of the gain lies above zero (`method="bootstrap"`);
4. no slice (each value of `cwe` and `language` with ≥ `min_slice_n` records) loses more than
   `slice_tolerance` accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from streamguard.core.metrics import roc_auc

EXACT_LIMIT = 1000  # discordant pairs up to which the binomial tail is summed with exact integers


class PredictionMismatchError(ValueError):
    """Champion and challenger predictions do not cover the same test records."""


@dataclass
class PromotionDecision:
    """The outcome of `compare_models`; `reasons` lists every check, passed or failed."""

    promote: bool
    reasons: list[str]
    champion_metrics: dict[str, Any]
    challenger_metrics: dict[str, Any]
    mcnemar: dict[str, Any]
    bootstrap_ci: tuple[float, float]
    accuracy_gain: float
    fpr_rise: float | None
    method: str
    slice_regressions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: 2·P(X ≤ min(b, c)) for X ~ Binomial(b + c, 1/2), capped at 1.

    Args:
        b: pairs the champion got right and the challenger wrong.
        c: pairs the challenger got right and the champion wrong.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be ≥ 0, got b={b}, c={c}")
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    if n <= EXACT_LIMIT:
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    else:
        # log-space: log C(n, i) − n·log 2, summed with the log-sum-exp trick.
        logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
                for i in range(k + 1)]
        top = max(logs)
        tail = math.exp(top) * sum(math.exp(x - top) for x in logs)
    return min(1.0, 2.0 * tail)


def paired_bootstrap_ci(champion_correct: Sequence[bool], challenger_correct: Sequence[bool], *,
                        n_boot: int = 5000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the accuracy gain (challenger − champion) under paired resampling.

    The gain of a resample depends only on how many pairs of each kind (challenger-only right,
    champion-only right, agreement) it draws, so resamples are drawn as multinomial counts:
    the same distribution as resampling indices, in O(n_boot).
    """
    champ = np.asarray(champion_correct, dtype=bool)
    chall = np.asarray(challenger_correct, dtype=bool)
    if champ.shape != chall.shape or champ.ndim != 1 or champ.size == 0:
        raise ValueError("champion_correct and challenger_correct must be equal-length, non-empty")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = champ.size
    wins = int(np.sum(chall & ~champ))
    losses = int(np.sum(champ & ~chall))
    probs = np.array([wins, losses, n - wins - losses], dtype=float) / n
    draws = np.random.default_rng(seed).multinomial(n, probs, size=n_boot)
    gains = (draws[:, 0] - draws[:, 1]) / n
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(gains, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _metrics(labels: np.ndarray, preds: np.ndarray, scores: list[Any]) -> dict[str, Any]:
    """metrics.json-shaped metrics of 0/1 predictions; rates are None on an empty denominator."""
    tp = int(np.sum((preds == 1) & (labels == 1)))
    tn = int(np.sum((preds == 0) & (labels == 0)))
    fp = int(np.sum((preds == 1) & (labels == 0)))
    fn = int(np.sum((preds == 0) & (labels == 1)))
    n = tp + tn + fp + fn

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    has_scores = all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)
    return {"n": n, "accuracy": ratio(tp + tn, n), "precision": precision, "recall": recall, "f1": f1,
            "fpr": ratio(fp, fp + tn), "roc_auc": roc_auc(labels.tolist(), scores) if has_scores else None,
            "confusion_matrix": [[tn, fp], [fn, tp]]}


def _index(rows: Iterable[Mapping[str, Any]], side: str, threshold: float) -> dict[str, dict[str, Any]]:
    """Rows by id with a 0/1 `pred` (from `score` ≥ threshold when `pred` is absent)."""
    out: dict[str, dict[str, Any]] = {}
    for pos, row in enumerate(rows, start=1):
        if "id" not in row or row["id"] is None:
            raise ValueError(f"{side} prediction #{pos}: missing 'id'")
        key = str(row["id"])
        if key in out:
            raise ValueError(f"{side} predictions: duplicate id {key!r}")
        label = row.get("label")
        if label not in (0, 1):
            raise ValueError(f"{side} prediction {key!r}: 'label' must be 0 or 1, got {label!r}")
        pred = row.get("pred")
        if pred is None:
            if not isinstance(row.get("score"), (int, float)):
                raise ValueError(f"{side} prediction {key!r}: needs 'pred' or a numeric 'score'")
            pred = int(row["score"] >= threshold)
        if pred not in (0, 1):
            raise ValueError(f"{side} prediction {key!r}: 'pred' must be 0 or 1, got {pred!r}")
        out[key] = {**row, "label": int(label), "pred": int(pred)}
    return out


def _pair(champion_preds: Iterable[Mapping[str, Any]], challenger_preds: Iterable[Mapping[str, Any]],
          threshold: float) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    champ = _index(champion_preds, "champion", threshold)
    chall = _index(challenger_preds, "challenger", threshold)
    only_champ = sorted(set(champ) - set(chall))
    only_chall = sorted(set(chall) - set(champ))
    if only_champ or only_chall:
        raise PredictionMismatchError(
            f"predictions cover different test records: {len(only_champ)} ids only in champion "
            f"(e.g. {only_champ[:3]}), {len(only_chall)} only in challenger (e.g. {only_chall[:3]}); "
            "evaluate both models on the same frozen test set")
    if not champ:
        raise ValueError("no predictions to compare")
    ids = sorted(champ)
    wrong = [i for i in ids if champ[i]["label"] != chall[i]["label"]]
    if wrong:
        raise PredictionMismatchError(
            f"{len(wrong)} ids carry different labels in the two prediction sets (e.g. {wrong[:3]}); "
            "they were not evaluated on the same test set")
    return ids, champ, chall


def _slice_regressions(ids: list[str], champ: dict[str, dict[str, Any]], chall: dict[str, dict[str, Any]],
                       metadata: Mapping[str, Mapping[str, Any]], keys: Sequence[str],
                       tolerance: float, min_n: int) -> tuple[list[dict[str, Any]], list[str]]:
    regressions: list[dict[str, Any]] = []
    notes: list[str] = []
    for key in keys:
        groups: dict[str, list[str]] = {}
        for i in ids:
            value = champ[i].get(key) or chall[i].get(key) or metadata.get(i, {}).get(key)
            if value is not None:
                groups.setdefault(str(value), []).append(i)
        if not groups:
            notes.append(f"slice {key}: no records carry it, not checked")
            continue
        checked = 0
        for value, members in sorted(groups.items()):
            if len(members) < min_n:
                continue
            checked += 1
            acc_a = sum(champ[i]["pred"] == champ[i]["label"] for i in members) / len(members)
            acc_b = sum(chall[i]["pred"] == chall[i]["label"] for i in members) / len(members)
            if acc_a - acc_b > tolerance:
                regressions.append({"key": key, "value": value, "n": len(members),
                                    "champion_accuracy": acc_a, "challenger_accuracy": acc_b,
                                    "drop": acc_a - acc_b})
        notes.append(f"slice {key}: {checked} of {len(groups)} values with ≥ {min_n} records checked")
    return regressions, notes


def compare_models(champion_preds: Iterable[Mapping[str, Any]], challenger_preds: Iterable[Mapping[str, Any]],
                   *, min_gain: float = 0.01, max_fpr_rise: float = 0.005, alpha: float = 0.05,
                   slice_keys: Sequence[str] | str = ("cwe", "language"), slice_tolerance: float = 0.02,
                   min_slice_n: int = 20, method: str = "mcnemar", n_boot: int = 5000, seed: int = 0,
                   threshold: float = 0.5,
                   metadata: Mapping[str, Mapping[str, Any]] | None = None) -> PromotionDecision:
    """Decide whether the challenger replaces the champion (see the module docstring).

    Args:
        metadata: `{id: {"cwe": ..., "language": ...}}` for slices when the prediction rows lack them
            (e.g. joined from the test channel).
        threshold: turns `score` into `pred` for rows without `pred`.

    Raises:
        PredictionMismatchError: the two sets differ in ids or labels.
    """
    if method not in ("mcnemar", "bootstrap"):
        raise ValueError(f"method must be 'mcnemar' or 'bootstrap', got {method!r}")
    keys = (slice_keys,) if isinstance(slice_keys, str) else tuple(slice_keys)
    ids, champ, chall = _pair(champion_preds, challenger_preds, threshold)
    labels = np.array([champ[i]["label"] for i in ids])
    pred_a = np.array([champ[i]["pred"] for i in ids])
    pred_b = np.array([chall[i]["pred"] for i in ids])
    m_a = _metrics(labels, pred_a, [champ[i].get("score") for i in ids])
    m_b = _metrics(labels, pred_b, [chall[i].get("score") for i in ids])
    right_a, right_b = pred_a == labels, pred_b == labels
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(right_b & ~right_a))
    p_value = mcnemar_exact(b, c)
    ci = paired_bootstrap_ci(right_a, right_b, n_boot=n_boot, confidence=1.0 - alpha, seed=seed)
    gain = m_b["accuracy"] - m_a["accuracy"]
    fpr_rise = None if m_a["fpr"] is None or m_b["fpr"] is None else m_b["fpr"] - m_a["fpr"]

    reasons: list[str] = []
    ok_gain = gain >= min_gain
    reasons.append(f"accuracy gain {gain:+.4f} {'≥' if ok_gain else '<'} {min_gain} "
                   f"({m_a['accuracy']:.4f} → {m_b['accuracy']:.4f}, n={len(ids)})")
    ok_fpr = fpr_rise is None or fpr_rise <= max_fpr_rise
    reasons.append("fpr not defined (no negatives), not checked" if fpr_rise is None else
                   f"fpr change {fpr_rise:+.4f} {'≤' if ok_fpr else '>'} {max_fpr_rise}")
    if method == "mcnemar":
        ok_sig = p_value < alpha and c > b
        reasons.append(f"McNemar exact p {p_value:.4g} (b={b} champion-only right, c={c} challenger-only "
                       f"right) {'<' if p_value < alpha else '≥'} {alpha}"
                       + ("" if c > b or p_value >= alpha else ", in the champion's favour"))
    else:
        ok_sig = ci[0] > 0
        reasons.append(f"paired bootstrap {1 - alpha:.0%} CI of the gain [{ci[0]:+.4f}, {ci[1]:+.4f}] "
                       f"{'above' if ok_sig else 'not above'} zero")
    regressions, notes = _slice_regressions(ids, champ, chall, metadata or {}, keys, slice_tolerance, min_slice_n)
    reasons.extend(notes)
    for reg in regressions:
        reasons.append(f"slice {reg['key']}={reg['value']} (n={reg['n']}) accuracy "
                       f"{reg['champion_accuracy']:.3f} → {reg['challenger_accuracy']:.3f}, "
                       f"drop {reg['drop']:.3f} > {slice_tolerance}")
    promote = ok_gain and ok_fpr and ok_sig and not regressions
    reasons.insert(0, "promote challenger" if promote else "keep champion")
    return PromotionDecision(promote, reasons, m_a, m_b, {"b": b, "c": c, "p_value": p_value}, ci,
                             gain, fpr_rise, method, regressions)
