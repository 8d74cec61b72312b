"""Statistical drift tests between the champion's training-time baseline and production inputs.

Each test is a small pure function returning a `DriftResult`, registered by name in `DRIFT_TESTS`.
`detect_drift` runs them per feature and summarises a `DriftReport`.

## `baseline.json` (written by the training entry into the model directory)
```
{"v": 1,
 "scores":          [float, ...],   # P(vulnerable) of every validation record
 "code_length":     [int, ...],     # len(code) in characters (Python str length) of every validation record
 "graph_nodes":     [int, ...],     # optional: graph["num_nodes"] of every validation record
 "language_counts": {"python": n, "java": n, ...},   # missing language counted as "unknown"
 "cwe_counts":      {"CWE-89": n, ...}}              # missing cwe counted as "unknown"
```
`input_statistics(records, scores=None)` computes the same shape from any records (feedback,
inference logs, prepared records), so both sides are measured one way.

Feedback over-represents flagged code, so its score distribution differs from a validation set's by
construction; feed `input_statistics` with inference logs where available, or leave `scores` out of
the tests for feedback-only monitoring.

## Tests and thresholds (each result has `drifted` and a `severity`: none / moderate / severe)
| test | statistic | moderate | drifted | severe |
|---|---|---|---|---|
| `psi` | PSI over 10 baseline-quantile bins | ≥ 0.1 | ≥ 0.2 | ≥ 0.5 |
| `ks` | two-sample KS D, asymptotic p | p < 0.05 | p < 0.01 | drifted and D ≥ 0.3 |
| `wasserstein` | W1 / baseline std | ≥ 0.05 | ≥ 0.1 | ≥ 0.5 |
| `categorical_shift` | PSI over categories, chi-square p | PSI ≥ 0.1 | PSI ≥ 0.2 and p < 0.01 | drifted and PSI ≥ 0.5 |
Every test needs `min_samples` (default 50) on each side; below it the result is
`drifted=False` with detail "insufficient samples".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

BASELINE_VERSION = 1
NUMERIC_FEATURES = ("scores", "code_length", "graph_nodes")
CATEGORICAL_FEATURES = ("language_counts", "cwe_counts")
DEFAULT_MIN_SAMPLES = 50
PSI_EPSILON = 1e-4
SEVERITY_ORDER = {"none": 0, "moderate": 1, "severe": 2}


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one drift test on one feature."""

    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    detail: str
    severity: str = "none"
    n_baseline: int = 0
    n_current: int = 0


@dataclass
class DriftReport:
    """All drift results, per feature, and their summary.

    Attributes:
        results: `{feature: [DriftResult, ...]}`.
        drifted: any test on any feature drifted.
        severity: the worst severity over all results ("none" | "moderate" | "severe").
        reasons: one line per drifted or moderate result, and per skipped feature.
    """

    results: dict[str, list[DriftResult]] = field(default_factory=dict)
    drifted: bool = False
    severity: str = "none"
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _insufficient(test: str, threshold: float, n_base: int, n_cur: int, min_samples: int) -> DriftResult | None:
    if n_base >= min_samples and n_cur >= min_samples:
        return None
    return DriftResult(test, None, None, threshold, False,
                       f"insufficient samples (baseline {n_base}, current {n_cur}; need {min_samples} each)",
                       "none", n_base, n_cur)


def _as_array(values: Iterable[float], name: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a flat list of numbers")
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def _psi_from_proportions(p_base: np.ndarray, p_cur: np.ndarray) -> float:
    # Empty bins would give log(0); clip to a small epsilon and renormalise.
    p_base = np.clip(p_base, PSI_EPSILON, None)
    p_cur = np.clip(p_cur, PSI_EPSILON, None)
    p_base, p_cur = p_base / p_base.sum(), p_cur / p_cur.sum()
    return float(np.sum((p_cur - p_base) * np.log(p_cur / p_base)))


def _severity(value: float, moderate: float, drifted: bool, severe: float) -> str:
    if drifted and value >= severe:
        return "severe"
    return "moderate" if drifted or value >= moderate else "none"


def psi(baseline: Sequence[float], current: Sequence[float], bins: int = 10, *,
        threshold: float = 0.2, moderate: float = 0.1, severe: float = 0.5,
        min_samples: int = DEFAULT_MIN_SAMPLES) -> DriftResult:
    """Population stability index over bins cut at the baseline's quantiles."""
    base, cur = _as_array(baseline, "baseline"), _as_array(current, "current")
    short = _insufficient("psi", threshold, base.size, cur.size, min_samples)
    if short:
        return short
    # Interior cut points at baseline quantiles; ties (discrete data) collapse duplicate edges.
    cuts = np.unique(np.quantile(base, np.linspace(0, 1, bins + 1)[1:-1]))
    n_bins = cuts.size + 1
    p_base = np.bincount(np.searchsorted(cuts, base, side="right"), minlength=n_bins) / base.size
    p_cur = np.bincount(np.searchsorted(cuts, cur, side="right"), minlength=n_bins) / cur.size
    value = _psi_from_proportions(p_base, p_cur)
    drifted = value >= threshold
    return DriftResult("psi", value, None, threshold, drifted,
                       f"PSI {value:.3f} over {n_bins} bins (drift at ≥ {threshold}, moderate at ≥ {moderate})",
                       _severity(value, moderate, drifted, severe), base.size, cur.size)


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: 2 Σ_{j≥1} (-1)^(j-1) exp(-2 j² lam²)."""
    if lam < 0.2:
        return 1.0  # the series converges slowly here and the sum is 1 to double precision
    total, sign = 0.0, 1.0
    for j in range(1, 101):
        term = sign * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-16 * max(total, 1e-300):
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


def ks_statistic(baseline: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov D = sup |F_baseline − F_current|."""
    a, b = np.sort(baseline), np.sort(current)
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks(baseline: Sequence[float], current: Sequence[float], *, alpha: float = 0.01,
       moderate_alpha: float = 0.05, severe_statistic: float = 0.3,
       min_samples: int = DEFAULT_MIN_SAMPLES) -> DriftResult:
    """Two-sample KS test with the asymptotic Kolmogorov p-value.

    Uses the effective sample size n = n1·n2/(n1+n2) with Stephens' small-sample correction
    λ = (√n + 0.12 + 0.11/√n)·D, accurate for n ≥ ~4 and all sizes allowed by `min_samples`.
    """
    base, cur = _as_array(baseline, "baseline"), _as_array(current, "current")
    short = _insufficient("ks", alpha, base.size, cur.size, min_samples)
    if short:
        return short
    d = ks_statistic(base, cur)
    en = math.sqrt(base.size * cur.size / (base.size + cur.size))
    p = kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
    drifted = p < alpha
    severity = "severe" if drifted and d >= severe_statistic else (
        "moderate" if drifted or p < moderate_alpha else "none")
    return DriftResult("ks", d, p, alpha, drifted,
                       f"KS D {d:.3f}, p {p:.3g} (drift at p < {alpha})", severity, base.size, cur.size)


def wasserstein_distance(baseline: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 distance between two empirical distributions: ∫ |F_a(x) − F_b(x)| dx."""
    a, b = np.sort(baseline), np.sort(current)
    points = np.sort(np.concatenate([a, b]))
    widths = np.diff(points)
    cdf_a = np.searchsorted(a, points[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, points[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def wasserstein(baseline: Sequence[float], current: Sequence[float], *, threshold: float = 0.1,
                moderate: float = 0.05, severe: float = 0.5,
                min_samples: int = DEFAULT_MIN_SAMPLES) -> DriftResult:
    """Wasserstein-1 distance in units of the baseline's standard deviation (scale-free)."""
    base, cur = _as_array(baseline, "baseline"), _as_array(current, "current")
    short = _insufficient("wasserstein", threshold, base.size, cur.size, min_samples)
    if short:
        return short
    raw = wasserstein_distance(base, cur)
    scale = float(np.std(base))
    # A constant baseline has no spread to normalise by; report the raw distance instead.
    unit = "baseline std" if scale > 0 else "raw units (constant baseline)"
    value = raw / scale if scale > 0 else raw
    drifted = value >= threshold
    return DriftResult("wasserstein", value, None, threshold, drifted,
                       f"W1 {raw:.4g} = {value:.3f} {unit} (drift at ≥ {threshold})",
                       _severity(value, moderate, drifted, severe), base.size, cur.size)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-square variable: the regularized upper incomplete gamma Q(dof/2, x/2)."""
    if dof <= 0:
        raise ValueError("dof must be positive")
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    log_prefix = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1.0:
        # Series for the lower function P(a, z), then Q = 1 − P.
        term = total = 1.0 / a
        k = a
        for _ in range(10_000):
            k += 1.0
            term *= z / k
            total += term
            if term < total * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Continued fraction for Q(a, z) (modified Lentz).
    tiny = 1e-300
    b = z + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_prefix) * h)


def categorical_shift(baseline_counts: Mapping[str, int], current_counts: Mapping[str, int], *,
                      threshold: float = 0.2, moderate: float = 0.1, severe: float = 0.5,
                      alpha: float = 0.01, min_samples: int = DEFAULT_MIN_SAMPLES) -> DriftResult:
    """Shift of a categorical mix: PSI over categories, gated by a chi-square homogeneity test.

    The chi-square test (2 × k table) keeps small samples from flagging noise; PSI measures size.
    The detail names the categories that moved most (total-variation share).
    """
    keys = sorted(set(baseline_counts) | set(current_counts))
    base = np.array([float(baseline_counts.get(k, 0)) for k in keys])
    cur = np.array([float(current_counts.get(k, 0)) for k in keys])
    if np.any(base < 0) or np.any(cur < 0):
        raise ValueError("categorical counts must be non-negative")
    n_base, n_cur = int(base.sum()), int(cur.sum())
    short = _insufficient("categorical_shift", threshold, n_base, n_cur, min_samples)
    if short:
        return short
    p_base, p_cur = base / n_base, cur / n_cur
    value = _psi_from_proportions(p_base, p_cur)
    if len(keys) > 1:
        table = np.vstack([base, cur])
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        chi2 = float(np.sum((table - expected) ** 2 / expected))
        p = chi2_sf(chi2, len(keys) - 1)
    else:
        p = 1.0  # one category on both sides: nothing can have shifted
    tv = 0.5 * float(np.abs(p_cur - p_base).sum())
    movers = sorted(zip(keys, p_cur - p_base), key=lambda kv: -abs(kv[1]))[:3]
    moved = ", ".join(f"{k} {d:+.1%}" for k, d in movers if abs(d) > 0)
    drifted = value >= threshold and p < alpha
    return DriftResult("categorical_shift", value, p, threshold, drifted,
                       f"PSI {value:.3f}, chi-square p {p:.3g}, total variation {tv:.3f}"
                       + (f" ({moved})" if moved else ""),
                       _severity(value, moderate, drifted, severe), n_base, n_cur)


DRIFT_TESTS: dict[str, Callable[..., DriftResult]] = {
    "psi": psi,
    "ks": ks,
    "wasserstein": wasserstein,
    "categorical_shift": categorical_shift,
}
CATEGORICAL_TESTS = frozenset({"categorical_shift"})
DEFAULT_TESTS = ("psi", "ks", "categorical_shift")


def input_statistics(records: Iterable[Any], scores: Iterable[float] | None = None) -> dict[str, Any]:
    """Baseline-shaped statistics of a set of records (see the module docstring).

    Args:
        records: mappings or objects with `code`, and optionally `language`, `cwe`, `score`,
            `graph` (`{"num_nodes": N}`).
        scores: model scores to use instead of the records' own `score` fields.
    """
    lengths: list[int] = []
    nodes: list[int] = []
    own_scores: list[float] = []
    languages: Counter[str] = Counter()
    cwes: Counter[str] = Counter()
    for rec in records:
        get = rec.get if isinstance(rec, Mapping) else (lambda k, _r=rec: getattr(_r, k, None))
        code = get("code")
        if isinstance(code, str):
            lengths.append(len(code))
        languages[get("language") or "unknown"] += 1
        cwes[get("cwe") or "unknown"] += 1
        score = get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            own_scores.append(float(score))
        graph = get("graph")
        if isinstance(graph, Mapping) and isinstance(graph.get("num_nodes"), int):
            nodes.append(graph["num_nodes"])
    stats: dict[str, Any] = {
        "v": BASELINE_VERSION,
        "scores": [float(s) for s in scores] if scores is not None else own_scores,
        "code_length": lengths,
        "language_counts": dict(languages),
        "cwe_counts": dict(cwes),
    }
    if nodes:
        stats["graph_nodes"] = nodes
    return stats


def _plan(tests: Mapping[str, Sequence[str]] | Sequence[str] | None) -> dict[str, list[str]]:
    """Which tests run on which feature."""
    if isinstance(tests, Mapping):
        plan = {feature: list(names) for feature, names in tests.items()}
    else:
        names = list(tests if tests is not None else DEFAULT_TESTS)
        numeric = [n for n in names if n not in CATEGORICAL_TESTS]
        categorical = [n for n in names if n in CATEGORICAL_TESTS]
        plan = {f: numeric for f in NUMERIC_FEATURES} | {f: categorical for f in CATEGORICAL_FEATURES}
    for feature, names in plan.items():
        for name in names:
            if name not in DRIFT_TESTS:
                raise ValueError(f"unknown drift test {name!r} for {feature!r}; known: {sorted(DRIFT_TESTS)}")
            if (name in CATEGORICAL_TESTS) != (feature in CATEGORICAL_FEATURES):
                raise ValueError(f"drift test {name!r} does not apply to feature {feature!r}")
    return {f: names for f, names in plan.items() if names}


def detect_drift(baseline: Mapping[str, Any], current: Mapping[str, Any], *,
                 tests: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
                 min_samples: int = DEFAULT_MIN_SAMPLES) -> DriftReport:
    """Run the drift tests on every feature present on both sides.

    Args:
        baseline: the champion's `baseline.json` content.
        current: `input_statistics(...)` of production records.
        tests: test names applied to every feature they fit (numeric or categorical), or
            `{feature: [test, ...]}`. Defaults to psi + ks on numeric, categorical_shift on mixes.
        min_samples: minimum size of each side for a test to decide.
    """
    report = DriftReport()
    def has_data(side: Mapping[str, Any], feature: str) -> bool:
        value = side.get(feature)
        return value is not None and len(value) > 0

    for feature, names in _plan(tests).items():
        if not has_data(baseline, feature) or not has_data(current, feature):
            side = "baseline" if not has_data(baseline, feature) else "current"
            report.reasons.append(f"{feature}: skipped, no data in {side}")
            continue
        results = [DRIFT_TESTS[name](baseline[feature], current[feature], min_samples=min_samples)
                   for name in names]
        report.results[feature] = results
        for res in results:
            if res.drifted or res.severity != "none":
                state = "drift" if res.drifted else "moderate shift, below the drift threshold"
                report.reasons.append(f"{feature}: {state} ({res.severity}) by {res.test}: {res.detail}")
    all_results = [r for rs in report.results.values() for r in rs]
    report.drifted = any(r.drifted for r in all_results)
    report.severity = max((r.severity for r in all_results), key=SEVERITY_ORDER.__getitem__, default="none")
    if not report.drifted and report.severity == "none":
        report.reasons.append(f"no drift: {len(all_results)} tests on {len(report.results)} features below thresholds")
    return report
