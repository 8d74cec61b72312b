"""Exponential moving average of the weights (`--weight-averaging ema`).

After every optimizer step a shadow copy of the model is moved towards the trained weights::

    d_n    = min(decay, (1 + n) / (10 + n))        # n: updates so far (0 before the first)
    shadow = d_n * shadow + (1 - d_n) * param

for every parameter and every floating-point buffer (other buffers, e.g. counters, are copied).
The warm-up `d_n` keeps a short run from being dominated by the initial weights: the first update
keeps 10% of them, and the decay reaches `decay` after `(10 * decay - 1) / (1 - decay)` updates (890
for 0.99; after 64 updates it is 0.88). Validation scores the shadow, and the best epoch's shadow is
what the model dir and the best-epoch checkpoint hold; each epoch's checkpoint also holds the shadow
(`ema-eN.safetensors`) and the update count (`"ema"` in the state JSON), so a resumed run continues
the same average.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

WEIGHT_AVERAGING = ("none", "ema")
DEFAULT_EMA_DECAY = 0.99
WARMUP = "min(decay, (1 + n) / (10 + n))"


def warmup_decay(decay: float, updates: int) -> float:
    """The decay of the update that follows ``updates`` earlier ones: ``min(decay, (1 + n) / (10 + n))``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightEMA:
    """The shadow model: a copy of the (bare) model whose tensors hold the moving average.

    Under DDP every rank keeps its own shadow, updated from its unwrapped module (whose weights are
    the same on every rank), so every rank validates the same averaged model.
    """

    def __init__(self, model: nn.Module, decay: float = DEFAULT_EMA_DECAY, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = int(updates)
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.grad = None
            p.requires_grad_(False)
        self.module.eval()

    def _pairs(self, model: nn.Module):
        shadow = dict(self.module.named_parameters())
        shadow.update(self.module.named_buffers())
        live = dict(model.named_parameters())
        live.update(model.named_buffers())
        if shadow.keys() != live.keys():
            raise ValueError("EMA: the model's tensors are not the shadow's (another architecture?)")
        return [(shadow[name], live[name]) for name in shadow]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model``'s current weights (call after ``optimizer.step()``)."""
        d = warmup_decay(self.decay, self.updates)
        for s, p in self._pairs(model):
            if s.is_floating_point():
                s.mul_(d).add_(p.detach().to(s.dtype), alpha=1.0 - d)
            else:
                s.copy_(p)
        self.updates += 1

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Start the average again from ``model``'s current weights (no update counted)."""
        for s, p in self._pairs(model):
            s.copy_(p)
        self.updates = 0

    def state(self) -> dict:
        """What the checkpoint JSON records beside the shadow weights."""
        return {"decay": self.decay, "updates": self.updates, "warmup": WARMUP}
