"""Progress within an epoch: a rich bar on a terminal, plain ``key=value`` lines in logs.

A job's log (SageMaker's CloudWatch stream, the local backend's ``train.log``) is not a terminal:
there the entry prints at most one line per ``interval_s`` seconds,
``progress: epoch=2/5 batch=120/400 pct=30.0 loss=0.412300 elapsed_s=12.3``, which never
matches the epoch metric regexes. Run by hand in a terminal, it draws a transient rich bar instead
(when rich is installed; the training image need not have it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

BatchCallback = Callable[[int, int, float], None]  # (batches done, batches in the epoch, batch loss)


class EpochProgress:
    """Reports batches of one epoch; use as a context manager around `engine.train_one_epoch`.

    Args:
        epoch, epochs: the epoch (1-based) and the total, for the label.
        enabled: False on non-main ranks: nothing is reported.
        interval_s: seconds between plain lines (0 disables them).
        stream: where to write; default stdout. A terminal gets the rich bar.
    """

    def __init__(self, epoch: int, epochs: int, *, enabled: bool = True, interval_s: float = 30.0,
                 stream=None):
        self.epoch, self.epochs = epoch, epochs
        self.enabled = enabled
        self.interval_s = interval_s
        self.stream = stream or sys.stdout
        self._bar = None
        self._task = None
        self._started = self._last = 0.0

    def __enter__(self) -> EpochProgress:
        self._started = self._last = time.monotonic()
        if self.enabled and _isatty(self.stream):
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            except ImportError:
                pass
            else:
                self._bar = Progress(TextColumn(f"epoch {self.epoch}/{self.epochs}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                                     TimeRemainingColumn(), transient=True, console=Console(file=self.stream))
                self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, done: int, total: int, loss: float) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("train", total=total, loss="-")
            self._bar.update(self._task, completed=done, loss=f"{loss:.4f}")
            return
        now = time.monotonic()
        if self.interval_s and now - self._last >= self.interval_s and done < total:
            self._last = now
            print(f"progress: epoch={self.epoch}/{self.epochs} batch={done}/{total} pct={100 * done / total:.1f} "
                  f"loss={loss:.6f} elapsed_s={now - self._started:.1f}", file=self.stream, flush=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
