"""One decoded line of input (`InputLine`) and the rules that decode it.

A line is a record when it is valid UTF-8 (a leading BOM dropped), valid JSON, an object, and
nested at most :data:`MAX_DEPTH` containers deep; otherwise it comes back with an ``error``, a
``reason`` and what identifies its bytes, never as an exception. The items of a ``*.json`` file
holding one JSON array follow the same rules, numbered by their position in the array.
`streamguard.data.io` reads the lines and hands each to `decode_line`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Deepest nesting of a decoded value (a record is flat; a prepared graph is 3 deep).
MAX_DEPTH = 64


@dataclass
class InputLine:
    """One line of one input: ``record`` when it decoded to a JSON object, else ``error``.

    ``line`` is 1-based; 0 marks a whole-file condition (an empty file). ``raw`` keeps the line
    text for quarantine; ``raw_base64`` keeps the exact bytes when they are not valid UTF-8.
    ``length`` (bytes, newline excluded) and ``sha256`` (None for a line too long to hold)
    identify an error line without its text.
    """

    file: str
    line: int
    record: dict | None = None
    error: str | None = None
    reason: str | None = None
    raw: str | None = None
    raw_base64: str | None = None
    length: int | None = None
    sha256: str | None = None


def array_items(file: str, items: list) -> Iterator[InputLine]:
    if not items:
        yield InputLine(file, 0, error="empty JSON array", reason="empty_file", raw="[]", length=2)
    for i, value in enumerate(items, start=1):  # "line" is the 1-based array position here
        if isinstance(value, dict) and _depth_ok(value):
            yield InputLine(file, i, record=value)
            continue
        text = _safe_dumps(value)
        data = text.encode("utf-8", "surrogatepass")
        if isinstance(value, dict):
            yield InputLine(file, i, error=f"JSON nested deeper than {MAX_DEPTH} levels", reason="too_deep",
                            raw=text, length=len(data), sha256=hashlib.sha256(data).hexdigest())
        else:
            yield InputLine(file, i, error=f"JSON value is {_kind(value)}, not an object",
                            reason="not_object", raw=text, length=len(data), sha256=hashlib.sha256(data).hexdigest())


def _safe_dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):
        return "<value too deeply nested to print>"


def _depth_ok(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests at most ``limit`` containers deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return True


def decode_line(file: str, line_no: int, raw: bytes) -> InputLine | None:
    """Decode one line; None for blank lines (they carry no data)."""
    if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    raw = raw.rstrip(b"\r\n")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad_line(file, line_no, raw, "invalid_utf8",
                         f"line is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                         raw=raw.decode("utf-8", errors="backslashreplace"),
                         raw_base64=base64.b64encode(raw).decode("ascii"))
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        return _bad_line(file, line_no, raw, "too_deep", "invalid JSON: nested too deeply to parse", raw=text)
    except ValueError as exc:
        return _bad_line(file, line_no, raw, "invalid_json", f"invalid JSON: {exc}", raw=text)
    if not isinstance(value, dict):
        return _bad_line(file, line_no, raw, "not_object", f"JSON value is {_kind(value)}, not an object",
                         raw=text)
    if any(isinstance(v, (dict, list)) for v in value.values()) and not _depth_ok(value):
        return _bad_line(file, line_no, raw, "too_deep", f"JSON nested deeper than {MAX_DEPTH} levels",
                         raw=text)
    return InputLine(file, line_no, record=value)


def _bad_line(file: str, line_no: int, data: bytes, reason: str, error: str, **kw) -> InputLine:
    return InputLine(file, line_no, error=error, reason=reason, length=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), **kw)


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)
