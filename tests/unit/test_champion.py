"""Champion/challenger comparison: exact McNemar, paired bootstrap, promotion rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamguard.champion import (
    EXACT_LIMIT,
    PredictionMismatchError,
    compare_models,
    mcnemar_exact,
    paired_bootstrap_ci,
)


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(0, 10) == pytest.approx(2 * 0.5**10, rel=1e-15)
    assert mcnemar_exact(10, 0) == mcnemar_exact(0, 10)
    # b=1, c=9: 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024, rel=1e-15)
    # b=2, c=8: 2 * (1 + 10 + 45) / 1024 = 112 / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024, rel=1e-15)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_mcnemar_log_space_agrees_with_exact_integers():
    n = EXACT_LIMIT + 2
    k = n // 2 - 40
    exact = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    assert mcnemar_exact(k, n - k) == pytest.approx(exact, rel=1e-9)


def test_paired_bootstrap_ci_covers_the_truth():
    # Population: challenger right where champion is wrong with p=0.10, the reverse with p=0.05.
    true_gain = 0.05
    rng = np.random.default_rng(1)
    covered = 0
    trials = 200
    for t in range(trials):
        u = rng.random(1000)
        champ = ~((u < 0.10) | (u > 0.85))  # wrong on the first 10% and the last 15%
        chall = ~((u >= 0.10) & (u < 0.15) | (u > 0.85))  # wrong on 5% + the shared 15%
        lo, hi = paired_bootstrap_ci(champ, chall, n_boot=1000, seed=t)
        covered += lo <= true_gain <= hi
    assert 0.90 <= covered / trials <= 0.99


def test_paired_bootstrap_is_seeded():
    champ = [True] * 80 + [False] * 20
    chall = [True] * 90 + [False] * 10
    assert paired_bootstrap_ci(champ, chall, seed=3) == paired_bootstrap_ci(champ, chall, seed=3)
    lo, hi = paired_bootstrap_ci(champ, chall, seed=3)
    assert lo <= 0.10 <= hi


def make_preds(n: int, correct: np.ndarray, *, labels: np.ndarray, cwe=None, language=None) -> list[dict]:
    rows = []
    for i in range(n):
        pred = int(labels[i]) if correct[i] else 1 - int(labels[i])
        row = {"id": f"r{i}", "label": int(labels[i]), "score": 0.9 if pred else 0.1, "pred": pred}
        if cwe is not None:
            row["cwe"] = cwe[i]
        if language is not None:
            row["language"] = language[i]
        rows.append(row)
    return rows


@pytest.fixture()
def setup():
    n = 1000
    labels = np.array([i % 2 for i in range(n)])
    cwe = ["CWE-89" if i < 600 else "CWE-78" for i in range(n)]
    return n, labels, cwe


def test_better_challenger_is_promoted(setup):
    n, labels, cwe = setup
    champ_ok = np.ones(n, dtype=bool)
    champ_ok[::10] = False                      # 90% accurate
    chall_ok = champ_ok.copy()
    chall_ok[::20] = True                       # fixes half its errors: 95%
    decision = compare_models(make_preds(n, champ_ok, labels=labels, cwe=cwe),
                              make_preds(n, chall_ok, labels=labels, cwe=cwe))
    assert decision.promote, decision.reasons
    assert decision.mcnemar["b"] == 0 and decision.mcnemar["c"] == 50
    assert decision.accuracy_gain == pytest.approx(0.05)
    assert decision.bootstrap_ci[0] > 0
    assert decision.reasons[0] == "promote challenger"
    boot = compare_models(make_preds(n, champ_ok, labels=labels, cwe=cwe),
                          make_preds(n, chall_ok, labels=labels, cwe=cwe), method="bootstrap")
    assert boot.promote


def test_equal_models_are_rejected(setup):
    n, labels, cwe = setup
    ok = np.ones(n, dtype=bool)
    ok[::10] = False
    decision = compare_models(make_preds(n, ok, labels=labels, cwe=cwe), make_preds(n, ok, labels=labels, cwe=cwe))
    assert not decision.promote and decision.mcnemar["p_value"] == 1.0
    assert decision.reasons[0] == "keep champion"


def test_small_insignificant_gain_is_rejected(setup):
    n, labels, cwe = setup
    champ_ok = np.ones(n, dtype=bool)
    champ_ok[::10] = False
    chall_ok = champ_ok.copy()
    # 20 fixes and 10 new errors: gain 0.01 = min_gain, but McNemar p(10, 20) ≈ 0.099
    chall_ok[0:200:10] = True
    chall_ok[1:101:10] = False
    d = compare_models(make_preds(n, champ_ok, labels=labels, cwe=cwe), make_preds(n, chall_ok, labels=labels, cwe=cwe))
    assert d.mcnemar["b"] == 10 and d.mcnemar["c"] == 20
    assert d.accuracy_gain == pytest.approx(0.01)
    assert d.mcnemar["p_value"] > 0.05 and not d.promote


def test_slice_regression_blocks_promotion(setup):
    n, labels, cwe = setup
    champ_ok = np.ones(n, dtype=bool)
    champ_ok[::10] = False
    chall_ok = np.ones(n, dtype=bool)           # fixes all 60 errors on CWE-89 ...
    chall_ok[600::10] = False                   # ... keeps the champion's 40 on CWE-78 (400 records)
    chall_ok[601:801:10] = False                # ... and adds 20: 0.90 → 0.85 there
    d = compare_models(make_preds(n, champ_ok, labels=labels, cwe=cwe), make_preds(n, chall_ok, labels=labels, cwe=cwe))
    assert d.accuracy_gain == pytest.approx(0.04) and d.mcnemar["p_value"] < 1e-5  # better overall
    assert not d.promote
    assert [(r["key"], r["value"]) for r in d.slice_regressions] == [("cwe", "CWE-78")]
    assert d.slice_regressions[0]["drop"] == pytest.approx(0.05)
    assert any("slice cwe=CWE-78 (n=400) accuracy 0.900 → 0.850" in r for r in d.reasons)
    assert compare_models(make_preds(n, champ_ok, labels=labels, cwe=cwe),
                          make_preds(n, chall_ok, labels=labels, cwe=cwe), slice_tolerance=0.06).promote


def test_small_slices_are_not_judged(setup):
    n, labels, _ = setup
    cwe = ["CWE-89"] * (n - 10) + ["CWE-22"] * 10
    champ_ok = np.ones(n, dtype=bool)
    champ_ok[: n - 10: 10] = False
    chall_ok = np.ones(n, dtype=bool)
    chall_ok[n - 10:] = False                   # tiny slice fully broken, below min_slice_n
    d = compare_models(make_preds(n, champ_ok, labels=labels, cwe=cwe), make_preds(n, chall_ok, labels=labels, cwe=cwe))
    assert d.slice_regressions == [] and d.promote


def test_language_slices_come_from_metadata(setup):
    n, labels, _ = setup
    champ_ok = np.ones(n, dtype=bool)
    champ_ok[::10] = False
    chall_ok = np.ones(n, dtype=bool)
    chall_ok[:60] = False                       # python (first 100) collapses
    meta = {f"r{i}": {"language": "python" if i < 100 else "java"} for i in range(n)}
    d = compare_models(make_preds(n, champ_ok, labels=labels), make_preds(n, chall_ok, labels=labels),
                       metadata=meta)
    assert not d.promote and d.slice_regressions[0]["value"] == "python"
    assert any("slice cwe: no records carry it" in r for r in d.reasons)


def test_fpr_rise_blocks_promotion(setup):
    n, labels, cwe = setup
    champ_ok = np.ones(n, dtype=bool)
    champ_ok[1::10] = False                     # errors on positives only (odd ids are label 1)
    chall_ok = np.ones(n, dtype=bool)
    chall_ok[0:100:10] = False                  # 10 false positives on negatives, positives fixed
    d = compare_models(make_preds(n, champ_ok, labels=labels, cwe=cwe), make_preds(n, chall_ok, labels=labels, cwe=cwe))
    assert d.accuracy_gain == pytest.approx(0.09)
    assert d.fpr_rise == pytest.approx(10 / 500)
    assert not d.promote and any("fpr change +0.0200 > 0.005" in r for r in d.reasons)


def test_mismatched_ids_raise_a_clear_error(setup):
    n, labels, cwe = setup
    ok = np.ones(n, dtype=bool)
    champ = make_preds(n, ok, labels=labels)
    chall = make_preds(n, ok, labels=labels)[3:] + [{"id": "extra", "label": 1, "pred": 1}]
    with pytest.raises(PredictionMismatchError, match="3 ids only in champion .* 1 only in challenger"):
        compare_models(champ, chall)
    relabelled = [dict(r, label=1 - r["label"]) if r["id"] == "r5" else r for r in make_preds(n, ok, labels=labels)]
    with pytest.raises(PredictionMismatchError, match="different labels"):
        compare_models(champ, relabelled)
    with pytest.raises(ValueError, match="duplicate id"):
        compare_models(champ + champ[:1], chall)


def test_pred_from_score_when_missing():
    champ = [{"id": str(i), "label": i % 2, "score": 0.8 if i % 2 else 0.2} for i in range(40)]
    chall = [dict(r) for r in champ]
    d = compare_models(champ, chall, slice_keys=())
    assert d.champion_metrics["accuracy"] == 1.0 and not d.promote


def test_metrics_have_the_metrics_json_shape(setup):
    n, labels, cwe = setup
    ok = np.ones(n, dtype=bool)
    ok[::4] = False                             # every 4th id is even: half the negatives flagged
    d = compare_models(make_preds(n, ok, labels=labels), make_preds(n, ok, labels=labels))
    m = d.champion_metrics
    assert set(m) == {"n", "accuracy", "precision", "recall", "f1", "fpr", "roc_auc", "confusion_matrix"}
    assert m["confusion_matrix"] == [[250, 250], [0, 500]]
    assert (m["accuracy"], m["fpr"], m["recall"], m["precision"]) == (0.75, 0.5, 1.0, 500 / 750)
    # positives all score 0.9; negatives half 0.9, half 0.1: AUC = 0.5 + 0.5 * 0.5 (ties count half)
    assert m["roc_auc"] == pytest.approx(0.75)
