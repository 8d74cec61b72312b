"""Read JSON-lines inputs (plain or gzipped, files, directories or URIs) line by line.

Every line comes back as an :class:`InputLine`: either a decoded JSON object or an error reason,
so that one bad line never spoils its file and nothing is dropped without a trace.

Unreadable inputs (missing path, no permission, corrupt or truncated gzip) raise
:class:`InputError` naming the file, and the line reached when the failure is midway. The choice
is deliberate: a partly read input would silently shrink the dataset, so preparation fails as a
whole and writes nothing; the caller fixes or removes the input and runs again.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")
_GZIP_MAGIC = b"\x1f\x8b"


class InputError(Exception):
    """An input that cannot be read at all (or stops being readable midway)."""

    def __init__(self, file: str, message: str):
        super().__init__(f"{file}: {message}")
        self.file = file


@dataclass
class InputLine:
    """One line of one input: ``record`` when it decoded to a JSON object, else ``error``.

    ``line`` is 1-based; 0 marks a whole-file condition (an empty file). ``raw`` keeps the line
    text for quarantine; ``raw_base64`` keeps the exact bytes when they are not valid UTF-8.
    """

    file: str
    line: int
    record: dict | None = None
    error: str | None = None
    reason: str | None = None
    raw: str | None = None
    raw_base64: str | None = None


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` strings (but not Windows drive letters)."""
    scheme = urlparse(path).scheme
    return len(scheme) > 1


def _local_path(path: str) -> str | None:
    """The local path for plain paths and file:// URIs; None for other schemes."""
    if path.startswith("file://"):
        return unquote(urlparse(path).path)
    return None if is_uri(path) else os.path.expanduser(path)


def has_input_suffix(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def expand_inputs(inputs: list[str]) -> list[str]:
    """Expand directories (recursively, sorted) into the JSON-lines files they contain.

    Raises:
        InputError: for a path that does not exist or a directory holding no input files.
    """
    files: list[str] = []
    for item in inputs:
        local = _local_path(item)
        if local is not None:
            p = Path(local)
            if p.is_dir():
                found = sorted(str(f) for f in p.rglob("*") if f.is_file() and has_input_suffix(f.name))
                if not found:
                    raise InputError(item, f"directory holds no {', '.join(SUFFIXES)} files")
                files.extend(found)
            elif p.exists():
                files.append(str(p))
            else:
                raise InputError(item, "no such file or directory")
        else:
            files.extend(_expand_remote(item))
    return files


def _expand_remote(uri: str) -> list[str]:
    try:
        import fsspec  # lazy: only remote inputs need it
    except ImportError as exc:  # pragma: no cover - fsspec is pinned in requirements
        raise InputError(uri, "reading URIs needs the 'fsspec' package") from exc
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        if fs.isdir(path):
            found = sorted(p for p in fs.find(path) if has_input_suffix(p))
            if not found:
                raise InputError(uri, f"prefix holds no {', '.join(SUFFIXES)} files")
            return [fs.unstrip_protocol(p) for p in found]
        if not fs.exists(path):
            raise InputError(uri, "no such object")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any backend error means the input is unreadable
        raise InputError(uri, f"cannot list: {type(exc).__name__}: {exc}") from exc
    return [uri]


def _open_binary(file: str) -> IO[bytes]:
    local = _local_path(file)
    if local is not None:
        return open(local, "rb")
    import fsspec

    return fsspec.open(file, "rb").open()


def read_lines(file: str) -> Iterator[InputLine]:
    """Yield every line of one file as an :class:`InputLine` (gzip detected by magic bytes).

    Raises:
        InputError: the file cannot be opened, or decompression fails (naming the line reached).
    """
    try:
        raw_fh = _open_binary(file)
    except OSError as exc:
        raise InputError(file, f"cannot open: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - fsspec backends raise their own types
        raise InputError(file, f"cannot open: {type(exc).__name__}: {exc}") from exc
    line_no = 0
    with raw_fh:
        try:
            head = raw_fh.read(2)
            raw_fh.seek(0)
            fh: IO[bytes] = gzip.GzipFile(fileobj=raw_fh) if head == _GZIP_MAGIC else raw_fh
            if file.lower().endswith((".json", ".json.gz")):
                first = _peek_array(fh)
                if first is not None:
                    yield from _array_items(file, first)
                    return
            empty = True
            for raw in fh:
                line_no += 1
                empty = False
                item = _decode_line(file, line_no, raw)
                if item is not None:
                    yield item
            if empty:
                yield InputLine(file, 0, error="empty file", reason="empty_file", raw="")
        except (OSError, EOFError, zlib.error) as exc:
            where = f"after line {line_no}" if line_no else "at the start"
            raise InputError(file, f"unreadable {where}: {type(exc).__name__}: {exc}") from exc


def _peek_array(fh: IO[bytes]) -> Any:
    """For *.json files holding one JSON array (not JSON lines): the parsed array, else None."""
    data = fh.read()
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        try:
            value = json.loads(stripped.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            value = None
        if isinstance(value, list):
            return value
    fh.seek(0)
    return None


def _array_items(file: str, items: list) -> Iterator[InputLine]:
    if not items:
        yield InputLine(file, 0, error="empty JSON array", reason="empty_file", raw="[]")
    for i, value in enumerate(items, start=1):  # "line" is the 1-based array position here
        if isinstance(value, dict):
            yield InputLine(file, i, record=value)
        else:
            yield InputLine(file, i, error=f"JSON value is {_kind(value)}, not an object",
                            reason="not_object", raw=json.dumps(value, ensure_ascii=False))


def _decode_line(file: str, line_no: int, raw: bytes) -> InputLine | None:
    """Decode one line; None for blank lines (they carry no data)."""
    if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InputLine(file, line_no, error=f"line is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                                               f"{exc.start})", reason="invalid_utf8",
                         raw=raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n"),
                         raw_base64=base64.b64encode(raw).decode("ascii"))
    text = text.rstrip("\r\n")
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return InputLine(file, line_no, error=f"invalid JSON: {exc}", reason="invalid_json", raw=text)
    if not isinstance(value, dict):
        return InputLine(file, line_no, error=f"JSON value is {_kind(value)}, not an object",
                         reason="not_object", raw=text)
    return InputLine(file, line_no, record=value)


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def open_for_write(path: str) -> IO[bytes]:
    """Open a local path, file:// URI (or any fsspec URI) for binary writing; .gz compresses."""
    local = _local_path(path)
    if local is not None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        fh: IO[bytes] = open(local, "wb")
    else:
        import fsspec

        fh = fsspec.open(path, "wb").open()
    if path.lower().endswith(".gz"):
        # mtime=0 and no file name keep gzip output byte-identical across runs.
        return _GzipOwner(fh)
    return fh


class _GzipOwner(gzip.GzipFile):
    """A GzipFile that also closes the underlying file object."""

    def __init__(self, fileobj: IO[bytes]):
        super().__init__(filename="", mode="wb", fileobj=fileobj, mtime=0)
        self._owned = fileobj

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owned.close()
