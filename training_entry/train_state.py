"""The training loop's state, which is also the checkpoint's JSON (`checkpoint-eN.json`, `checkpoint.json`).

`TrainState.to_dict()` is what `artifacts.save_checkpoint` writes after every epoch and
`TrainState.from_dict()` reads what `artifacts.load_checkpoint` found, so a restarted job continues
with exactly the state an uninterrupted one would hold. The layout on disk::

    {"format_version": 1, "model_type": "gnn", "model_kwargs": {...}, "epoch": 3,
     "best": {"epoch": 2, "key": [f1, accuracy], "metric": "f1", "value": f1} | null,
     "bad_epochs": 1, "history": [{"epoch": 1, "train_loss": ..., ...}, ...], "stopped_early": false,
     "fine_tuned_from": null, "text_input": "gadget", "rng": {"seed": 13, "epoch_seed": 16}}

and, only for a run with `--weight-averaging ema`, a last key
``"ema": {"decay": 0.99, "updates": 96, "warmup": "..."}`` (the shadow weights themselves are
`ema-eN.safetensors` beside the state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Version of the checkpoint state and of the model dir's config.json.
FORMAT_VERSION = 1


# What `--selection-metric` may name, and what breaks its ties. "youden" is TPR − FPR (Youden's J):
# F1 can prefer an epoch that flags more safe code if it also finds more vulnerable code; J charges
# each false positive as much as each miss, as the gate's FPR ceiling and the cross-source figures do.
SELECTION_METRICS = ("f1", "accuracy", "youden")
_TIE_BREAK = {"f1": "accuracy", "accuracy": "f1", "youden": "f1"}


def selection_value(metrics: dict, metric: str) -> float | None:
    """The validation value of ``metric`` (one of `SELECTION_METRICS`), None when undefined."""
    if metric == "youden":
        recall, fpr = metrics.get("recall"), metrics.get("fpr")
        return None if recall is None or fpr is None else recall - fpr
    return metrics[metric]


def selection_key(metrics: dict, metric: str) -> tuple[float, float]:
    """What model selection maximises: the selection metric, then its tie-break (ties keep the earlier epoch)."""
    value = selection_value(metrics, metric)
    tie = metrics[_TIE_BREAK[metric]]
    floor = -1.0 if metric == "youden" else 0.0  # J ranges over [-1, 1]; an undefined one ranks lowest
    return (floor if value is None else value, tie or 0.0)


@dataclass
class BestEpoch:
    """The best epoch so far by the selection metric."""

    epoch: int
    key: list[float]      # `selection_key` of its validation metrics
    metric: str           # one of SELECTION_METRICS
    value: float | None   # its validation value of `metric`

    @classmethod
    def of(cls, epoch: int, val: dict, metric: str) -> BestEpoch:
        return cls(epoch=epoch, key=list(selection_key(val, metric)), metric=metric,
                   value=selection_value(val, metric))

    def beaten_by(self, val: dict, metric: str) -> bool:
        return selection_key(val, metric) > tuple(self.key)

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "key": list(self.key), "metric": self.metric, "value": self.value}

    @classmethod
    def from_dict(cls, d: dict) -> BestEpoch:
        return cls(epoch=int(d["epoch"]), key=list(d["key"]), metric=d["metric"], value=d["value"])


@dataclass
class TrainState:
    """Everything a resumed run needs besides the weights and the optimizer state.

    `epoch` is the last completed epoch (0 before the first); `seed` the run's `--seed` and
    `epoch_seed` the seed of epoch `epoch` (`seed + epoch`: every epoch reseeds the RNGs).
    """

    model_type: str
    model_kwargs: dict
    seed: int
    epoch: int = 0
    best: BestEpoch | None = None
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    fine_tuned_from: str | None = None
    text_input: str | None = None
    epoch_seed: int | None = None
    ema: dict | None = None   # `weight_averaging.WeightEMA.state()` of the epoch; None without EMA

    def record_epoch(self, epoch: int, val: dict, metric: str, row: dict, improved: bool, patience: int) -> bool:
        """Account for a finished epoch (`row`: its history entry); returns True when training stops early."""
        self.epoch = epoch
        self.epoch_seed = self.seed + epoch
        if improved:
            self.best = BestEpoch.of(epoch, val, metric)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.history.append(row)
        self.stopped_early = patience > 0 and self.bad_epochs >= patience
        return self.stopped_early

    def to_dict(self) -> dict:
        """The checkpoint JSON (key order as written since format 1; ``ema`` only when averaging)."""
        out = {
            "format_version": FORMAT_VERSION, "model_type": self.model_type, "model_kwargs": self.model_kwargs,
            "epoch": self.epoch, "best": self.best.to_dict() if self.best else None, "bad_epochs": self.bad_epochs,
            "history": self.history, "stopped_early": self.stopped_early, "fine_tuned_from": self.fine_tuned_from,
            "text_input": self.text_input, "rng": {"seed": self.seed, "epoch_seed": self.epoch_seed},
        }
        if self.ema is not None:
            out["ema"] = dict(self.ema)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        """Read a checkpoint JSON; keys starting with "_" (added by `load_checkpoint`) are ignored.

        Raises:
            ValueError: a required key is missing.
        """
        missing = [k for k in ("model_type", "model_kwargs", "epoch", "best", "bad_epochs", "history") if k not in d]
        if missing:
            raise ValueError(f"checkpoint state without {missing}: not written by this entry")
        rng = d.get("rng") or {}
        return cls(
            model_type=d["model_type"], model_kwargs=d["model_kwargs"], seed=rng.get("seed", 0),
            epoch=int(d["epoch"]), best=BestEpoch.from_dict(d["best"]) if d["best"] else None,
            bad_epochs=int(d["bad_epochs"]), history=list(d["history"]),
            stopped_early=bool(d.get("stopped_early", False)), fine_tuned_from=d.get("fine_tuned_from"),
            # Checkpoints written before code gadgets trained the transformer on the whole code.
            text_input=d.get("text_input", "code"), epoch_seed=rng.get("epoch_seed"),
            ema=dict(d["ema"]) if d.get("ema") else None,
        )
