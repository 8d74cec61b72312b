"""Known-answer tests for `streamguard.core.metrics`."""

from __future__ import annotations

import pytest

from streamguard.core.metrics import METRIC_KEYS, classification_metrics, roc_auc


def test_known_confusion_matrix_and_rates():
    # tp=2 (0.9, 0.6), fn=1 (0.4), fp=1 (0.7), tn=2 (0.1, 0.2)
    labels = [1, 1, 1, 0, 0, 0]
    scores = [0.9, 0.6, 0.4, 0.7, 0.1, 0.2]
    m = classification_metrics(labels, scores)
    assert tuple(m) == METRIC_KEYS
    assert m["n"] == 6
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["fpr"] == pytest.approx(1 / 3)
    # Pairs (pos, neg) ranked correctly: 0.9 beats 3, 0.6 beats 2 (loses to 0.7), 0.4 beats 2 -> 7/9.
    assert m["roc_auc"] == pytest.approx(7 / 9)


def test_threshold_is_inclusive_and_moves_predictions():
    labels = [1, 0, 1, 0]
    scores = [0.5, 0.49, 0.8, 0.3]
    assert classification_metrics(labels, scores)["confusion_matrix"] == [[2, 0], [0, 2]]
    high = classification_metrics(labels, scores, threshold=0.9)
    assert high["confusion_matrix"] == [[2, 0], [2, 0]]
    assert high["precision"] == 0.0 and high["recall"] == 0.0 and high["f1"] == 0.0


def test_roc_auc_ties_count_half():
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    # pos scores {0.8, 0.5}, neg {0.5, 0.2}: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4
    assert roc_auc([1, 1, 0, 0], [0.8, 0.5, 0.5, 0.2]) == pytest.approx(3.5 / 4)
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)
    assert roc_auc([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.2]) == pytest.approx(1.0)


def test_single_class_has_no_auc_and_zero_denominators():
    m = classification_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert m["roc_auc"] is None
    assert m["fpr"] == 0.0  # no negatives
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[0, 0], [1, 2]]
    neg = classification_metrics([0, 0], [0.1, 0.9])
    assert neg["roc_auc"] is None and neg["fpr"] == 0.5 and neg["recall"] == 0.0


def test_empty_input():
    m = classification_metrics([], [])
    assert m["n"] == 0 and m["accuracy"] is None and m["roc_auc"] is None
    assert m["confusion_matrix"] == [[0, 0], [0, 0]]


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([1, 2], [0.1, 0.2], "index 1"),
        ([1, 0], [0.1], "differ in length"),
        ([1, 0], [0.1, float("nan")], "finite"),
    ],
)
def test_invalid_input_is_rejected_with_a_clear_message(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(labels, scores)
