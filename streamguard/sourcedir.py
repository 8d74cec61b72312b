"""The SageMaker script-mode source dir as a deterministic ``sourcedir.tar.gz``, and safe unpacking.

Archive layout (what the container extracts to ``/opt/ml/code`` and puts on ``PYTHONPATH``)::

    train_enhanced_models.py, models/..., requirements.txt, ...   <- training_entry/* at the root
    streamguard/__init__.py, streamguard/core/...                  <- featurizer, records, metrics

Entries are sorted, with fixed mtimes, owners and modes, and the gzip header carries no name or
time, so the archive's sha256 is a content hash of the shipped code. ``__pycache__``, ``*.pyc``
and hidden files are left out.

Checking and unpacking archives, and the atomic write, live in `streamguard.core.archive`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from streamguard.core.archive import check_member_name, write_bytes_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAINING_ENTRY_DIR = REPO_ROOT / "training_entry"
PACKAGE_DIR = Path(__file__).resolve().parent
ENTRY_POINT = "train_enhanced_models.py"
_FIXED_MTIME = 946684800  # 2000-01-01, any fixed value works; 0 upsets some unpackers
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints"}


def _files_under(root: Path, *, source_only: bool = True) -> list[Path]:
    """Every file under ``root``, sorted; ``source_only`` leaves out caches and hidden files."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        if source_only:
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        dirnames.sort()
        for name in sorted(filenames):
            if source_only and (name.startswith(".") or name.endswith((".pyc", ".pyo"))):
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                raise ValueError(f"{path}: symlinks are not shipped in archives (copy the file instead)")
            out.append(path)
    return out


def write_deterministic_tar(members: Iterable[tuple[str, Path]], out_path: str | os.PathLike) -> tuple[Path, str]:
    """Write ``(arcname, file)`` pairs as a reproducible tar.gz; returns (path, sha256 hex).

    Raises:
        ValueError: duplicate or unsafe archive names.
    """
    pairs = sorted(members, key=lambda m: m[0])
    names = [name for name, _ in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"write_deterministic_tar: duplicate archive names {duplicates}")
    for name in names:
        check_member_name(name, "write_deterministic_tar")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, path in pairs:
                data = Path(path).read_bytes()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = _FIXED_MTIME
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    payload = buf.getvalue()
    write_bytes_atomic(out, payload)
    return out, hashlib.sha256(payload).hexdigest()


def tar_directory(src_dir: str | os.PathLike, out_path: str | os.PathLike) -> tuple[Path, str]:
    """Tar every file under ``src_dir`` (hidden ones too) with paths relative to it, like
    SageMaker's model.tar.gz; a missing directory gives an empty archive."""
    src = Path(src_dir)
    files = _files_under(src, source_only=False) if src.is_dir() else []
    members = [(p.relative_to(src).as_posix(), p) for p in files]
    return write_deterministic_tar(members, out_path)


def sourcedir_members(entry_dir: str | os.PathLike = TRAINING_ENTRY_DIR, *, include_core: bool = True,
                      entry_point: str = ENTRY_POINT) -> list[tuple[str, Path]]:
    """The (archive name, file) pairs of the source dir.

    Raises:
        FileNotFoundError: ``entry_dir`` or its entry point is missing.
    """
    entry = Path(entry_dir)
    if not (entry / entry_point).is_file():
        raise FileNotFoundError(f"source dir {entry} has no entry point {entry_point}")
    members = [(p.relative_to(entry).as_posix(), p) for p in _files_under(entry)]
    if include_core:
        members.append(("streamguard/__init__.py", PACKAGE_DIR / "__init__.py"))
        core = PACKAGE_DIR / "core"
        members += [(f"streamguard/core/{p.relative_to(core).as_posix()}", p) for p in _files_under(core)]
        clash = sorted(n for n, _ in members if n.startswith("streamguard/")
                       and (entry / n).exists())
        if clash:
            raise ValueError(f"{entry} has its own {clash}: it would shadow the shipped streamguard package")
    return members


def build_sourcedir_tarball(out_path: str | os.PathLike, *, entry_dir: str | os.PathLike = TRAINING_ENTRY_DIR,
                            include_core: bool = True, entry_point: str = ENTRY_POINT) -> tuple[Path, str]:
    """Write the source dir as a deterministic tar.gz; returns (path, sha256 hex)."""
    return write_deterministic_tar(
        sourcedir_members(entry_dir, include_core=include_core, entry_point=entry_point), out_path
    )


def upload_sourcedir(uri: str, **kwargs) -> tuple[str, str]:
    """Build the tarball in a temp dir and copy it to ``uri`` (``file://`` or ``s3://``).

    Returns:
        (normalised destination URI, sha256 hex).
    """
    import tempfile

    from streamguard import storage

    with tempfile.TemporaryDirectory(prefix="sg-sourcedir-") as tmp:
        path, sha = build_sourcedir_tarball(Path(tmp) / "sourcedir.tar.gz", **kwargs)
        return storage.upload_file(path, uri), sha
