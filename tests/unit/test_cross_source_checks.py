"""`benchmarks/cross_source_checks.py`: TPR − FPR, the oracle threshold and the averages, on made-up runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cross_source_checks.py"
spec = importlib.util.spec_from_file_location("cross_source_checks", SCRIPT)
checks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks)


def _run(root: Path, name: str, scores: dict[str, tuple[int, float]]) -> Path:
    out = root / name / "runs" / "juliet_to_sven_gnn" / "output"
    out.mkdir(parents=True)
    (out / "predictions.jsonl").write_text("".join(
        json.dumps({"id": k, "label": y, "score": s}) + "\n" for k, (y, s) in scores.items()))
    return root / name


def test_youden_and_the_oracle_threshold():
    labels = {"a": 1, "b": 1, "c": 0, "d": 0}
    scores = {"a": 0.9, "b": 0.3, "c": 0.4, "d": 0.1}
    assert checks.youden(labels, scores) == pytest.approx(0.5)        # TPR 1/2, FPR 0
    assert checks.oracle(labels, scores) == (pytest.approx(0.5), 0.9)  # no threshold does better here
    scores["c"] = 0.2
    assert checks.oracle(labels, scores) == (pytest.approx(1.0), 0.3)


def test_the_script_prints_each_run_the_mean_and_the_pairs(tmp_path, capsys):
    one = _run(tmp_path, "s1", {"a": (1, 0.9), "b": (1, 0.2), "c": (0, 0.1), "d": (0, 0.6)})
    two = _run(tmp_path, "s2", {"a": (1, 0.7), "b": (1, 0.9), "c": (0, 0.1), "d": (0, 0.2)})
    other = _run(tmp_path, "t", {"a": (1, 0.0), "b": (1, 0.1), "c": (0, 0.1), "d": (0, 0.1)})
    assert checks.main(["--runs", str(one), str(two), "--other", str(other)]) == 0
    out = capsys.readouterr().out
    assert "| s1 | 0.000 | 0.500 | 0.900 |" in out      # TPR 1/2 − FPR 1/2 at 0.5
    assert "| s2 | 1.000 | 1.000 | 0.700 |" in out
    assert "| mean of s1, s2 | 1.000 |" in out          # a 0.80, b 0.55, c 0.10, d 0.40
    assert "| t alone | 0.000 |" in out
    assert "| mean of s1 and t | 0.000 |" in out        # a 0.45, b 0.15, c 0.10, d 0.35: nothing flagged
    assert "| mean of s2 and t | 0.500 |" in out        # a 0.35, b 0.50, c 0.10, d 0.15: TPR 1/2, FPR 0


def test_runs_over_different_functions_are_refused(tmp_path):
    one = _run(tmp_path, "s1", {"a": (1, 0.9), "b": (0, 0.1)})
    two = _run(tmp_path, "s2", {"a": (1, 0.9), "c": (0, 0.1)})
    with pytest.raises(SystemExit, match="different functions"):
        checks.main(["--runs", str(one), str(two)])
