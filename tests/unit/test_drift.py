"""Drift tests on constructed data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamguard.drift import (
    DRIFT_TESTS,
    categorical_shift,
    chi2_sf,
    detect_drift,
    input_statistics,
    kolmogorov_sf,
    ks,
    ks_statistic,
    psi,
    wasserstein,
    wasserstein_distance,
)


@pytest.fixture(scope="module")
def normals():
    rng = np.random.default_rng(7)
    return rng.normal(0, 1, 3000), rng.normal(0, 1, 3000), rng.normal(0.8, 1, 3000)


def test_registry_names_every_test():
    assert set(DRIFT_TESTS) == {"psi", "ks", "wasserstein", "categorical_shift"}


def test_psi_identical_is_zero_and_shift_is_large(normals):
    base, same, shifted = normals
    assert psi(base, base).statistic == pytest.approx(0.0, abs=1e-12)
    same_res = psi(base, same)
    assert same_res.statistic < 0.02 and not same_res.drifted and same_res.severity == "none"
    res = psi(base, shifted)
    assert res.statistic > 0.2 and res.drifted


def test_psi_known_value_on_two_bins():
    # Baseline splits 50/50 at its median; current puts 80% in the lower bin.
    base = [0.0] * 50 + [1.0] * 50
    cur = [0.0] * 80 + [1.0] * 20
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(base, cur, bins=2).statistic == pytest.approx(expected, rel=1e-3)


def test_psi_moderate_band():
    base = [0.0] * 500 + [1.0] * 500
    cur = [0.0] * 580 + [1.0] * 420  # PSI ≈ 0.026
    cur2 = [0.0] * 650 + [1.0] * 350  # PSI ≈ 0.093
    cur3 = [0.0] * 670 + [1.0] * 330  # PSI ≈ 0.120: moderate, not drifted
    assert psi(base, cur, bins=2).severity == "none"
    assert psi(base, cur2, bins=2).severity == "none"
    res = psi(base, cur3, bins=2)
    assert 0.1 <= res.statistic < 0.2 and res.severity == "moderate" and not res.drifted


def test_ks_statistic_and_pvalues(normals):
    base, same, shifted = normals
    assert ks_statistic(np.array([1.0, 2, 3]), np.array([4.0, 5, 6])) == 1.0
    assert ks_statistic(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6])) == 0.5
    same_res = ks(base, same)
    assert same_res.p_value > 0.01 and not same_res.drifted
    res = ks(base, shifted)
    assert res.p_value < 1e-10 and res.drifted and res.severity == "severe"


def test_kolmogorov_distribution_known_quantiles():
    # Classical critical values of the Kolmogorov distribution.
    assert kolmogorov_sf(1.3581) == pytest.approx(0.05, abs=1e-4)
    assert kolmogorov_sf(1.6276) == pytest.approx(0.01, abs=1e-4)
    assert kolmogorov_sf(0.1) == 1.0


def test_ks_false_alarm_rate_is_near_alpha():
    rng = np.random.default_rng(11)
    alarms = sum(ks(rng.normal(size=200), rng.normal(size=200), alpha=0.05).drifted for _ in range(300))
    assert alarms / 300 < 0.09


def test_insufficient_samples_never_drift():
    res = ks(list(range(100)), [1000.0] * 10)
    assert not res.drifted and res.p_value is None and "insufficient samples" in res.detail
    assert "insufficient" in psi([0.0] * 10, [5.0] * 100).detail


def test_wasserstein_known_values():
    assert wasserstein_distance(np.array([0.0, 1, 2, 3, 4]), np.array([1.0, 2, 3, 4, 5])) == pytest.approx(1.0)
    assert wasserstein_distance(np.array([0.0, 0]), np.array([0.0, 2])) == pytest.approx(1.0)
    base = np.arange(100, dtype=float)
    res = wasserstein(base, base + 5.0)  # std of 0..99 is 28.87: 5 / 28.87 = 0.173 std
    assert res.statistic == pytest.approx(5.0 / np.std(base)) and res.drifted
    scaled = wasserstein(base * 1000, base * 1000 + 5000.0)  # the same shift in other units
    assert scaled.statistic == pytest.approx(res.statistic)
    small = wasserstein(base, base + 2.0)  # 0.069 std: moderate, below the drift threshold
    assert not small.drifted and small.severity == "moderate"
    assert wasserstein([3.0] * 60, [4.0] * 60).statistic == pytest.approx(1.0)  # constant: raw units


def test_chi2_survival_known_values():
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(10.0, 5) == pytest.approx(0.0752352461, rel=1e-8)
    assert chi2_sf(0.5, 3) == pytest.approx(0.9188914117, rel=1e-8)
    assert chi2_sf(2.0, 2) == pytest.approx(math.exp(-1.0), rel=1e-12)


def test_categorical_shift():
    base = {"python": 500, "java": 500}
    moved = categorical_shift(base, {"python": 800, "java": 200})
    assert moved.drifted and moved.p_value < 1e-10 and "python +30.0%" in moved.detail
    steady = categorical_shift(base, {"python": 52, "java": 48})
    assert not steady.drifted and steady.p_value > 0.5
    # A big-looking PSI on a tiny-but-allowed sample is not significant: no drift.
    noisy = categorical_shift(base, {"python": 8, "java": 2}, min_samples=10)
    assert noisy.statistic > 0.4 and noisy.p_value > 0.01 and not noisy.drifted
    new_category = categorical_shift(base, {"python": 300, "java": 300, "go": 400})
    assert new_category.drifted and new_category.severity == "severe"


def _baseline(rng, n=2000):
    return {"v": 1, "scores": rng.beta(2, 5, n).tolist(),
            "code_length": rng.integers(50, 2000, n).tolist(),
            "language_counts": {"python": n // 2, "java": n // 2},
            "cwe_counts": {"CWE-89": n // 2, "CWE-78": n // 2}}


def test_detect_drift_no_drift_and_drift():
    rng = np.random.default_rng(3)
    baseline = _baseline(rng)
    steady = _baseline(rng, 1500)
    report = detect_drift(baseline, steady)
    assert not report.drifted and report.severity == "none"
    assert "graph_nodes: skipped, no data in baseline" in report.reasons
    assert set(report.results) == {"scores", "code_length", "language_counts", "cwe_counts"}

    drifted = dict(steady, scores=rng.beta(5, 2, 1500).tolist(), language_counts={"python": 1400, "java": 100})
    report = detect_drift(baseline, drifted)
    assert report.drifted and report.severity == "severe"
    assert any(r.startswith("scores: drift") for r in report.reasons)
    assert any(r.startswith("language_counts: drift") for r in report.reasons)
    assert not any(r.startswith("code_length") for r in report.reasons)


def test_detect_drift_custom_plan_and_errors():
    rng = np.random.default_rng(4)
    baseline = _baseline(rng)
    report = detect_drift(baseline, _baseline(rng), tests={"scores": ["wasserstein"]})
    assert list(report.results) == ["scores"] and report.results["scores"][0].test == "wasserstein"
    with pytest.raises(ValueError, match="unknown drift test"):
        detect_drift(baseline, baseline, tests=["nope"])
    with pytest.raises(ValueError, match="does not apply"):
        detect_drift(baseline, baseline, tests={"scores": ["categorical_shift"]})


def test_input_statistics_shape():
    stats = input_statistics([
        {"code": "abc", "language": "python", "cwe": "CWE-89", "score": 0.9, "graph": {"num_nodes": 7}},
        {"code": "abcdef", "language": None},
    ])
    assert stats == {"v": 1, "scores": [0.9], "code_length": [3, 6],
                     "language_counts": {"python": 1, "unknown": 1},
                     "cwe_counts": {"CWE-89": 1, "unknown": 1}, "graph_nodes": [7]}
    assert input_statistics([{"code": "x"}], scores=[0.1])["scores"] == [0.1]


def test_input_statistics_of_ingested_feedback():
    from streamguard.feedback import ingest_feedback

    batch = ingest_feedback([{"code": "x = 1", "score": 0.8, "verdict": "confirmed", "model_version": "1",
                              "timestamp": "2025-05-01T00:00:00Z", "language": "python", "cwe": 89}])
    stats = input_statistics(batch.feedback)
    assert stats["scores"] == [0.8] and stats["code_length"] == [5]
    assert stats["language_counts"] == {"python": 1} and stats["cwe_counts"] == {"CWE-89": 1}
