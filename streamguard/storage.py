"""URI helpers over fsspec: one API for ``file://`` and ``s3://`` (plain paths become ``file://``).

s3fs is imported by fsspec only when an ``s3://`` URI is used, so importing this module is cheap.
The S3 endpoint follows ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (moto, MinIO) when set.
Directory listings are not cached: several processes write the same prefixes.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from pathlib import Path
from urllib.parse import unquote, urlparse

from streamguard import uri_policy
from streamguard.core.archive import write_bytes_atomic

SCHEMES = uri_policy.SCHEMES
_CHUNK = 1 << 20


def normalize_uri(path_or_uri: str | os.PathLike) -> str:
    """A canonical URI: ``s3://bucket/key`` kept (no trailing ``/``), paths -> absolute ``file://``.

    The rules are ``streamguard.uri_policy``'s: every read and write goes through them.

    Raises:
        ValueError: an empty value, a scheme other than file:// and s3://, a chained URL, or a
            file:// URI naming a host.
    """
    return uri_policy.check_uri(path_or_uri)


def is_s3(uri: str | os.PathLike) -> bool:
    return os.fspath(uri).lower().startswith("s3://")


def join_uri(base: str | os.PathLike, *parts: str) -> str:
    """``join_uri("s3://b/p", "a", "b.json") -> "s3://b/p/a/b.json"`` (parts never escape base)."""
    uri = normalize_uri(base)
    clean = [p.strip("/") for p in parts if p and p.strip("/")]
    for part in clean:
        if any(seg == ".." for seg in part.split("/")):
            raise ValueError(f"join_uri: part {part!r} may not contain '..'")
    return "/".join([uri.rstrip("/"), *clean]) if clean else uri


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` URI (or a plain path)."""
    uri = normalize_uri(uri)
    if is_s3(uri):
        raise ValueError(f"{uri!r} is not a local path")
    return Path(unquote(urlparse(uri).path))


def _fs(uri: str):
    """(filesystem, path-for-that-filesystem) for a normalised URI."""
    import fsspec

    if is_s3(uri):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs = {"use_listings_cache": False}
        if endpoint:
            kwargs["client_kwargs"] = {"endpoint_url": endpoint}
        return fsspec.filesystem("s3", **kwargs), uri[len("s3://"):]
    return fsspec.filesystem("file"), str(local_path(uri))


def _refuse_special(uri: str, fs_path: str) -> None:
    """Refuse local FIFOs, sockets and devices: opening one could block forever."""
    if is_s3(uri):
        return
    try:
        mode = os.stat(fs_path).st_mode
    except OSError:
        return  # the caller's own open reports a missing or unreadable file
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{Path(fs_path).as_uri()} is not a regular file (a FIFO, socket or device): refused")


def _uri_for(uri: str, fs_path: str) -> str:
    return f"s3://{fs_path.lstrip('/')}" if is_s3(uri) else Path(fs_path).as_uri()


def read_bytes(uri: str) -> bytes:
    uri = normalize_uri(uri)
    fs, path = _fs(uri)
    _refuse_special(uri, path)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri} does not exist") from None


def write_bytes(uri: str, data: bytes) -> str:
    """Write an object whole; local files go through a temp file + rename, so never torn."""
    uri = normalize_uri(uri)
    if is_s3(uri):
        fs, path = _fs(uri)
        fs.pipe_file(path, data)
        return uri
    write_bytes_atomic(local_path(uri), data)
    return uri


def read_text(uri: str, encoding: str = "utf-8") -> str:
    return read_bytes(uri).decode(encoding)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> str:
    return write_bytes(uri, text.encode(encoding))


def exists(uri: str) -> bool:
    """True for an existing file/object or a non-empty prefix/directory."""
    uri = normalize_uri(uri)
    fs, path = _fs(uri)
    return bool(fs.exists(path))


def list_dir(uri: str, recursive: bool = False) -> list[str]:
    """URIs under ``uri``: immediate children, or every file when ``recursive``. Sorted; [] if absent."""
    uri = normalize_uri(uri)
    fs, path = _fs(uri)
    try:
        if recursive:
            found = fs.find(path)
        else:
            found = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    base = path.rstrip("/")
    return sorted(_uri_for(uri, p) for p in found if p.rstrip("/") != base)


def upload_file(local: str | os.PathLike, uri: str) -> str:
    """Copy one local file to ``uri``; returns the normalised destination URI."""
    src = Path(local)
    if not src.is_file():
        raise FileNotFoundError(f"upload_file: {src} is not a file")
    uri = normalize_uri(uri)
    if is_s3(uri):
        fs, path = _fs(uri)
        fs.put_file(str(src), path)
        return uri
    target = local_path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    fs, _ = _fs(uri)
    fs.put_file(str(src), str(target))
    return uri


def upload_dir(local_dir: str | os.PathLike, uri: str) -> list[str]:
    """Copy every file under ``local_dir`` to ``uri``/<relative path>; returns the URIs written."""
    src = Path(local_dir)
    if not src.is_dir():
        raise NotADirectoryError(f"upload_dir: {src} is not a directory")
    written = []
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        written.append(upload_file(file, join_uri(uri, file.relative_to(src).as_posix())))
    return written


def delete(uri: str) -> None:
    """Remove one file or object (not a prefix); a missing one is not an error."""
    uri = normalize_uri(uri)
    fs, path = _fs(uri)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass


def download(uri: str, local: str | os.PathLike) -> Path:
    """Fetch a file, or every file under a prefix, to ``local``.

    A single object lands at ``local`` (or inside it when ``local`` is an existing directory);
    a prefix lands under ``local`` as a directory tree mirroring the keys.

    Raises:
        FileNotFoundError: nothing exists at ``uri``.
    """
    uri = normalize_uri(uri)
    fs, path = _fs(uri)
    _refuse_special(uri, path)
    dest = Path(local)
    if fs.isfile(path):
        if dest.is_dir():
            dest = dest / posixpath.basename(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _refuse_special(uri, path)
        fs.get_file(path, str(dest))
        return dest
    files = list_dir(uri, recursive=True)
    if not files:
        raise FileNotFoundError(f"{uri} does not exist (no file or prefix there)")
    prefix = uri.rstrip("/") + "/"
    for file_uri in files:
        target = dest.joinpath(*file_uri[len(prefix):].split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        _refuse_special(file_uri, _fs(file_uri)[1])
        fs.get_file(_fs(file_uri)[1], str(target))
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def sha256_uri(uri: str) -> str:
    """Hex SHA-256 of the object at ``uri``, streamed in 1 MiB chunks."""
    uri = normalize_uri(uri)
    fs, path = _fs(uri)
    digest = hashlib.sha256()
    _refuse_special(uri, path)
    try:
        with fs.open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri} does not exist") from None
    return digest.hexdigest()
