"""Files the entry script reads and writes: model dirs from model.tar.gz, weights, checkpoints.

Archive checks, safe extraction and atomic writes are `streamguard.core.archive` (shipped beside
this file).

Weights are always safetensors, and so is a checkpoint's optimizer state: its tensors as
safetensors, its hyperparameters and scalars as JSON in the file's metadata. Nothing is pickled.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from streamguard.core import archive

# A checkpoint dir holds, per epoch N, `last-eN.safetensors` (weights), `optimizer-eN.safetensors`,
# `ema-eN.safetensors` (the EMA shadow weights, with `--weight-averaging ema` only) and
# `checkpoint-eN.json` (the state), `best-eM.safetensors` for the best epoch M so far (the EMA
# weights of that epoch when averaging), and
# `checkpoint.json`, a copy of the newest state written last. Every safetensors file carries its epoch
# in its metadata too. SageMaker copies /opt/ml/checkpoints to S3 asynchronously, so after a spot
# restart the restored `checkpoint.json` can be newer than the weights beside it: `find_checkpoint`
# resumes from the newest state whose files are all there and all of its epoch.
CHECKPOINT_STATE = "checkpoint.json"
CHECKPOINT_KEEP = 2  # epochs whose files are kept (the newest and one to fall back on)
WEIGHTS = "model.safetensors"
_EPOCH_KEY = "streamguard_epoch"
_WEIGHT_KINDS = ("last", "optimizer", "ema", "best")


def checkpoint_file(kind: str, epoch: int) -> str:
    """``last``, ``optimizer``, ``ema`` or ``best`` weights of ``epoch``: ``<kind>-e<epoch>.safetensors``;
    ``state``: ``checkpoint-e<epoch>.json``."""
    if kind == "state":
        return f"checkpoint-e{int(epoch):05d}.json"
    if kind not in _WEIGHT_KINDS:
        raise ValueError(f"checkpoint_file: unknown kind {kind!r}")
    return f"{kind}-e{int(epoch):05d}.safetensors"


# ------------------------------------------------------------------------------ atomic writes

class ArtifactError(ValueError):
    """A model archive or directory that cannot be used as given (integrity, layout, unsafe member)."""


def write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON write (indented, keys in insertion order; paths and tensor scalars as values)."""
    archive.write_json_atomic(path, obj, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_weights(model: torch.nn.Module, path: str | Path, *, epoch: int | None = None) -> None:
    """Atomic safetensors write of a model's parameters and buffers (``epoch`` in its metadata)."""
    with archive.atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata=None if epoch is None else {_EPOCH_KEY: str(int(epoch))})


def file_epoch(path: str | Path) -> int | None:
    """The epoch recorded in a safetensors file's metadata; None if absent or unreadable."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            value = (f.metadata() or {}).get(_EPOCH_KEY)
        return int(value) if value is not None else None
    except Exception:  # noqa: BLE001 - a torn or foreign file is simply not a usable checkpoint
        return None


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load safetensors weights into `model` (strict: every key must match)."""
    missing, unexpected = load_model(model, str(path), strict=False)
    if missing or unexpected:
        raise ArtifactError(f"{path}: weights do not fit the model (missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]})")


# ------------------------------------------------------------------------------ model.tar.gz
def resolve_model_dir(path: str | Path, workdir: str | Path, expected_sha256: str | None = None) -> Path:
    """A directory holding `config.json` from a model dir, a model.tar.gz, or a channel holding one.

    Args:
        path: the model dir, the archive, or a channel directory containing `model.tar.gz`
            (the SageMaker model channel points at the job's `output/` prefix).
        workdir: where an archive is extracted.
        expected_sha256: the registry's sha256 of the archive; a mismatch (or an unpacked
            directory, which cannot be checked) is refused before anything is extracted.
    """
    p = Path(path)
    if p.is_dir() and (p / "config.json").is_file():
        if expected_sha256:
            raise ArtifactError(f"{path}: an unpacked model directory cannot be checked against sha256 "
                             f"{expected_sha256}; pass the model.tar.gz")
        return p
    if p.is_dir() and (p / "model.tar.gz").is_file():
        p = p / "model.tar.gz"
    if p.is_file() and (p.name.endswith((".tar.gz", ".tgz", ".tar"))):
        try:
            out = archive.safe_extract(p, Path(workdir) / "model", expected_sha256=expected_sha256)
        except archive.ArchiveError as exc:
            suffix = "; refusing to load it" if isinstance(exc, archive.ArchiveIntegrityError) else ""
            raise ArtifactError(f"{exc}{suffix}") from exc
        if not (out / "config.json").is_file():
            raise ArtifactError(f"{path}: the archive has no config.json at its root")
        return out
    raise ArtifactError(f"{path}: not a model directory (no config.json) nor a model.tar.gz")


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(ckpt_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict, ema: torch.nn.Module | None = None) -> None:
    """Write the resumable state of epoch ``state["epoch"]``: weights, optimizer state, the EMA
    shadow weights (``ema``, when given; the state then records ``"ema"``), then the JSON state.

    The JSON is written last and atomically, so a checkpoint.json always describes complete files
    on this disk; files of epochs older than the last `CHECKPOINT_KEEP` are then removed.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    epoch = int(state["epoch"])
    if (ema is not None) != bool(state.get("ema")):
        raise ValueError("save_checkpoint: EMA weights and the state's 'ema' record go together")
    save_weights(model, ckpt_dir / checkpoint_file("last", epoch), epoch=epoch)
    save_optimizer_state(optimizer, ckpt_dir / checkpoint_file("optimizer", epoch), epoch=epoch)
    if ema is not None:
        save_weights(ema, ckpt_dir / checkpoint_file("ema", epoch), epoch=epoch)
    write_json(ckpt_dir / checkpoint_file("state", epoch), state)
    write_json(ckpt_dir / CHECKPOINT_STATE, state)
    _prune_checkpoints(ckpt_dir, epoch)


def _epoch_of_name(name: str) -> tuple[str, int] | None:
    for kind, suffix in (*((k, ".safetensors") for k in _WEIGHT_KINDS), ("checkpoint", ".json")):
        prefix = f"{kind}-e"
        if name.startswith(prefix) and name.endswith(suffix) and name[len(prefix):-len(suffix)].isdigit():
            return kind, int(name[len(prefix):-len(suffix)])
    return None


def _prune_checkpoints(ckpt_dir: Path, newest: int) -> None:
    keep = set(range(newest - CHECKPOINT_KEEP + 1, newest + 1))
    best_keep = set()
    for epoch in keep:
        state = _read_state(ckpt_dir / checkpoint_file("state", epoch))
        if state and state.get("best"):
            best_keep.add(int(state["best"]["epoch"]))
    for path in ckpt_dir.iterdir():
        parsed = _epoch_of_name(path.name)
        if parsed is None:
            continue
        kind, epoch = parsed
        if (kind == "best" and epoch not in best_keep) or (kind != "best" and epoch not in keep):
            path.unlink(missing_ok=True)


def _read_state(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("epoch"), int) else None


def save_optimizer_state(optimizer: torch.optim.Optimizer, path: str | Path, *, epoch: int | None = None) -> None:
    """``optimizer.state_dict()`` as safetensors (atomically): tensor state as ``state.<param>.<name>``,
    the param groups and any non-tensor state as JSON metadata."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for param, entries in sd["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{param}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{param}.{name}"] = value
    metadata = {"format": "streamguard-optimizer-1", "param_groups": json.dumps(sd["param_groups"]),
                "scalars": json.dumps(scalars)}
    if epoch is not None:
        metadata[_EPOCH_KEY] = str(int(epoch))
    with archive.atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_optimizer_state(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Load what `save_optimizer_state` wrote into ``optimizer`` (its params decide device and dtype)."""
    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = f.metadata() or {}
        if metadata.get("format") != "streamguard-optimizer-1":
            raise ValueError(f"{path}: not an optimizer state written by this entry (format {metadata.get('format')!r})")
        for key in f.keys():
            _, param, name = key.split(".", 2)
            state.setdefault(int(param), {})[name] = f.get_tensor(key)
    for key, value in json.loads(metadata["scalars"]).items():
        param, name = key.split(".", 1)
        state.setdefault(int(param), {})[name] = value
    groups = json.loads(metadata["param_groups"])
    for group in groups:  # JSON has no tuples; optimizers compare and unpack these as tuples
        for key, value in group.items():
            if key != "params" and isinstance(value, list):
                group[key] = tuple(value)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def load_checkpoint(ckpt_dir: str | Path, log=None) -> dict | None:
    """The newest consistent checkpoint state in `ckpt_dir`, or None when there is none.

    Consistent: the state's weights, optimizer state and best weights are all present and each
    records the epoch the state expects. A newer state whose files are missing or of another epoch
    (an asynchronous copy caught mid-way) is skipped, with the reason passed to ``log``; the state
    returned carries ``"_skipped"``: the epochs passed over.

    Raises:
        ValueError: ``checkpoint.json`` exists but is not JSON, and no other state is usable.
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    states: dict[int, dict] = {}
    corrupt = None
    for path in sorted(ckpt_dir.glob("checkpoint*.json")):
        state = _read_state(path)
        if state is None:
            if path.name == CHECKPOINT_STATE:
                corrupt = path
            continue
        states.setdefault(int(state["epoch"]), state)
    skipped = []
    for epoch in sorted(states, reverse=True):
        problem = checkpoint_problem(ckpt_dir, states[epoch])
        if problem is None:
            return {**states[epoch], "_skipped": skipped}
        skipped.append(epoch)
        if log is not None:
            log(f"checkpoint of epoch {epoch} in {ckpt_dir} is not usable ({problem}); trying an older one")
    if corrupt is not None and not states:
        raise ValueError(f"{corrupt}: corrupt checkpoint state; delete the checkpoint dir to start over")
    if states and log is not None:
        log(f"no consistent checkpoint in {ckpt_dir} (epochs {sorted(states)}): starting from scratch")
    return None


def checkpoint_problem(ckpt_dir: str | Path, state: dict) -> str | None:
    """Why ``state``'s files in ``ckpt_dir`` cannot be resumed from, or None when they can."""
    ckpt_dir = Path(ckpt_dir)
    epoch = int(state["epoch"])
    needed = [("last", epoch), ("optimizer", epoch)]
    if state.get("ema"):
        needed.append(("ema", epoch))
    if state.get("best"):
        needed.append(("best", int(state["best"]["epoch"])))
    for kind, want in needed:
        path = ckpt_dir / checkpoint_file(kind, want)
        if not path.is_file():
            return f"{path.name} is missing"
        got = file_epoch(path)
        if got != want:
            return f"{path.name} records epoch {got}, not {want}"
    return None


def restore_checkpoint(ckpt_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       device: torch.device, state: dict, ema: torch.nn.Module | None = None) -> bool:
    """Load ``state``'s weights and optimizer state into `model` and `optimizer`, and its EMA shadow
    weights into ``ema`` when both are there; returns whether EMA weights were loaded."""
    ckpt_dir = Path(ckpt_dir)
    load_weights(model, ckpt_dir / checkpoint_file("last", state["epoch"]))
    load_optimizer_state(optimizer, ckpt_dir / checkpoint_file("optimizer", state["epoch"]))
    if ema is None or not state.get("ema"):
        return False
    load_weights(ema, ckpt_dir / checkpoint_file("ema", state["epoch"]))
    return True


def copy_into(src: str | Path, dest_dir: str | Path) -> None:
    """Copy one file into a directory (creating it)."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest_dir / Path(src).name)


CODE_DIR = "code"
_CODE_SKIP = ("__pycache__", ".pytest_cache")


def _code_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not any(part in _CODE_SKIP or part.startswith(".")
                                                                        for part in p.relative_to(root).parts)
                  and not p.name.endswith((".pyc", ".pyo")))


def write_inference_code(model_dir: str | Path, entry_dir: str | Path | None = None) -> Path:
    """Copy the serving code into ``<model_dir>/code`` so model.tar.gz is self-contained.

    The SageMaker PyTorch inference container runs ``code/inference.py`` (``SAGEMAKER_PROGRAM``)
    with ``code/`` on the path and installs ``code/requirements.txt`` first; the handler imports the
    entry's modules and the featurizer (``streamguard/core``), so both travel: the entry dir as it
    is (the source dir on SageMaker, ``training_entry/`` in a checkout) and the ``streamguard``
    package's ``__init__.py`` and ``core/``.
    """
    import importlib

    entry = Path(entry_dir) if entry_dir else Path(__file__).resolve().parent
    if not (entry / "inference.py").is_file():
        raise FileNotFoundError(f"{entry}: no inference.py to ship with the model")
    core = Path(importlib.import_module("streamguard.core").__file__).resolve().parent
    dest = Path(model_dir) / CODE_DIR
    if dest.exists():
        shutil.rmtree(dest)
    pairs = [(f, dest / f.relative_to(entry)) for f in _code_files(entry)
             if f.relative_to(entry).parts[0] != "streamguard"]
    pairs.append((core.parent / "__init__.py", dest / "streamguard" / "__init__.py"))
    pairs += [(f, dest / "streamguard" / "core" / f.relative_to(core)) for f in _code_files(core)]
    for src, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return dest


def scratch_dir() -> Path:
    """A temporary working directory (extracted archives)."""
    return Path(tempfile.mkdtemp(prefix="sg-entry-"))
