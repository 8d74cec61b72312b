"""`baseline.json`: the validation score distribution and input statistics of a trained model.

Drift detection (`streamguard.drift`) compares production inputs against it. Its core keys follow
that module's documented shape — `v`, `scores`, `code_length`, `graph_nodes` (optional),
`language_counts`, `cwe_counts` — computed over the same rows (missing language / cwe counted as
"unknown"). Summaries (quantiles, histograms) and the training split's statistics are added for
people reading the file.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import numpy as np

BASELINE_VERSION = 1
MAX_RAW_VALUES = 5000
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
SCORE_BINS = 20


def summary(values: Sequence[float]) -> dict | None:
    """Count, mean, std, min, max and quantiles of numeric values (None when empty)."""
    if not len(values):
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {"n": int(arr.size), "mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "max": float(arr.max()),
            "quantiles": {str(q): float(np.quantile(arr, q)) for q in QUANTILES}}


def score_histogram(scores: Sequence[float], bins: int = SCORE_BINS) -> dict:
    """Counts of scores in `bins` equal-width bins over [0, 1]."""
    counts, edges = np.histogram(np.asarray(scores, dtype=np.float64), bins=bins, range=(0.0, 1.0))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def input_statistics(samples: Sequence) -> dict:
    """Code length, graph size, language and CWE mix of a split (samples with `error` skipped)."""
    ok = [s for s in samples if s.error is None]
    nodes = [s.graph_nodes for s in ok if s.graph_nodes is not None]
    return {
        "n": len(ok),
        "code_length": summary([s.length() for s in ok]),
        "graph_nodes": summary(nodes),
        "language_counts": dict(Counter(s.language or "unknown" for s in ok)),
        "cwe_counts": dict(Counter(s.cwe or "unknown" for s in ok)),
        "label_counts": dict(Counter(str(s.label) for s in ok if s.label is not None)),
    }


def build_baseline(val_samples: Sequence, val_scores: Sequence[float], train_samples: Sequence, *,
                   model_type: str, threshold: float, seed: int = 0) -> dict:
    """The `baseline.json` content for a model validated on `val_samples` with `val_scores`.

    Raw per-row lists are capped at `MAX_RAW_VALUES` rows by a seeded random subset (the same rows
    for every list); summaries use every row.
    """
    rows = [(s, float(p)) for s, p in zip(val_samples, val_scores) if s.error is None]
    if len(rows) > MAX_RAW_VALUES:
        keep = sorted(random.Random(seed).sample(range(len(rows)), MAX_RAW_VALUES))
        raw = [rows[i] for i in keep]
    else:
        raw = rows
    baseline = {
        "v": BASELINE_VERSION,
        "scores": [p for _, p in raw],
        "code_length": [s.length() for s, _ in raw],
        "language_counts": dict(Counter(s.language or "unknown" for s, _ in rows)),
        "cwe_counts": dict(Counter(s.cwe or "unknown" for s, _ in rows)),
    }
    nodes = [s.graph_nodes for s, _ in raw if s.graph_nodes is not None]
    if nodes and len(nodes) == len(raw):
        baseline["graph_nodes"] = nodes
    all_scores = [p for _, p in rows]
    baseline.update({
        "model_type": model_type,
        "threshold": threshold,
        "n_validation": len(rows),
        "raw_values_capped_at": MAX_RAW_VALUES,
        "score_summary": summary(all_scores),
        "score_histogram": score_histogram(all_scores),
        "positive_rate": float(np.mean([p >= threshold for p in all_scores])) if all_scores else None,
        "inputs": {"validation": input_statistics(val_samples), "train": input_statistics(train_samples)},
    })
    return baseline
