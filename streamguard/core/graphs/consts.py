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
            return "".join((left, r)) if op == "+" and isinstance(left, str) and isinstance(r, str) else UNKNOWN
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
