"""What a Python module's top level proves: names bound once to a literal or to a literal collection.

The frontend folds branch conditions with the constants (``DEBUG = False`` ... ``if DEBUG:``) and
treats ``x in ALLOWED`` as a guard when ``ALLOWED`` is a collection of literals never grown.
"""

from __future__ import annotations

import ast

def module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level names bound exactly once, to a literal: usable to fold branch conditions."""
    cands = {}
    for st in tree.body:
        if (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)
                and isinstance(st.value, ast.Constant)):
            cands[st.targets[0].id] = st.value.value
    if not cands:
        return {}
    counts: dict[str, int] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and n.id in cands:
            counts[n.id] = counts.get(n.id, 0) + 1
    return {k: v for k, v in cands.items() if counts.get(k, 0) == 1}


# Methods that add elements to a collection: a module collection mutated by one is not constant.
_GROWING_METHODS = frozenset({"add", "append", "extend", "insert", "update", "setdefault", "__setitem__", "__ior__"})


def module_collections(tree: ast.Module) -> dict[str, tuple]:
    """Module-level names bound exactly once to a collection of literals and never grown.

    ``ALLOWED = ("id", "name")``, ``KNOWN = {"a", "b"}``, ``CHOICES = frozenset([...])``,
    ``MAP = {"a": 1}`` (its keys): ``x in ALLOWED`` then proves that ``x`` is one of those literals.
    """
    cands: dict[str, tuple] = {}
    for st in tree.body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            elems = literal_collection(st.value)
            if elems is not None:
                cands[st.targets[0].id] = elems
    if not cands:
        return {}
    counts: dict[str, int] = {}
    for n in ast.walk(tree):
        name = None
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            name = n.id
        elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
            name = n.target.id
        elif isinstance(n, ast.Subscript) and not isinstance(n.ctx, ast.Load) and isinstance(n.value, ast.Name):
            name = n.value.id
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
              and n.func.attr in _GROWING_METHODS):
            name = n.func.value.id
        if name in cands:
            counts[name] = counts.get(name, 0) + (2 if not isinstance(n, ast.Name) else 1)
    return {k: v for k, v in cands.items() if counts.get(k, 0) == 1}


def literal_collection(n: ast.AST) -> tuple | None:
    """The elements of a tuple/list/set display of literals (a dict display: its literal keys), or
    of ``frozenset``/``set``/``tuple``/``list`` over one; None for anything else."""
    if isinstance(n, (ast.Tuple, ast.List, ast.Set)):
        if all(isinstance(e, ast.Constant) for e in n.elts):
            return tuple(e.value for e in n.elts)
        return None
    if isinstance(n, ast.Dict):
        if all(isinstance(k, ast.Constant) for k in n.keys):
            return tuple(k.value for k in n.keys)
        return None
    if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("frozenset", "set", "tuple", "list")
            and len(n.args) == 1 and not n.keywords):
        return literal_collection(n.args[0])
    return None
