"""Device, precision, distributed set-up, data loaders and the train / predict passes shared by both models."""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import data as datamod
import text_inputs
from entry_errors import EntryError


@dataclass
class Runtime:
    """Where and how the script runs, settled once: CUDA + bf16 autocast when available, else CPU fp32."""

    device: torch.device
    bf16: bool = False
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        # bf16 needs no loss scaling; CPU stays in fp32 (CPU autocast is slower for these small models).
        if self.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()


def setup_runtime(force_cpu: bool = False) -> Runtime:
    """Pick the device and join the process group when `torchrun` started several workers."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and not force_cpu
    rank = 0
    if world_size > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        rank = dist.get_rank()
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    bf16 = use_cuda and torch.cuda.is_bf16_supported()
    return Runtime(device=device, bf16=bf16, rank=rank, world_size=world_size)


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def set_seed(seed: int) -> None:
    """Seed every RNG the run uses (Python, NumPy, torch CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under a DistributedDataParallel wrapper."""
    return model.module if hasattr(model, "module") else model


_LIBC = None


def release_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Batches of graphs differ in size, so the tensors of every step have other sizes and glibc's
    heap fragments: without this, the RSS of GNN training creeps up by about 2.5 MB per batch
    (an epoch over 130k graphs would end several GB higher than it started).
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - present on glibc only
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


TRIM_EVERY = 20  # batches between release_memory() calls


def warmup_linear_decay(base_lr: float, total_steps: int, warmup_frac: float = 0.1, floor: float = 0.1):
    """Learning rate per global step: linear warm-up, then linear decay to `floor` × base.

    Transformers trained from scratch are unstable at full learning rate before their attention
    and layer norms settle; the schedule is a pure function of the step so a resumed run continues it.
    """
    total_steps = max(1, total_steps)
    warmup = max(1, int(warmup_frac * total_steps))

    def lr_at(step: int) -> float:
        if step < warmup:
            return base_lr * (step + 1) / warmup
        remaining = (total_steps - step) / max(1, total_steps - warmup)
        return base_lr * max(floor, remaining)

    return lr_at


def train_one_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer,
                    loss_fn: nn.Module, rt: Runtime, max_grad_norm: float = 1.0,
                    lr_at=None, step_offset: int = 0, on_batch=None, ema=None) -> tuple[float, float, int]:
    """One pass over the training data; returns (mean loss, accuracy, samples) over all workers.

    `model` is the model or its DistributedDataParallel wrapper; batches go through the model's
    `forward_batch`, the forward pass through `model` itself (so DDP averages the gradients).

    `lr_at(global_step)`, when given, sets the learning rate before each step;
    `on_batch(done, total, loss)`, when given, is called after each step (progress reporting);
    `ema` (a `weight_averaging.WeightEMA`), when given, is updated from the bare model after each
    optimizer step (on every DDP rank: their weights are the same).
    """
    total_batches = len(loader) if on_batch is not None else 0
    bare = unwrap(model)
    model.train()
    totals = torch.zeros(3, dtype=torch.float64, device=rt.device)  # loss sum, correct, count
    for i, batch in enumerate(loader):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step_offset + i)
        optimizer.zero_grad(set_to_none=True)
        with rt.autocast():
            out = bare.forward_batch(batch, rt.device, model)
        logits, y = out.logits, out.labels
        loss = loss_fn(logits.float(), y)
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if ema is not None:
            ema.update(bare)
        n = y.numel()
        batch_loss = loss.item()
        totals += torch.tensor([batch_loss * n, (logits.argmax(-1) == y).sum().item(), n],
                               dtype=torch.float64, device=rt.device)
        if on_batch is not None:
            on_batch(i + 1, total_batches, batch_loss)
        if i % TRIM_EVERY == TRIM_EVERY - 1:
            release_memory()
    if rt.distributed:
        dist.all_reduce(totals)
    loss_sum, correct, count = totals.tolist()
    if not count:
        raise RuntimeError("the training loader yielded no samples")
    return loss_sum / count, correct / count, int(count)


@torch.no_grad()
def predict(model: nn.Module, loader, rt: Runtime) -> tuple[list[float], list[float] | None]:
    """P(vulnerable) for every row of `loader` in order, and the anomaly scores of a model that has them."""
    model = unwrap(model)
    model.eval()
    scores: list[float] = []
    anomalies: list[float] = []
    for i, batch in enumerate(loader):
        with rt.autocast():
            out = model.forward_batch(batch, rt.device)
        if i % TRIM_EVERY == TRIM_EVERY - 1:
            release_memory()
        scores.extend(torch.softmax(out.logits.float(), dim=-1)[:, 1].tolist())
        if out.anomaly_score is not None:
            anomalies.extend(out.anomaly_score.float().tolist())
    return scores, (anomalies if model.has_anomaly_score else None)


def get_dataloaders(model_type: str, splits: dict[str, list], *, batch_size: int, tokenizer=None,
                    max_length: int = 256, num_workers: int = 0, seed: int = 0, rt: Runtime | None = None,
                    text_input: str = text_inputs.DEFAULT_TEXT_INPUT, sink_dropout: float = 0.0,
                    source_dropout: float = 0.0, token_dropout: float = 0.0,
                    language_balance: float = 0.0) -> dict:
    """Loaders per split: `train` shuffled (seeded; a DistributedSampler under DDP, or drawn by
    `datamod.language_sampler` with ``language_balance`` > 0), the others in order."""
    loaders = {}
    for name, samples in splits.items():
        dataset = datamod.make_dataset(model_type, samples, text_input,
                                       sink_dropout=sink_dropout if name == "train" else 0.0,
                                       source_dropout=source_dropout if name == "train" else 0.0,
                                       token_dropout=token_dropout if name == "train" else 0.0, seed=seed)
        sampler = None
        if name == "train" and language_balance:
            if rt is not None and rt.distributed:
                raise EntryError("--language-balance is not available with distributed training "
                                 "(several processes or hosts); leave it at 0 there")
            sampler, _ = datamod.language_sampler(samples, language_balance, seed)
        elif name == "train" and rt is not None and rt.distributed:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(dataset, shuffle=True, seed=seed)
        loaders[name] = datamod.make_loader(model_type, dataset, batch_size=batch_size, shuffle=name == "train",
                                            sampler=sampler, tokenizer=tokenizer, max_length=max_length,
                                            num_workers=num_workers, seed=seed)
    return loaders


def agree(flag: bool, rt: Runtime) -> bool:
    """Rank 0's decision, for every rank (DDP ranks must stop at the same epoch)."""
    if not rt.distributed:
        return flag
    t = torch.tensor([int(flag)], device=rt.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        dist.barrier()


class Logger:
    """Prints on the main process only, flushed at once (SageMaker parses stdout as it streams)."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def __call__(self, message: str) -> None:
        if self.rt.is_main:
            print(message, flush=True)
