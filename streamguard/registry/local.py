"""Local-directory registry store (``file:///path`` or a plain path).

- Exclusive create: the content goes to a hidden temp file first, then ``os.link`` puts it at
  the final name; ``link`` fails if the name exists, and a reader never sees a half-written file.
- Compare-and-swap: under an ``fcntl.flock`` on a hidden lock file beside the object, compare the
  content hash (the local etag) and ``os.replace`` a temp file over it. ``flock`` is released by
  the kernel when a process dies, so a crash never leaves a stuck lock; separate ``open`` calls
  conflict, so threads of one process exclude each other as processes do.
Hidden names (``.``-prefixed) are never listed as keys. Any other OS error (a read-only or
unreadable registry directory, a full disk) becomes a :class:`RegistryError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from streamguard.core.archive import write_bytes_atomic, write_temp_beside
from streamguard.registry.records import PreconditionFailed, RecordExists, RegistryError
from streamguard.registry.store import RegistryStore, StoredObject


def path_from_uri(uri: str) -> Path:
    """The local path of a ``file://`` URI or a plain path (``~`` expanded)."""
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise RegistryError(f"registry URI {uri!r}: file URIs must be local (file:///path)")
        return Path(unquote(parsed.path)).expanduser()
    return Path(uri).expanduser()


@contextlib.contextmanager
def _os_errors(action: str, path: Path):
    """Turn an ``OSError`` into a ``RegistryError`` that names the path and what failed."""
    try:
        yield
    except RegistryError:
        raise
    except OSError as exc:
        where = exc.filename or path
        hint = " (is the registry read-only for this user?)" if isinstance(exc, PermissionError) or \
            exc.errno == errno.EROFS else ""
        raise RegistryError(f"{where}: cannot {action}: {exc.strerror or exc}{hint}") from exc


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore(RegistryStore):
    """Registry store in a local directory (created on first write)."""

    def __init__(self, root: str | os.PathLike):
        self.root = path_from_uri(os.fspath(root)).absolute()

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise RegistryError(f"invalid registry key {key!r}")
        return self.root.joinpath(*parts)

    def create(self, key: str, data: bytes) -> str:
        path = self._path(key)
        with _os_errors("write", path):
            return self._create(path, data)

    def _create(self, path: Path, data: bytes) -> str:
        tmp = write_temp_beside(path, data, fsync=True)
        os.chmod(tmp, 0o444)  # a created object is never edited in place (swaps replace the file)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise RecordExists(f"{path} already exists (registry records are immutable)") from None
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise RegistryError(
                    f"{path.parent}: the file system does not support hard links, which the local "
                    "registry needs for atomic exclusive create; use another directory or s3://"
                ) from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return _etag(data)

    def read(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            with _os_errors("read", path):
                data = path.read_bytes()
        except RegistryError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return None
            raise
        return StoredObject(data=data, etag=_etag(data))

    def replace(self, key: str, data: bytes, etag: str | None) -> str:
        if etag is None:
            try:
                return self.create(key, data)
            except RecordExists as exc:
                raise PreconditionFailed(str(exc)) from None
        path = self._path(key)
        with _os_errors("update", path), self._locked(path):
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                raise PreconditionFailed(f"{path} vanished before compare-and-swap") from None
            if _etag(current) != etag:
                raise PreconditionFailed(f"{path} changed since it was read")
            write_bytes_atomic(path, data, fsync=True)
        return _etag(data)

    @contextlib.contextmanager
    def _locked(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / f".{path.name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        keys = []

        def fail(exc: OSError) -> None:
            raise RegistryError(f"{exc.filename or base}: cannot list: {exc.strerror or exc}") from exc

        for dirpath, dirnames, filenames in os.walk(base, onerror=fail):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if not name.startswith("."):
                    keys.append((rel / name).as_posix())
        return sorted(keys)

    def list_prefixes(self, prefix: str) -> list[str]:
        base = self.root / prefix.strip("/")
        if not base.is_dir():
            return []
        with _os_errors("list", base):
            return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
