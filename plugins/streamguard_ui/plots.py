"""Small inline-SVG charts for the model pages: learning curves, confusion matrix and ROC curve.

Plain strings, no plotting library: the pages stay light, crisp at any zoom, and testable by
reading the markup. Each chart is one ``<svg>`` element carrying ``data-plot="<kind>"``. All text
passes through ``html.escape``; numbers are formatted here, never taken as markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind friendly (Okabe-Ito) palette, assigned to series in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
FONT = "font-family='system-ui, sans-serif'"

# history.json column names this page knows, in the order they are drawn; other numeric columns
# follow (booleans such as `improved` are flags, not curves).
KNOWN_SERIES = ("train_loss", "val_loss", "train_acc", "val_acc", "val_f1", "val_fpr", "val_auc", "val_roc_auc")
SERIES_LABELS = {
    "train_loss": "train loss",
    "val_loss": "validation loss",
    "train_acc": "train accuracy",
    "val_acc": "validation accuracy",
    "val_f1": "validation F1",
    "val_fpr": "validation FPR",
    "val_auc": "validation ROC AUC",
    "val_roc_auc": "validation ROC AUC",
    "seconds": "seconds per epoch",
}


@dataclass(frozen=True)
class Series:
    """One named line: x and y values of equal length."""

    name: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]


def _num(value: float) -> str:
    """Format an SVG coordinate compactly (one decimal is plenty at these sizes)."""
    return f"{value:.1f}"


def _tick_label(value: float) -> str:
    """Format an axis tick: integers plainly, other values with up to three significant digits."""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick positions covering [low, high] (1-2-5 steps)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


def _svg_open(plot: str, width: int, height: int, title: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' data-plot='{escape(plot)}' role='img' "
        f"aria-label='{escape(title)}' width='{width}' height='{height}' viewBox='0 0 {width} {height}' {FONT}>"
        f"<title>{escape(title)}</title>"
    )


def _panel(
    series: Sequence[Series],
    *,
    left: float,
    top: float,
    width: float,
    height: float,
    title: str,
    x_label: str,
    y_range: tuple[float, float] | None = None,
) -> list[str]:
    """Axes, grid, lines, points and legend of one line chart inside the given box."""
    parts = [f"<text x='{_num(left)}' y='{_num(top - 8)}' font-size='13' font-weight='600'>{escape(title)}</text>"]
    xs = [x for s in series for x in s.xs]
    ys = [y for s in series for y in s.ys if math.isfinite(y)]
    if not xs or not ys:
        parts.append(f"<text x='{_num(left + 10)}' y='{_num(top + height / 2)}' font-size='12'>no data</text>")
        return parts
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if y_range is None:
        y_lo, y_hi = min(ys), max(ys)
        pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.05 or 1.0
        y_lo, y_hi = y_lo - pad, y_hi + pad
    else:
        y_lo, y_hi = y_range

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * width

    def py(y: float) -> float:
        return top + height - (y - y_lo) / (y_hi - y_lo) * height

    parts.append(
        f"<rect x='{_num(left)}' y='{_num(top)}' width='{_num(width)}' height='{_num(height)}' "
        "fill='none' stroke='#888'/>"
    )
    for tick in _nice_ticks(y_lo, y_hi):
        if y_lo <= tick <= y_hi:
            y = py(tick)
            parts.append(
                f"<line x1='{_num(left)}' y1='{_num(y)}' x2='{_num(left + width)}' y2='{_num(y)}' stroke='#eee'/>"
                f"<text x='{_num(left - 6)}' y='{_num(y + 4)}' font-size='11' "
                f"text-anchor='end'>{_tick_label(tick)}</text>"
            )
    # Whole-number ticks on the epoch axis: fractional epochs mean nothing here.
    x_ticks = [t for t in _nice_ticks(x_lo, x_hi, 6) if float(t).is_integer() and x_lo <= t <= x_hi] or [x_lo, x_hi]
    for tick in x_ticks:
        x = px(tick)
        parts.append(
            f"<text x='{_num(x)}' y='{_num(top + height + 16)}' font-size='11' "
            f"text-anchor='middle'>{_tick_label(tick)}</text>"
        )
    parts.append(
        f"<text x='{_num(left + width / 2)}' y='{_num(top + height + 32)}' font-size='11' "
        f"text-anchor='middle'>{escape(x_label)}</text>"
    )
    for index, line in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        points = [(px(x), py(y)) for x, y in zip(line.xs, line.ys) if math.isfinite(y)]
        if len(points) > 1:
            path = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
            parts.append(
                f"<polyline data-series='{escape(line.name)}' points='{path}' fill='none' "
                f"stroke='{colour}' stroke-width='2'/>"
            )
        for x, y in points:
            parts.append(f"<circle cx='{_num(x)}' cy='{_num(y)}' r='2.5' fill='{colour}'/>")
        legend_y = top + 14 + index * 15
        parts.append(
            f"<rect x='{_num(left + width + 12)}' y='{_num(legend_y - 9)}' width='10' height='10' fill='{colour}'/>"
            f"<text x='{_num(left + width + 26)}' y='{_num(legend_y)}' font-size='11'>"
            f"{escape(SERIES_LABELS.get(line.name, line.name))}</text>"
        )
    return parts


def history_series(history: Sequence[Mapping]) -> list[Series]:
    """Numeric per-epoch columns of history.json as series over the epoch number.

    Rows without an ``epoch`` field are numbered from 1 in file order. Known columns come first in
    ``KNOWN_SERIES`` order; unknown numeric columns follow alphabetically, so nothing is dropped.
    """
    columns: dict[str, list[tuple[float, float]]] = {}
    for position, row in enumerate(history, start=1):
        epoch = row.get("epoch", position)
        if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
            epoch = position
        for key, value in row.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            columns.setdefault(key, []).append((float(epoch), float(value)))
    order = [k for k in KNOWN_SERIES if k in columns] + sorted(k for k in columns if k not in KNOWN_SERIES)
    return [Series(k, tuple(x for x, _ in columns[k]), tuple(y for _, y in columns[k])) for k in order]


def _is_fraction(series: Series) -> bool:
    return all(0.0 <= y <= 1.0 for y in series.ys if math.isfinite(y))


def learning_curves_svg(history: Sequence[Mapping], *, width: int = 760, panel_height: int = 155) -> str:
    """Stacked panels over epochs: loss columns, then fractions (accuracy, F1, AUC...) on a 0-1 axis,
    then any other numeric column (e.g. seconds per epoch) when the history has one.
    """
    series = history_series(history)
    losses = [s for s in series if "loss" in s.name]
    fractions = [s for s in series if "loss" not in s.name and _is_fraction(s)]
    others = [s for s in series if "loss" not in s.name and not _is_fraction(s)]
    # A fixed 0-1 axis for fractions keeps versions comparable at a glance.
    panels = [("Loss", losses, None), ("Accuracy and scores", fractions, (0.0, 1.0))]
    if others:
        panels.append(("Other per-epoch values", others, None))
    gap, top0 = 70, 30
    height = top0 + len(panels) * panel_height + (len(panels) - 1) * gap + 50
    parts = [_svg_open("learning-curves", width, height, "Learning curves per epoch")]
    for index, (title, group, y_range) in enumerate(panels):
        parts += _panel(group, left=60.0, top=top0 + index * (panel_height + gap), width=width - 240,
                        height=panel_height, title=title, x_label="epoch", y_range=y_range)
    parts.append("</svg>")
    return "".join(parts)


def confusion_matrix_svg(matrix: Sequence[Sequence[int]], *, title: str = "Confusion matrix (test)") -> str:
    """A 2x2 grid ``[[tn, fp], [fn, tp]]``: counts, and cells shaded by their share of the true class."""
    if len(matrix) != 2 or any(len(row) != 2 for row in matrix):
        raise ValueError(f"confusion matrix must be 2x2 [[tn, fp], [fn, tp]], got {matrix!r}")
    cell, left, top = 110, 130, 60
    size_w, size_h = left + 2 * cell + 30, top + 2 * cell + 20
    names = ("safe", "vulnerable")
    parts = [_svg_open("confusion-matrix", size_w, size_h, title)]
    parts.append(f"<text x='10' y='20' font-size='13' font-weight='600'>{escape(title)}</text>")
    parts.append(
        f"<text x='{left + cell}' y='{top - 24}' font-size='11' text-anchor='middle'>predicted</text>"
    )
    for row in range(2):
        total = sum(int(v) for v in matrix[row]) or 1
        parts.append(
            f"<text x='{left - 8}' y='{top + row * cell + cell / 2 + 4}' font-size='11' "
            f"text-anchor='end'>true {names[row]}</text>"
        )
        for col in range(2):
            count = int(matrix[row][col])
            share = count / total
            # Diagonal cells (correct) in blue, errors in orange; intensity = share of the true class.
            base = (0, 114, 178) if row == col else (213, 94, 0)
            fill = "rgb({},{},{})".format(*(round(255 - (255 - c) * share) for c in base))
            text_fill = "#fff" if share > 0.55 else "#000"
            x, y = left + col * cell, top + row * cell
            parts.append(
                f"<rect data-cell='{row}{col}' x='{x}' y='{y}' width='{cell}' height='{cell}' "
                f"fill='{fill}' stroke='#fff'/>"
                f"<text x='{x + cell / 2}' y='{y + cell / 2}' font-size='18' text-anchor='middle' "
                f"fill='{text_fill}'>{count}</text>"
                f"<text x='{x + cell / 2}' y='{y + cell / 2 + 18}' font-size='11' text-anchor='middle' "
                f"fill='{text_fill}'>{share:.1%}</text>"
            )
    for col in range(2):
        parts.append(
            f"<text x='{left + col * cell + cell / 2}' y='{top - 8}' font-size='11' "
            f"text-anchor='middle'>{names[col]}</text>"
        )
    # Outline, so that an empty (white) cell still reads as part of the grid.
    parts.append(f"<rect x='{left}' y='{top}' width='{2 * cell}' height='{2 * cell}' fill='none' stroke='#bbb'/>")
    parts.append("</svg>")
    return "".join(parts)


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> list[tuple[float, float]]:
    """ROC curve points (fpr, tpr) from (0, 0) to (1, 1), one per distinct score threshold.

    Tied scores move together (one diagonal step), as a threshold cannot separate them.

    Raises:
        ValueError: lengths differ, or only one class is present (the curve is undefined).
    """
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(f"ROC needs both classes, got {positives} positive and {negatives} negative")
    pairs = sorted(zip(scores, labels), key=lambda p: -p[0])
    points = [(0.0, 0.0)]
    tp = fp = 0
    index = 0
    while index < len(pairs):
        threshold = pairs[index][0]
        while index < len(pairs) and pairs[index][0] == threshold:
            if pairs[index][1]:
                tp += 1
            else:
                fp += 1
            index += 1
        points.append((fp / negatives, tp / positives))
    return points


def auc(points: Sequence[tuple[float, float]]) -> float:
    """Area under a curve given as (x, y) points sorted by x (trapezoid rule)."""
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))


def roc_curve_svg(points: Sequence[tuple[float, float]], *, title: str = "ROC curve (test)") -> str:
    """The ROC curve over a unit square, the chance diagonal, and the AUC in the title."""
    side, left, top = 300, 60, 40
    width, height = left + side + 30, top + side + 50
    area = auc(points)
    full_title = f"{title}, AUC {area:.3f}"
    parts = [_svg_open("roc", width, height, full_title)]
    parts.append(f"<text x='10' y='20' font-size='13' font-weight='600'>{escape(full_title)}</text>")
    parts.append(f"<rect x='{left}' y='{top}' width='{side}' height='{side}' fill='none' stroke='#888'/>")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = left + tick * side, top + side - tick * side
        parts.append(
            f"<line x1='{_num(x)}' y1='{top}' x2='{_num(x)}' y2='{top + side}' stroke='#eee'/>"
            f"<line x1='{left}' y1='{_num(y)}' x2='{left + side}' y2='{_num(y)}' stroke='#eee'/>"
            f"<text x='{_num(x)}' y='{top + side + 16}' font-size='11' text-anchor='middle'>{tick:g}</text>"
            f"<text x='{left - 6}' y='{_num(y + 4)}' font-size='11' text-anchor='end'>{tick:g}</text>"
        )
    parts.append(
        f"<line x1='{left}' y1='{top + side}' x2='{left + side}' y2='{top}' stroke='#999' stroke-dasharray='4 4'/>"
    )
    path = " ".join(f"{_num(left + x * side)},{_num(top + side - y * side)}" for x, y in points)
    parts.append(f"<polyline data-series='roc' points='{path}' fill='none' stroke='{PALETTE[0]}' stroke-width='2'/>")
    parts.append(
        f"<text x='{left + side / 2}' y='{top + side + 34}' font-size='11' "
        "text-anchor='middle'>false positive rate</text>"
        f"<text x='14' y='{top + side / 2}' font-size='11' text-anchor='middle' "
        f"transform='rotate(-90 14 {top + side / 2})'>true positive rate</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
