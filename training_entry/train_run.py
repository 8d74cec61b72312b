"""One training job's settled inputs: its flags, runtime, channel data and where its outputs go."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import data as datamod
import engine
from entry_errors import EntryError, require
from models import EntryModel, model_class


@dataclass
class TrainRun:
    """Read once by `read_train_run`; the model set-up, the loop and the model-dir writer take it."""

    args: argparse.Namespace
    rt: engine.Runtime
    log: Callable[[str], None]
    model_cls: type[EntryModel]
    train: list
    validation: list
    test: list | None
    counts: list[int]               # training label counts [safe, vulnerable]
    model_dir: Path
    ckpt_dir: Path | None
    threshold: float

    @property
    def model_type(self) -> str:
        return self.model_cls.model_type

    @property
    def class_weights(self) -> list[float]:
        """`n / (2 * count(class))` over the training labels: the loss's answer to class imbalance."""
        n = sum(self.counts)
        return [n / (len(self.counts) * c) for c in self.counts]

    def samples(self) -> list:
        """Every sample of every split."""
        return [*self.train, *self.validation, *(self.test or [])]

    def splits(self) -> dict[str, list]:
        """The splits by name (`test` only when the job has a test channel)."""
        out = {"train": self.train, "validation": self.validation}
        if self.test is not None:
            out["test"] = self.test
        return out


def read_train_run(args: argparse.Namespace, rt: engine.Runtime, log: Callable[[str], None]) -> TrainRun:
    """Read the channels and check them.

    Raises:
        EntryError: a channel or the model dir is not given, a split is empty, or the training data
            has one class only.
    """
    model_cls = model_class(args.model_type)
    train_path = require(args.train, "train channel", "SM_CHANNEL_TRAIN", "--train")
    val_path = require(args.validation, "validation channel", "SM_CHANNEL_VALIDATION", "--validation")
    model_dir = Path(require(args.model_dir, "model dir", "SM_MODEL_DIR", "--model-dir"))
    need_graphs = model_cls.needs_graphs

    train = datamod.read_samples(train_path, need_graphs=need_graphs, limit=args.max_train_samples, seed=args.seed)
    validation = datamod.read_samples(val_path, need_graphs=need_graphs)
    test = datamod.read_samples(args.test, need_graphs=need_graphs) if args.test else None
    if not train:
        raise EntryError(f"train channel {train_path} has no records")
    if not validation:
        raise EntryError(f"validation channel {val_path} has no records")
    counts = datamod.label_counts(train)
    if min(counts) == 0:
        raise EntryError(f"train channel {train_path} has only one class (label counts {counts}); "
                         "a classifier needs both labels")
    log(f"model={args.model_type} train={sum(counts)} (labels {counts}) validation={len(validation)} "
        f"test={len(test) if test is not None else 0} device={rt.device} "
        f"bf16={rt.bf16} world_size={rt.world_size}")
    return TrainRun(args=args, rt=rt, log=log, model_cls=model_cls, train=train, validation=validation, test=test,
                    counts=counts, model_dir=model_dir,
                    ckpt_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
                    threshold=0.5 if args.threshold is None else args.threshold)
