"""Constant folding of branch conditions, shared by both frontends.

Values are plain Python values; ``UNKNOWN`` marks anything that cannot be folded. Operators use
Java spelling (the Python frontend maps its ``ast`` operators onto these).

The Juliet tables encode the fixed values of the Juliet test-suite support code
(``testcasesupport.IO`` and the private members every flow-variant file declares), which the
per-function records no longer contain: ``IO.STATIC_FINAL_TRUE`` is always true,
``privateFive`` always 5, ``IO.staticReturnsTrueOrFalse()`` is deliberately unknown. A name
declared in the file itself always takes precedence over these tables.
"""

from __future__ import annotations

import operator
from typing import Callable


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()

JULIET_CONSTANTS: dict[str, object] = {
    "IO.STATIC_FINAL_TRUE": True, "IO.STATIC_FINAL_FALSE": False, "IO.STATIC_FINAL_FIVE": 5,
    "IO.staticTrue": True, "IO.staticFalse": False, "IO.staticFive": 5,
    "PRIVATE_STATIC_FINAL_TRUE": True, "PRIVATE_STATIC_FINAL_FALSE": False, "PRIVATE_STATIC_FINAL_FIVE": 5,
    "privateTrue": True, "privateFalse": False, "privateFive": 5,
}
JULIET_METHODS: dict[str, object] = {
    "IO.staticReturnsTrue": True, "IO.staticReturnsFalse": False,
    "privateReturnsTrue": True, "privateReturnsFalse": False,
}

_COMPARE: dict[str, Callable[[object, object], object]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}
_ARITH: dict[str, Callable[[object, object], object]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "%": operator.mod, "&": operator.and_,
    "|": operator.or_, "^": operator.xor, "<<": operator.lshift, ">>": operator.rshift,
}


def fold_unary(op: str, value: object) -> object:
    """Fold ``op value`` for ``!``/``not``, unary minus and plus."""
    if value is UNKNOWN:
        return UNKNOWN
    try:
        if op in ("!", "not"):
            return not value
        if op == "-":
            return -value  # type: ignore[operator]
        if op == "+":
            return +value  # type: ignore[operator]
    except TypeError:
        return UNKNOWN
    return UNKNOWN


MAX_STR = 4096  # folded strings longer than this are left unknown (bounds time and memory)
_REGEX_META = frozenset(".$|()[]{}^?*+\\")


def _java_split(s: str, sep: str) -> object:
    if not sep or any(c in _REGEX_META for c in sep):
        return UNKNOWN  # a real regular expression: not folded
    parts = s.split(sep)
    while parts and parts[-1] == "":  # String.split drops trailing empty strings
        parts.pop()
    return tuple(parts)


def _index(seq: object, i: object) -> object:
    if isinstance(seq, (str, tuple)) and isinstance(i, int) and not isinstance(i, bool) and -len(seq) <= i < len(seq):
        return seq[i]
    return UNKNOWN


def fold_subscript(seq: object, index: object) -> object:
    """``seq[index]`` for a folded string or tuple and an integer index."""
    return _index(seq, index)


# String methods folded on constants (Java names, then Python names); each takes (receiver, *args).
_JAVA_STR: dict[str, Callable[..., object]] = {
    "charAt": _index, "length": len, "isEmpty": lambda s: not s, "equals": lambda s, o: s == o,
    "equalsIgnoreCase": lambda s, o: isinstance(o, str) and s.lower() == o.lower(),
    "contains": lambda s, o: isinstance(o, str) and o in s, "startsWith": lambda s, o: s.startswith(o),
    "endsWith": lambda s, o: s.endswith(o), "indexOf": lambda s, o: s.find(o), "toUpperCase": str.upper,
    "toLowerCase": str.lower, "trim": str.strip, "strip": str.strip, "concat": lambda s, o: s + o,
    "substring": lambda s, a, b=None: s[a:b] if b is not None else s[a:], "split": _java_split,
    "replace": lambda s, a, b: s.replace(a, b), "toString": lambda s: s, "intern": lambda s: s,
    "hashCode": lambda s: UNKNOWN,
}
_PY_STR: dict[str, Callable[..., object]] = {
    "upper": str.upper, "lower": str.lower, "strip": str.strip, "lstrip": str.lstrip, "rstrip": str.rstrip,
    "startswith": lambda s, o: s.startswith(o), "endswith": lambda s, o: s.endswith(o),
    "find": lambda s, o: s.find(o), "replace": lambda s, a, b: s.replace(a, b),
    "split": lambda s, sep=None: tuple(s.split(sep)), "isdigit": str.isdigit, "isalpha": str.isalpha,
    "title": str.title, "casefold": str.casefold,
}


def fold_str_method(language: str, name: str, recv: object, args: list) -> object:
    """Fold ``recv.name(*args)`` for a constant string ``recv`` and constant ``args``; else UNKNOWN."""
    if not isinstance(recv, str) or any(a is UNKNOWN for a in args):
        return UNKNOWN
    fn = (_JAVA_STR if language == "java" else _PY_STR).get(name)
    if fn is None:
        return UNKNOWN
    try:
        out = fn(recv, *args)
    except (TypeError, ValueError, IndexError, AttributeError):
        return UNKNOWN
    if isinstance(out, str) and len(out) > MAX_STR:
        return UNKNOWN
    return out


def fold_binary(op: str, left: object, right: Callable[[], object]) -> object:
    """Fold ``left op right``; ``right`` is evaluated lazily so that ``false && x`` folds."""
    if op in ("&&", "and"):
        if left is not UNKNOWN and not left:
            return left if op == "and" else False
        r = right()
        if left is UNKNOWN:
            return False if r is not UNKNOWN and not r else UNKNOWN
        return r if op == "and" else (r if r is UNKNOWN else bool(r))
    if op in ("||", "or"):
        if left is not UNKNOWN and left:
            return left if op == "or" else True
        r = right()
        if left is UNKNOWN:
            return True if r is not UNKNOWN and r else UNKNOWN
        return r if op == "or" else (r if r is UNKNOWN else bool(r))
    r = right()
    if left is UNKNOWN or r is UNKNOWN:
        return UNKNOWN
    fn = _COMPARE.get(op)
    if fn is None and op in _ARITH:
        # Only numbers, and small shifts: folding must never allocate huge values.
        if not (isinstance(left, (int, float)) and isinstance(r, (int, float))):
            if op == "+" and isinstance(left, str) and isinstance(r, str) and len(left) + len(r) <= MAX_STR:
                return left + r
            return UNKNOWN
        if op in ("<<", ">>") and not (isinstance(r, int) and 0 <= r <= 64):
            return UNKNOWN
        fn = _ARITH[op]
    if fn is None:
        if op == "/" and isinstance(left, int) and isinstance(r, int) and r:
            return int(left / r)  # Java integer division truncates towards zero
        return UNKNOWN
    try:
        return fn(left, r)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return UNKNOWN
