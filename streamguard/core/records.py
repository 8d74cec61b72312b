"""Validate and normalise one input record of the StreamGuard schema.

Shipped inside the SageMaker source dir (stdlib only): preparation uses it for every input line,
and the training entry's evaluate mode uses it for raw records (with ``require_label=False``).

Input schema: ``code`` (str), ``label`` (0/1) or ``vulnerable`` (bool); optional ``id``,
``language``, ``cwe``, ``group``, ``counterfactual`` (str), ``source``, ``license``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

LANGUAGES = ("python", "java")

# Common spellings mapped onto the canonical language names.
_LANGUAGE_ALIASES = {"py": "python", "python3": "python", "python2": "python", "jav": "java"}

_TRUE = ("1", "true", "yes", "vulnerable", "vuln")
_FALSE = ("0", "false", "no", "safe")

# Optional string fields copied through when present.
_OPTIONAL_STR_FIELDS = ("cwe", "group", "source", "license")


class RecordError(ValueError):
    """A record that cannot be used; ``reason`` is a short category, ``str()`` the full message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def content_id(code: str, language: str) -> str:
    """Stable id for a record without one: first 16 hex digits of sha256(language + NUL + code)."""
    return hashlib.sha256(f"{language}\0{code}".encode("utf-8")).hexdigest()[:16]


# Each heuristic is (regex, weight); a match anywhere counts once.
_PY_HINTS = (
    (re.compile(r"^\s*def \w+\s*\(.*\)\s*(->\s*[^:]+)?:\s*$", re.M), 3),
    (re.compile(r"^\s*(from [\w.]+ )?import [\w., ]+\s*$", re.M), 2),
    (re.compile(r"^\s*(elif|except|else|try|finally)\b.*:\s*$", re.M), 2),
    (re.compile(r"^\s*class \w+(\(.*\))?:\s*$", re.M), 3),
    (re.compile(r"\bself\.\w+"), 1),
    (re.compile(r"\b(None|True|False)\b"), 1),
    (re.compile(r"^\s*#", re.M), 1),
    (re.compile(r"\bprint\("), 1),
)
_JAVA_HINTS = (
    (re.compile(r"\b(public|private|protected)\s+(static\s+)?[\w<>\[\], ]+\s+\w+\s*\("), 3),
    (re.compile(r"^\s*import\s+[\w.]+(\.\*)?\s*;", re.M), 3),
    (re.compile(r"\bclass\s+\w+(\s+extends\s+\w+)?(\s+implements\s+[\w, ]+)?\s*\{"), 3),
    (re.compile(r";\s*$", re.M), 1),
    (re.compile(r"\b(String|int|void|boolean|long)\s+\w+\s*[=;(]"), 2),
    (re.compile(r"\bnew\s+\w+(<[^>]*>)?\s*\("), 1),
    (re.compile(r"\b(null|throws|System\.out)\b"), 1),
    (re.compile(r"^\s*//", re.M), 1),
)


def detect_language(code: str) -> str | None:
    """Guess python vs java from surface syntax; None when the evidence is absent or balanced."""
    py = sum(w for rx, w in _PY_HINTS if rx.search(code))
    java = sum(w for rx, w in _JAVA_HINTS if rx.search(code))
    if py == java or max(py, java) < 2:
        return None
    return "python" if py > java else "java"


def normalize_language(value: Any) -> str:
    """Lower-case a language name and map aliases; RecordError if it is not supported."""
    if not isinstance(value, str):
        raise RecordError("bad_language", f"language must be a string, got {type(value).__name__}")
    lang = value.strip().lower()
    lang = _LANGUAGE_ALIASES.get(lang, lang)
    if lang not in LANGUAGES:
        raise RecordError("unknown_language",
                          f"unknown language {value!r} (supported: {', '.join(LANGUAGES)})")
    return lang


def parse_label(value: Any, field: str = "label") -> int:
    """Accept 0/1, True/False, "0"/"1", "true"/"false" (any case); RecordError otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, float) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
    raise RecordError("bad_label", f"{field} {value!r} is not 0/1 or true/false")


def _optional_str(obj: dict, field: str) -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and field in ("group", "id"):
        return str(value)  # numeric group/id columns are common in CSV-derived data
    if not isinstance(value, str):
        raise RecordError(f"bad_{field}", f"field {field!r} must be a string, got {type(value).__name__}")
    value = value.strip()
    return value or None


def normalize_record(obj: Any, *, max_code_bytes: int = 200_000, default_language: str | None = None,
                     require_label: bool = True) -> dict:
    """Validate one record and return its normalised form.

    Args:
        obj: the decoded JSON value of one input line.
        max_code_bytes: upper bound on the UTF-8 size of ``code``.
        default_language: used when the record has no ``language`` (before detection).
        require_label: False for inference inputs, where ``label`` may be absent (then None).

    Returns:
        ``{"id", "code", "label", "language", "cwe", "group", "source"}`` plus ``counterfactual``
        and ``license`` when present. ``label`` is 0/1 (or None when not required and absent).

    Raises:
        RecordError: with a message naming the field and the problem.
    """
    if not isinstance(obj, dict):
        raise RecordError("not_object", f"record is a JSON {_json_type(obj)}, not an object")
    if "code" not in obj or obj["code"] is None:
        raise RecordError("missing_code", "missing field 'code'")
    code = obj["code"]
    if not isinstance(code, str):
        raise RecordError("bad_code", f"field 'code' must be a string, got {_json_type(code)}")
    if not code.strip():
        raise RecordError("empty_code", "field 'code' is empty")
    size = len(code.encode("utf-8", errors="surrogatepass"))
    if size > max_code_bytes:
        raise RecordError("code_too_large", f"code is {size} bytes, over the {max_code_bytes}-byte limit")

    label = _record_label(obj, require_label)

    if obj.get("language") not in (None, ""):
        language = normalize_language(obj["language"])
    elif default_language:
        language = normalize_language(default_language)
    else:
        detected = detect_language(code)
        if detected is None:
            raise RecordError("undetected_language",
                              "missing field 'language' and the code is not recognisably python or java")
        language = detected

    out: dict[str, Any] = {"id": _optional_str(obj, "id") or content_id(code, language),
                           "code": code, "label": label, "language": language}
    for field in _OPTIONAL_STR_FIELDS:
        value = _optional_str(obj, field)
        if value is not None or field != "license":
            out[field] = value
    if out.get("cwe"):
        out["cwe"] = normalize_cwe(out["cwe"])

    cf = obj.get("counterfactual")
    if cf is not None:
        if not isinstance(cf, str):
            raise RecordError("bad_counterfactual",
                              f"field 'counterfactual' must be a string, got {_json_type(cf)}")
        if not cf.strip():
            raise RecordError("bad_counterfactual", "field 'counterfactual' is empty")
        if cf.strip() == code.strip():
            raise RecordError("bad_counterfactual", "field 'counterfactual' is identical to 'code'")
        cf_size = len(cf.encode("utf-8", errors="surrogatepass"))
        if cf_size > max_code_bytes:
            raise RecordError("code_too_large",
                              f"counterfactual is {cf_size} bytes, over the {max_code_bytes}-byte limit")
        if label is None:
            raise RecordError("bad_counterfactual", "a counterfactual needs a label")
        out["counterfactual"] = cf
    return out


def _record_label(obj: dict, require_label: bool) -> int | None:
    has_label = obj.get("label") is not None
    has_vuln = obj.get("vulnerable") is not None
    if has_label and has_vuln:
        label, vuln = parse_label(obj["label"]), parse_label(obj["vulnerable"], "vulnerable")
        if label != vuln:
            raise RecordError("bad_label", f"label {obj['label']!r} contradicts vulnerable {obj['vulnerable']!r}")
        return label
    if has_label:
        return parse_label(obj["label"])
    if has_vuln:
        return parse_label(obj["vulnerable"], "vulnerable")
    if require_label:
        raise RecordError("missing_label", "missing field 'label' (or 'vulnerable')")
    return None


def normalize_cwe(value: str) -> str:
    """'89', 'cwe-89', 'CWE89' -> 'CWE-89'; anything else is kept as given."""
    m = re.fullmatch(r"(?i)(?:cwe)?[-_ ]?(\d+)", value)
    return f"CWE-{int(m.group(1))}" if m else value


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)
