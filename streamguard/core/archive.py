"""Archives and atomic files: the one place the bundle, the entry and the UI check, unpack and write.

Shipped to SageMaker with the rest of ``streamguard/core`` (standard library only), so the training
entry uses the same code as the DAG side.

Archives. Every member of an archive is checked before anything is read or written, and one bad
member refuses the whole archive: an absolute path, a ``..`` component, a backslash, a link or a
special file (device, FIFO). Extraction then goes through ``tarfile``'s ``"data"`` filter, which
repeats those checks, refuses a path that resolves outside the destination and strips setuid and
group/other write bits. With ``expected_sha256`` (the registry's hash of the archive) the file's
hash is compared before any member is looked at. Members are addressed by their path without a
leading ``./`` (``tar -C dir .`` writes one).

Atomic writes. A file is written beside its target under a hidden temp name and renamed over it
(``os.replace``), so readers, and a kill mid-write, see the old content or the new, never a torn
file; a directory is built under a temp name and renamed into place the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive that cannot be used as given: unreadable, unsafe or changed since it was recorded."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the destination or is not a plain file/directory."""


class ArchiveIntegrityError(ArchiveError):
    """An archive no longer matches the sha256 recorded for it (the registry's)."""


# ------------------------------------------------------------------------------------ hashes
def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: str | os.PathLike, expected: str | None, where: str | None = None) -> str:
    """The file's sha256.

    Raises:
        ArchiveIntegrityError: ``expected`` is given and differs (case is ignored).
    """
    actual = file_sha256(path)
    if expected and actual != expected.lower():
        raise ArchiveIntegrityError(
            f"{where or path}: refused, sha256 is {actual}, which differs from the registry's {expected}: "
            "the archive was changed after registration")
    return actual


# ----------------------------------------------------------------------------- member checks
def check_member_name(name: str, where: str) -> None:
    """Refuse a member name that is absolute or could climb out of the destination.

    Raises:
        UnsafeArchiveError: empty, absolute (``/``, ``\\`` or a drive letter), a ``..`` component
            or a backslash.
    """
    pure = PurePosixPath(name)
    if not name or name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{where}: refusing member: {name!r} has an absolute path")
    if ".." in pure.parts or ".." in name.replace("\\", "/").split("/"):
        raise UnsafeArchiveError(f"{where}: refusing member: {name!r} contains '..'")
    if "\\" in name:
        raise UnsafeArchiveError(f"{where}: refusing member: {name!r} contains a backslash")


def check_member(member: tarfile.TarInfo, where: str) -> None:
    """Refuse a member that could write or point outside the destination.

    Raises:
        UnsafeArchiveError: see `check_member_name`; a symlink or hard link; a device or FIFO.
    """
    check_member_name(member.name, where)
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"{where}: refusing member: {member.name!r} is a link (to {member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{where}: refusing member: {member.name!r} is not a regular file or directory")


def member_key(name: str) -> str:
    """The member's path without ``.`` components (``./metrics.json`` -> ``metrics.json``)."""
    return "/".join(p for p in PurePosixPath(name).parts if p != ".")


@contextlib.contextmanager
def open_checked(archive: str | os.PathLike, *, expected_sha256: str | None = None, where: str | None = None,
                 hash_always: bool = True) -> Iterator[tuple[tarfile.TarFile, list[tarfile.TarInfo], str]]:
    """Open a tar(.gz) whose hash (when expected) and every member have been checked.

    Yields:
        (the open archive, its members, the file's sha256; "" when neither expected nor
        ``hash_always``).

    Raises:
        ArchiveIntegrityError: the sha256 differs from ``expected_sha256``.
        UnsafeArchiveError: a member fails `check_member`.
        ArchiveError: not a readable tar archive.
    """
    where = where or str(archive)
    sha = check_sha256(archive, expected_sha256, where) if expected_sha256 or hash_always else ""
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError) as error:
        raise ArchiveError(f"{where}: not a readable tar archive ({error})") from error
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError) as error:
            raise ArchiveError(f"{where}: not a readable tar archive ({error})") from error
        for member in members:
            check_member(member, where)
        yield tar, members, sha


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *, expected_sha256: str | None = None,
                 where: str | None = None) -> Path:
    """Unpack a tar(.gz) into ``dest`` after checking its hash and every member; returns ``dest``.

    Nothing is extracted when the hash or a member check fails. The ``"data"`` filter judges each
    member as it is extracted, so when it refuses one (a path that resolves outside ``dest``
    through a link already there) the members before it are on disk: callers extract into a
    fresh directory (or `atomic_directory`) and drop it on an error.

    Raises:
        ArchiveIntegrityError, UnsafeArchiveError, ArchiveError: as `open_checked`; also
            UnsafeArchiveError when the filter refuses a member, ArchiveError when the data
            cannot be read.
    """
    where = where or str(archive)
    dest_path = Path(dest)
    with open_checked(archive, expected_sha256=expected_sha256, where=where, hash_always=False) as (tar, members, _):
        dest_path.mkdir(parents=True, exist_ok=True)
        try:
            tar.extractall(dest_path, members=members, filter="data")
        except tarfile.FilterError as error:
            name = getattr(getattr(error, "tarinfo", None), "name", "?")
            raise UnsafeArchiveError(f"{where}: refusing member: {name!r} ({error})") from error
        except (tarfile.TarError, EOFError) as error:
            raise ArchiveError(f"{where}: not a readable tar archive ({error})") from error
    return dest_path


@dataclass(frozen=True)
class ArchiveContents:
    """What `read_members` found.

    Attributes:
        sha256: the archive file's sha256.
        files: the requested members that are regular files, by `member_key`.
        sizes: every regular file's size in bytes, by `member_key`.
    """

    sha256: str
    files: dict[str, bytes] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def read_members(archive: str | os.PathLike, names: Iterable[str], *, expected_sha256: str | None = None,
                 where: str | None = None, max_member_bytes: int | None = None) -> ArchiveContents:
    """Read the named members of a checked archive (see `open_checked`) without extracting anything.

    Raises:
        ArchiveIntegrityError, UnsafeArchiveError, ArchiveError: as `open_checked`; also ArchiveError
            when a requested member is over ``max_member_bytes``.
    """
    where = where or str(archive)
    wanted = set(names)
    files: dict[str, bytes] = {}
    sizes: dict[str, int] = {}
    with open_checked(archive, expected_sha256=expected_sha256, where=where) as (tar, members, sha):
        for member in members:
            if not member.isfile():
                continue
            key = member_key(member.name)
            sizes[key] = member.size
            if key not in wanted:
                continue
            if max_member_bytes is not None and member.size > max_member_bytes:
                raise ArchiveError(f"{where}: {key} is {member.size} bytes, over the {max_member_bytes} limit")
            try:
                handle = tar.extractfile(member)
                if handle is None:
                    raise ArchiveError(f"{where}: cannot read member {member.name!r}")
                files[key] = handle.read()
            except (tarfile.TarError, EOFError, OSError) as error:
                raise ArchiveError(f"{where}: cannot read member {member.name!r} ({error})") from error
    return ArchiveContents(sha256=sha, files=files, sizes=sizes)


def read_json_member(archive: str | os.PathLike, name: str, *, expected_sha256: str | None = None,
                     where: str | None = None) -> Any:
    """One JSON member of a checked archive, parsed; None when the archive has no such file.

    Raises:
        as `read_members`; ArchiveError when the member is not JSON.
    """
    where = where or str(archive)
    data = read_members(archive, [name], expected_sha256=expected_sha256, where=where).files.get(member_key(name))
    if data is None:
        return None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{where}: {name} is not valid JSON ({error})") from error


# ----------------------------------------------------------------------------- atomic writes
def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_temp_beside(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to a new hidden temp file beside ``path`` (creating the folder); returns it.

    For publishing steps other than a rename (the registry's hard-link create); else use
    `write_bytes_atomic`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    with open(tmp, "xb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that takes a file name; renamed over ``path`` on a
    clean exit, removed on an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Replace ``path``'s content with ``data`` in one rename; ``fsync`` flushes it to disk first."""
    path = Path(path)
    tmp = write_temp_beside(path, data, fsync=fsync)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`write_bytes_atomic` of UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, sort_keys: bool = False,
                      default: Callable[[Any], Any] | None = None) -> Path:
    """`write_text_atomic` of ``obj`` as JSON, with a final newline."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n")


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """An empty staging directory beside ``final``, renamed to ``final`` on a clean exit.

    ``overwrite`` removes an existing ``final`` first; without it the rename fails (OSError) when
    ``final`` is already there. The staging directory is removed on an error.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield staging
        if overwrite and final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
