"""The metric gate: pass, each threshold failing with its reason, missing metrics, overrides."""

from __future__ import annotations

import math

import pytest

from streamguard.gate import (
    DEFAULT_THRESHOLDS,
    GIB,
    MIB,
    GateConfigError,
    GateThresholds,
    evaluate_gate,
    thresholds_for,
)


def metrics(val_acc=0.95, val_fpr=0.01, val_f1=0.94, test=True, test_acc=0.94, test_fpr=0.02) -> dict:
    out = {"validation": {"n": 100, "accuracy": val_acc, "fpr": val_fpr, "f1": val_f1}}
    if test:
        out["test"] = {"n": 100, "accuracy": test_acc, "fpr": test_fpr, "f1": 0.9}
    return out


def test_defaults():
    assert DEFAULT_THRESHOLDS["gnn"] == GateThresholds(0.92, 0.03, 500 * MIB)
    assert DEFAULT_THRESHOLDS["transformer"] == GateThresholds(0.88, 0.03, 2 * GIB)


def test_passing_model():
    decision = evaluate_gate("gnn", metrics(), 10 * MIB)
    assert decision.passed and decision.reasons == []
    assert [c["name"] for c in decision.checks] == ["validation.accuracy", "validation.fpr", "test.fpr", "model_bytes"]
    assert all(c["passed"] for c in decision.checks)
    assert decision.thresholds["min_val_accuracy"] == 0.92
    assert decision.to_dict()["model_type"] == "gnn"


def test_boundary_values_pass():
    assert evaluate_gate("gnn", metrics(val_acc=0.92, val_fpr=0.03, test_fpr=0.03), 500 * MIB).passed


@pytest.mark.parametrize("kwargs, size, reason", [
    ({"val_acc": 0.91}, 1, "validation accuracy 0.9100 is below the minimum 0.9200"),
    ({"val_fpr": 0.05}, 1, "validation false-positive rate 0.0500 is above the maximum 0.0300"),
    ({"test_fpr": 0.04}, 1, "test false-positive rate 0.0400 is above the maximum 0.0300"),
    ({}, 501 * MIB, "model size 501.0 MiB (525336576 bytes) is above the gnn limit 500.0 MiB"),
])
def test_each_threshold_fails_with_reason(kwargs, size, reason):
    decision = evaluate_gate("gnn", metrics(**kwargs), size)
    assert not decision.passed
    assert decision.reasons == [reason]
    assert sum(not c["passed"] for c in decision.checks) == 1


def test_transformer_thresholds():
    assert evaluate_gate("transformer", metrics(val_acc=0.89), 1 * GIB).passed
    decision = evaluate_gate("transformer", metrics(val_acc=0.87), 3 * GIB)
    assert decision.reasons == ["validation accuracy 0.8700 is below the minimum 0.8800",
                                "model size 3.00 GiB (3221225472 bytes) is above the transformer limit 2.00 GiB"]


def test_optional_thresholds():
    strict = thresholds_for("gnn", {"min_test_accuracy": 0.95, "min_f1": 0.95})
    decision = evaluate_gate("gnn", metrics(), 1, strict)
    assert decision.reasons == ["test accuracy 0.9400 is below the minimum 0.9500",
                                "validation F1 0.9400 is below the minimum 0.9500"]
    # min_test_accuracy requires the test split.
    decision = evaluate_gate("gnn", metrics(test=False), 1, {"min_test_accuracy": 0.5})
    assert decision.reasons == ["test accuracy is missing or not a number (required, limit 0.5)"]


def test_missing_metrics_fail_never_pass_silently():
    decision = evaluate_gate("gnn", {"validation": {"accuracy": 0.99}}, 1)
    assert not decision.passed
    assert decision.reasons == ["validation false-positive rate is missing or not a number (required, limit 0.03)"]
    decision = evaluate_gate("gnn", {}, 1)
    assert len(decision.reasons) == 2 and not decision.passed
    decision = evaluate_gate("gnn", metrics(val_acc=math.nan), 1)
    assert decision.reasons[0].startswith("validation accuracy is missing or not a number")
    decision = evaluate_gate("gnn", {"validation": {"accuracy": 0.99, "fpr": 0.0}, "test": {"accuracy": 0.99}}, 1)
    assert decision.reasons == ["test false-positive rate is missing or not a number (required, limit 0.03)"]


def test_without_test_split_only_validation_fpr_is_checked():
    decision = evaluate_gate("gnn", metrics(test=False), 1)
    assert decision.passed
    assert "test.fpr" not in [c["name"] for c in decision.checks]


def test_unknown_model_size_fails():
    for size in (None, -1, True):
        decision = evaluate_gate("gnn", metrics(), size)
        assert not decision.passed
        assert decision.reasons[0].startswith("model size is unknown or invalid")


def test_overrides_applied_and_validated():
    t = thresholds_for("gnn", {"min_val_accuracy": "0.5", "max_model_bytes": 1024})
    assert (t.min_val_accuracy, t.max_fpr, t.max_model_bytes) == (0.5, 0.03, 1024)
    assert evaluate_gate("gnn", metrics(val_acc=0.6), 1000, t).passed
    assert thresholds_for("gnn", {"min_f1": None}).min_f1 is None
    with pytest.raises(GateConfigError, match=r"unknown gate threshold\(s\) 'min_acc'; known: min_val_accuracy"):
        thresholds_for("gnn", {"min_acc": 0.9})
    with pytest.raises(GateConfigError, match=r"'max_fpr'=1.5 is out of range \[0, 1\]"):
        thresholds_for("gnn", {"max_fpr": 1.5})
    with pytest.raises(GateConfigError, match="'min_val_accuracy' must be a number, got 'high'"):
        thresholds_for("gnn", {"min_val_accuracy": "high"})
    with pytest.raises(GateConfigError, match="positive whole number of bytes"):
        thresholds_for("gnn", {"max_model_bytes": 0})
    with pytest.raises(GateConfigError, match="cannot be null"):
        thresholds_for("gnn", {"max_fpr": None})
    with pytest.raises(GateConfigError, match="must be a number, got True"):
        thresholds_for("gnn", {"max_fpr": True})
    with pytest.raises(GateConfigError, match="no gate thresholds for model type 'cnn'; known: gnn, transformer"):
        thresholds_for("cnn")
    with pytest.raises(GateConfigError, match="unknown gate threshold"):
        evaluate_gate("gnn", metrics(), 1, {"bogus": 1})
