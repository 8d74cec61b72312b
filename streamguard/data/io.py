"""Read JSON-lines inputs (plain or gzipped, files, directories or URIs) line by line.

Every line comes back as an :class:`InputLine`: either a decoded JSON object or an error reason,
so that one bad line never spoils its file and nothing is dropped without a trace.

Unreadable inputs (missing path, no permission, corrupt or truncated gzip) raise
:class:`InputError` naming the file, and the line reached when the failure is midway. The choice
is deliberate: a partly read input would silently shrink the dataset, so preparation fails as a
whole and writes nothing; the caller fixes or removes the input and runs again.

Hostile inputs are bounded: only ``file://`` and ``s3://`` are opened (``streamguard.uri_policy``);
directories skip hidden files and folders; FIFOs, sockets and devices are refused (opening one
could block forever); a line longer than ``max_line_bytes`` is skipped without being held and
reported with its length; a gzip stream that inflates beyond ``max_gzip_ratio`` times its size
is refused; JSON nested deeper than ``json_lines.MAX_DEPTH`` is rejected as a line, not a crash.

Decoding one line (UTF-8, JSON, object, depth) is `streamguard.data.json_lines`.
"""

from __future__ import annotations

import contextlib
import gzip
import io as stdio
import json
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from streamguard import uri_policy
from streamguard.data.json_lines import InputLine, array_items, decode_line

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")
_GZIP_MAGIC = b"\x1f\x8b"
# Longest line read (bytes, newline excluded); $STREAMGUARD_MAX_LINE_BYTES overrides. A record's
# code is capped at 200 kB by default, so 8 MiB leaves room for counterfactuals, graphs and escapes.
DEFAULT_MAX_LINE_BYTES = 8 << 20
# Largest decompressed/compressed ratio of a gzip input; $STREAMGUARD_MAX_GZIP_RATIO overrides
# (0: no limit). Real code corpora inflate 5-70x (Juliet: 65x); zeros or repeated "{}" ~1000x.
DEFAULT_MAX_GZIP_RATIO = 200
# The ratio is judged only past this many decompressed bytes: small files may inflate as they like.
_RATIO_GRACE_BYTES = 1 << 20
# Before any line is read, this much of a gzip input is inflated (at C speed, discarded) to judge
# the ratio, so a uniform bomb is refused at once; the check also runs while reading.
_PRESCAN_BYTES = 8 << 20
# Compressed reads are at most this long, so the consumed size (the ratio's denominator) is exact
# to within it rather than to gzip's 128 KiB read-ahead.
_COMPRESSED_READ = 8 << 10
# A *.json file holding one JSON array is parsed whole; above this size it must be JSON lines.
MAX_ARRAY_BYTES = 64 << 20
_CHUNK = 1 << 20


class InputError(Exception):
    """An input that cannot be read at all (or stops being readable midway)."""

    def __init__(self, file: str, message: str):
        super().__init__(f"{file}: {message}")
        self.file = file


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"${name}={text!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"${name}={value} must not be negative")
    return value


def line_cap() -> int:
    """The line-length cap in force: $STREAMGUARD_MAX_LINE_BYTES, else 8 MiB."""
    return _env_int("STREAMGUARD_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES) or DEFAULT_MAX_LINE_BYTES


def gzip_ratio_cap() -> int:
    """The gzip inflation cap in force: $STREAMGUARD_MAX_GZIP_RATIO, else 200 (0: none)."""
    return _env_int("STREAMGUARD_MAX_GZIP_RATIO", DEFAULT_MAX_GZIP_RATIO)


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` strings."""
    return "://" in path


def _checked(path: str) -> str:
    try:
        return uri_policy.check_uri(path)
    except uri_policy.UriPolicyError as exc:
        raise InputError(path, exc.reason) from None


def _local_path(path: str) -> str | None:
    """The local path for plain paths and file:// URIs; None for s3:// (others are refused)."""
    uri = _checked(path)
    if uri.startswith("s3://"):
        return None
    if "://" not in path:
        return os.path.expanduser(path)
    return unquote(urlparse(uri).path)


def has_input_suffix(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def _hidden(rel_parts: list[str]) -> bool:
    return any(part.startswith(".") for part in rel_parts)


def _special_kind(mode: int) -> str | None:
    """A name for a non-regular, non-directory file type (None for regular files and dirs)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "not a regular file"


def _refuse_special(item: str, mode: int) -> None:
    kind = _special_kind(mode)
    if kind is not None:
        raise InputError(item, f"is {kind}, not a regular file or directory: refused "
                               "(reading it could block forever)")


def expand_inputs(inputs: list[str]) -> list[str]:
    """Expand directories (recursively, sorted) into the JSON-lines files they contain.

    Hidden files and folders (``.``-prefixed) inside a directory are skipped; a file given by
    name is read whatever its name.

    Raises:
        InputError: a path that does not exist, a location the URI policy refuses, a FIFO,
            socket or device, or a directory holding no input files.
    """
    files: list[str] = []
    for item in inputs:
        local = _local_path(item)
        if local is None:
            files.extend(_expand_remote(_checked(item)))
            continue
        try:
            st = os.stat(local)
        except FileNotFoundError:
            raise InputError(item, "no such file or directory") from None
        except OSError as exc:
            raise InputError(item, f"cannot read: {exc.strerror or exc}") from exc
        if stat.S_ISDIR(st.st_mode):
            found = _walk(item, local)
            if not found:
                raise InputError(item, f"directory holds no {', '.join(SUFFIXES)} files")
            files.extend(found)
        else:
            _refuse_special(item, st.st_mode)
            files.append(str(Path(local)))
    return files


def _walk(item: str, top: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=None):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not has_input_suffix(name):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError as exc:
                raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
            _refuse_special(path, st.st_mode)
            found.append(str(Path(path)))
    return sorted(found)


def _expand_remote(uri: str) -> list[str]:
    from streamguard import storage  # s3fs only when an s3:// input is given

    try:
        fs, path = storage._fs(uri)
        if fs.isdir(path):
            base = path.rstrip("/") + "/"
            found = sorted(p for p in fs.find(path)
                           if has_input_suffix(p) and not _hidden(p[len(base):].split("/")))
            if not found:
                raise InputError(uri, f"prefix holds no {', '.join(SUFFIXES)} files")
            return [f"s3://{p.lstrip('/')}" for p in found]
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
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        try:
            fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            with contextlib.suppress(OSError):  # a socket cannot be opened at all: say what it is
                _refuse_special(file, os.stat(local).st_mode)
            raise
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(21, "is a directory")
            _refuse_special(file, mode)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
    from streamguard import storage

    fs, path = storage._fs(_checked(file))
    # fsspec's files lack readline(size); a standard buffer over them gives the bounded readline.
    return stdio.BufferedReader(fs.open(path, "rb"), buffer_size=_CHUNK)


class _Counting:
    """A read-only file wrapper counting the bytes read (the compressed size consumed)."""

    def __init__(self, fh: IO[bytes]):
        self._fh = fh
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(_COMPRESSED_READ if size is None or size < 0 else min(size, _COMPRESSED_READ))
        self.count += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._fh.seek(offset, whence)
        self.count = pos
        return pos

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return True


class _Reader:
    """Lines of one (maybe gzipped) stream with the length cap and the inflation check."""

    def __init__(self, file: str, raw_fh: IO[bytes], max_line: int, max_ratio: int):
        self.file = file
        self.max_line = max_line
        self.max_ratio = max_ratio
        head = raw_fh.read(2)
        raw_fh.seek(0)
        self.counter: _Counting | None = None
        self.inflated = 0
        self.line_no = 0
        if head == _GZIP_MAGIC:
            self.counter = _Counting(raw_fh)
            self.fh: Any = gzip.GzipFile(fileobj=self.counter)
            if self.max_ratio:
                self._prescan()
        else:
            self.fh = raw_fh

    def _prescan(self) -> None:
        try:
            while self.inflated < _PRESCAN_BYTES:
                chunk = self.fh.read(1 << 20)
                if not chunk:
                    break
                self._account(len(chunk))
        except (OSError, EOFError, zlib.error):
            pass  # a corrupt stream: reading it line by line reports where it breaks
        self.fh.seek(0)
        self.inflated = 0

    def _account(self, n: int) -> None:
        self.inflated += n
        if (self.counter is not None and self.max_ratio and self.inflated > _RATIO_GRACE_BYTES
                and self.inflated > self.max_ratio * max(self.counter.count, 1)):
            where = f"after line {self.line_no}" if self.line_no else "at the start"
            raise InputError(self.file, f"gzip stream inflates more than {self.max_ratio}x "
                                        f"({self.inflated} bytes from {self.counter.count}) {where}: refused as a "
                                        "likely decompression bomb; set STREAMGUARD_MAX_GZIP_RATIO (or "
                                        "--max-gzip-ratio) higher if the file is genuine")

    def read(self, size: int) -> bytes:
        data = self.fh.read(size)
        self._account(len(data))
        return data

    def rewind(self) -> None:
        self.fh.seek(0)
        self.inflated = 0

    def lines(self) -> Iterator[tuple[bytes | None, int]]:
        """(line bytes, length) per line; (None, length) for a line over the cap (not held)."""
        while True:
            raw = self.fh.readline(self.max_line + 2)  # + newline (+ one byte to see it overflow)
            if not raw:
                return
            self.line_no += 1
            self._account(len(raw))
            length = len(raw.rstrip(b"\r\n"))
            if length <= self.max_line:
                yield raw, length
                continue
            while not raw.endswith(b"\n"):  # skip the rest of the over-long line, counting it
                raw = self.fh.readline(_CHUNK)
                if not raw:
                    break
                self._account(len(raw))
                length += len(raw.rstrip(b"\r\n"))
            yield None, length


def read_lines(file: str, *, max_line_bytes: int | None = None,
               max_gzip_ratio: int | None = None) -> Iterator[InputLine]:
    """Yield every line of one file as an :class:`InputLine` (gzip detected by magic bytes).

    Args:
        max_line_bytes: longer lines are reported (reason ``line_too_long``, with their length)
            without being held in memory; None: :func:`line_cap`.
        max_gzip_ratio: refuse a gzip input inflating more than this (0: no limit); None:
            :func:`gzip_ratio_cap`.

    Raises:
        InputError: the file cannot be opened, the URI policy refuses it, it is a FIFO/socket/
            device, decompression fails or inflates too far (naming the line reached).
    """
    cap = line_cap() if max_line_bytes is None else max_line_bytes
    ratio = gzip_ratio_cap() if max_gzip_ratio is None else max_gzip_ratio
    if cap <= 0:
        raise ValueError(f"max_line_bytes must be positive, got {cap}")
    try:
        raw_fh = _open_binary(file)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(file, f"cannot open: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - fsspec backends raise their own types
        raise InputError(file, f"cannot open: {type(exc).__name__}: {exc}") from exc
    reader = None
    with raw_fh:
        try:
            reader = _Reader(file, raw_fh, cap, ratio)
            if file.lower().endswith((".json", ".json.gz")):
                first = _peek_array(reader)
                if first is not None:
                    yield from array_items(file, first)
                    return
            empty = True
            for raw, length in reader.lines():
                empty = False
                if raw is None:
                    yield InputLine(file, reader.line_no, reason="line_too_long", length=length,
                                    error=f"line is {length} bytes, over the {cap}-byte limit "
                                          "(STREAMGUARD_MAX_LINE_BYTES / --max-line-bytes); not read")
                    continue
                item = decode_line(file, reader.line_no, raw)
                if item is not None:
                    yield item
            if empty:
                yield InputLine(file, 0, error="empty file", reason="empty_file", raw="", length=0)
        except InputError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            line_no = reader.line_no if reader is not None else 0
            where = f"after line {line_no}" if line_no else "at the start"
            raise InputError(file, f"unreadable {where}: {type(exc).__name__}: {exc}") from exc


def _peek_array(reader: _Reader) -> Any:
    """For *.json files holding one JSON array (not JSON lines): the parsed array, else None."""
    head = reader.read(4096)
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        reader.rewind()
        return None
    data = head + reader.read(MAX_ARRAY_BYTES + 1 - len(head))
    if len(data) > MAX_ARRAY_BYTES:
        raise InputError(reader.file, f"a JSON array file over {MAX_ARRAY_BYTES} bytes: write it as JSON lines "
                                      "(one object per line, .jsonl) instead")
    try:
        value = json.loads(data.lstrip(b"\xef\xbb\xbf \t\r\n").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        value = None
    reader.rewind()
    if isinstance(value, list):
        return value
    return None


def open_for_write(path: str) -> IO[bytes]:
    """Open a local path, file:// or s3:// URI for binary writing; .gz compresses."""
    local = _local_path(path)
    if local is not None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        fh: IO[bytes] = open(local, "wb")
    else:
        from streamguard import storage

        fs, fs_path = storage._fs(_checked(path))
        fh = fs.open(fs_path, "wb")
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
