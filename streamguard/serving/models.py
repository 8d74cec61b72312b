"""Load a model the way the SageMaker inference container does: unpack model.tar.gz, run its `code/inference.py`.

`load_model_dir(dir)` imports the archive's own handler (``code/inference.py`` and the modules
beside it) and calls its ``model_fn``; `load_registered(spec)` first resolves
``<model>@<alias or version>`` in the registry, refuses rejected versions, downloads the artifact
and checks its sha256 against the registry record. Several models can live in one process (A/B):
each archive's modules are imported under its own code dir and removed from ``sys.modules``
afterwards, so the second archive's ``inference``/``models``/``data`` do not resolve to the first's.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_IMPORT_LOCK = threading.Lock()


class ModelLoadError(RuntimeError):
    """A model that cannot be served: the message says which and why, ``hint`` what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class Handler:
    """One loaded model with the handler functions of its own archive."""

    name: str                 # what the logs call it: "taint_flow_gnn@3" or the model dir
    version: str              # model_version in responses
    module: Any               # the archive's inference module
    model: Any                # what model_fn returned
    record: dict | None = None  # the registry version record, when loaded from the registry

    @property
    def model_type(self) -> str:
        return self.model.model_type

    def invoke(self, body: bytes | str, content_type: str = "application/json",
               accept: str = "application/json") -> tuple[str, str]:
        """input_fn -> predict_fn -> output_fn, as the container runs them; returns (body, content type)."""
        data = self.module.input_fn(body, content_type)
        prediction = self.module.predict_fn(data, self.model)
        return self.module.output_fn(prediction, accept)

    def predict(self, instances: list[dict]) -> list[dict]:
        """Predictions for already-decoded instances (scan)."""
        import json

        data = self.module.input_fn(json.dumps({"instances": instances}), "application/json")
        return self.module.predict_fn(data, self.model)


def _import_handler(code_dir: Path):
    """Import ``code_dir/inference.py`` with ``code_dir`` first on the path, then forget its modules' names."""
    code_dir = code_dir.resolve()
    names = _entry_modules(code_dir)
    with _IMPORT_LOCK:
        before = set(sys.modules)
        # Modules an earlier archive left under these names must not be reused.
        shadowed = {name: sys.modules.pop(name) for name in list(sys.modules) if _is_entry_module(name, names)}
        sys.path.insert(0, str(code_dir))
        try:
            module = importlib.import_module("inference")
            return module, _Forget(code_dir, before, shadowed, names)
        except BaseException:
            _Forget(code_dir, before, shadowed, names)()
            raise


# The entry's module names in archives of every age (newer archives add theirs through `_entry_modules`).
_ENTRY_MODULES = ("inference", "train_enhanced_models", "artifacts", "data", "engine", "baseline", "progress",
                  "models")


def _entry_modules(code_dir: Path) -> frozenset[str]:
    """The top-level module names an archive's ``code/`` provides (its own ``streamguard`` aside)."""
    found = {p.stem for p in code_dir.glob("*.py")}
    found |= {p.name for p in code_dir.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    return frozenset((found | set(_ENTRY_MODULES)) - {"streamguard"})


def _is_entry_module(name: str, names: frozenset[str]) -> bool:
    return name.split(".", 1)[0] in names


class _Forget:
    """Undo `_import_handler`'s path change and drop the archive's module names (objects stay alive)."""

    def __init__(self, code_dir: Path, before: set[str], shadowed: dict[str, Any], names: frozenset[str]):
        self.code_dir, self.before, self.shadowed, self.names = code_dir, before, shadowed, names

    def __call__(self) -> None:
        with _IMPORT_LOCK:
            if str(self.code_dir) in sys.path:
                sys.path.remove(str(self.code_dir))
            for name in list(sys.modules):
                if name not in self.before and _is_entry_module(name, self.names):
                    del sys.modules[name]
            sys.modules.update(self.shadowed)


def load_model_dir(model_dir: str | Path, *, version: str | None = None, name: str | None = None,
                   record: dict | None = None) -> Handler:
    """Load an unpacked model directory with its own ``code/inference.py`` (SageMaker's layout).

    Raises:
        ModelLoadError: no such directory, no handler code in it (a model trained before the
            handler shipped with the archive), or its ``model_fn`` failed.
    """
    model_dir = Path(model_dir)
    code_dir = model_dir / "code"
    if not (model_dir / "config.json").is_file():
        raise ModelLoadError(f"{model_dir}: not a model directory (no config.json)")
    if not (code_dir / "inference.py").is_file():
        raise ModelLoadError(f"{model_dir}: no code/inference.py in the model (trained before the serving "
                             "handler shipped with model.tar.gz)", "retrain it, or fine-tune it with --fine-tune")
    module, forget = _import_handler(code_dir)
    previous = os.environ.get(module.VERSION_ENV)
    try:
        if version:
            os.environ[module.VERSION_ENV] = version
        else:
            os.environ.pop(module.VERSION_ENV, None)
        # model_fn runs while the archive's modules are importable (lazy imports inside it).
        model = module.model_fn(str(model_dir))
    except Exception as exc:  # noqa: BLE001 - a model that does not load is one clear error
        raise ModelLoadError(f"{model_dir}: model_fn failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if previous is None:
            os.environ.pop(module.VERSION_ENV, None)
        else:
            os.environ[module.VERSION_ENV] = previous
        forget()
    return Handler(name=name or str(model_dir), version=model.version, module=module, model=model, record=record)


def parse_spec(spec: str) -> tuple[str, str]:
    """``taint_flow_gnn@champion`` -> ("taint_flow_gnn", "champion"); no ``@``: the champion."""
    name, _, ref = spec.partition("@")
    if not name:
        raise ModelLoadError(f"--model {spec!r}: expected <registry model>@<alias or version>",
                             "e.g. --model taint_flow_gnn@champion or --model taint_flow_gnn@3")
    return name, ref or "champion"


def _cache_dir() -> Path:
    from streamguard.settings import streamguard_home

    return streamguard_home() / "serving-cache"


def fetch_artifact(record: Any, workdir: str | Path | None = None) -> Path:
    """Download a version's model.tar.gz, check its sha256 against the registry, unpack it; returns the dir."""
    from streamguard import storage
    from streamguard.core import archive

    sha = record.artifact_sha256
    base = Path(workdir) if workdir else _cache_dir()
    target = base / f"{record.model_name}-v{record.version}-{sha[:12]}"
    if (target / "config.json").is_file() and (target / ".sha256").is_file() \
            and (target / ".sha256").read_text().strip() == sha:
        return target
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sg-serve-", dir=base) as tmp:
        local = Path(tmp) / "model.tar.gz"
        try:
            storage.download(record.artifact_uri, str(local))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{record.model_name} v{record.version}: cannot fetch {record.artifact_uri}: {exc}",
                                 "check the artifact store and credentials") from exc
        try:
            with archive.atomic_directory(target, overwrite=True) as unpacked:
                archive.safe_extract(local, unpacked, expected_sha256=sha, where=record.artifact_uri)
                (unpacked / ".sha256").write_text(sha + "\n")
        except archive.ArchiveIntegrityError as exc:
            raise ModelLoadError(
                f"{record.model_name} v{record.version}: {exc}; refusing to serve it",
                "restore the original artifact, or register the new one as a new version") from exc
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{record.artifact_uri}: {exc}") from exc
    return target


def resolve_version(spec: str, registry_uri: str | None = None, *, allow_rejected: bool = False):
    """The registry record named by ``spec``; rejected versions are refused unless ``allow_rejected``."""
    from streamguard.registry import RegistryClient, RegistryError

    name, ref = parse_spec(spec)
    try:
        client = RegistryClient(registry_uri)
    except RegistryError as exc:
        raise ModelLoadError(str(exc), "pass --registry file:///path or s3://bucket/prefix") from exc
    try:
        text = ref[1:] if ref[:1] in ("v", "V") and ref[1:].isdigit() else ref
        record = client.get_version(name, int(text)) if text.isdigit() else (
            client.latest(name, status=None) if ref == "latest" else client.get_alias(name, ref))
    except RegistryError as exc:
        raise ModelLoadError(f"--model {spec}: {exc}", f"see `streamguard registry list {name}`") from exc
    if record is None:
        raise ModelLoadError(f"--model {spec}: model {name!r} has no {'versions' if ref == 'latest' else f'alias {ref!r}'} "
                             f"in registry {client.uri}", f"see `streamguard registry list {name}`")
    if record.status == "rejected" and not allow_rejected:
        reasons = "; ".join(record.gate.get("reasons", [])) or "no reason recorded"
        raise ModelLoadError(f"--model {spec}: {name} v{record.version} was rejected by the gate ({reasons}); "
                             "it is not served", "serve the champion, or a version that passed the gate")
    return record


def load_registered(spec: str, registry_uri: str | None = None, *, allow_rejected: bool = False,
                    workdir: str | Path | None = None) -> Handler:
    """Resolve, fetch (sha256-checked) and load a registered model."""
    record = resolve_version(spec, registry_uri, allow_rejected=allow_rejected)
    model_dir = fetch_artifact(record, workdir)
    version = f"{record.model_name}@{record.version}"
    return load_model_dir(model_dir, version=version, name=version, record=record.to_dict())
