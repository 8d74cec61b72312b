"""SageMaker ``MetricDefinitions`` of the entry's log lines, and a parser that reads them as SageMaker does.

The local supervisor parses the job log with the same definitions, so ``FinalMetricDataList`` means the
same on both backends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

# The entry prints one line per epoch:
#   "Epoch 3/8: Train Loss=0.4121; Train Acc=0.8333; Val Acc=0.8100; Val F1=0.8000; Val FPR=0.0500;"
EPOCH_METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train:loss", "Regex": "Train Loss=(.*?);"},
    {"Name": "train:accuracy", "Regex": "Train Acc=(.*?);"},
    {"Name": "validation:accuracy", "Regex": "Val Acc=(.*?);"},
    {"Name": "validation:f1", "Regex": "Val F1=(.*?);"},
    {"Name": "validation:fpr", "Regex": "Val FPR=(.*?);"},
]
# SageMaker's FinalMetricDataList holds the *last* value of each metric, i.e. the last epoch's, while
# the model kept is the best epoch's. After training the entry prints one line with the kept model's
# figures, measured again by inference with the saved weights:
#   "Best epoch 2: Validation accuracy=0.8100; Validation f1=0.8000; Validation fpr=0.0500; Test ...;"
# under names of their own, so that `best:*` in FinalMetricDataList describes the registered model.
BEST_METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "best:epoch", "Regex": "Best epoch ([0-9]+):"},
    {"Name": "best:validation:accuracy", "Regex": "Validation accuracy=(.*?);"},
    {"Name": "best:validation:f1", "Regex": "Validation f1=(.*?);"},
    {"Name": "best:validation:fpr", "Regex": "Validation fpr=(.*?);"},
    {"Name": "best:test:accuracy", "Regex": "Test accuracy=(.*?);"},
    {"Name": "best:test:f1", "Regex": "Test f1=(.*?);"},
    {"Name": "best:test:fpr", "Regex": "Test fpr=(.*?);"},
]
METRIC_DEFINITIONS: list[dict[str, str]] = EPOCH_METRIC_DEFINITIONS + BEST_METRIC_DEFINITIONS
# Evaluate jobs print "Evaluated N rows (...): Test Acc=0.8000; Test F1=0.7500; Test FPR=0.1000;".
EVALUATE_METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "test:accuracy", "Regex": "Test Acc=(.*?);"},
    {"Name": "test:f1", "Regex": "Test F1=(.*?);"},
    {"Name": "test:fpr", "Regex": "Test FPR=(.*?);"},
]


class MetricParser:
    """Incremental parser of log lines with SageMaker ``MetricDefinitions`` (first group = value).

    Like SageMaker, a value that is not a finite number is ignored (and counted in ``skipped``).
    """

    def __init__(self, metric_definitions: Iterable[Mapping[str, str]] = METRIC_DEFINITIONS):
        self.definitions = [(d["Name"], re.compile(d["Regex"])) for d in metric_definitions]
        self.last: dict[str, float] = {}
        self.series: dict[str, list[float]] = {name: [] for name, _ in self.definitions}
        self.skipped = 0

    def feed(self, line: str) -> list[tuple[str, float]]:
        """Parse one line; returns the (name, value) pairs it carried, in definition order."""
        found = []
        for name, regex in self.definitions:
            match = regex.search(line)
            if not match:
                continue
            try:
                value = float(match.group(1).strip())
            except (ValueError, IndexError):
                self.skipped += 1
                continue
            if not math.isfinite(value):
                self.skipped += 1
                continue
            self.last[name] = value
            self.series[name].append(value)
            found.append((name, value))
        return found


def parse_metrics(log_lines: Iterable[str],
                  metric_definitions: Iterable[Mapping[str, str]] = METRIC_DEFINITIONS) -> dict[str, float]:
    """The last value of each metric found in ``log_lines`` (metrics never seen are absent)."""
    parser = MetricParser(metric_definitions)
    for line in log_lines:
        parser.feed(line)
    return dict(parser.last)


def parse_metric_series(log_lines: Iterable[str],
                        metric_definitions: Iterable[Mapping[str, str]] = METRIC_DEFINITIONS) -> dict[str, list[float]]:
    """Every value of each metric in log order (one per epoch for the entry's line format)."""
    parser = MetricParser(metric_definitions)
    for line in log_lines:
        parser.feed(line)
    return {name: values for name, values in parser.series.items() if values}
