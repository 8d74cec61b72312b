"""Literal-index containers: element-precise reaching definitions for lists, arrays and maps.

A container created empty or from a literal, and stored into only at literal positions since,
keeps one set of definitions per position (``Env.slots``) and, for a sequence, its length
(``Env.lens``); any other store drops the precise tracking and the whole container is one value
again. `ContainerSlots` is a part of `GraphIR` (``graph_ir.py``) and works on its ``env``.
"""

from __future__ import annotations

from .ir import Env


class ContainerSlots:
    """The ``container_*`` operations of `GraphIR` on its current environment."""

    env: Env | None

    def container_new(self, key: str, items: dict[object, int] | None, *, sequence: bool = True) -> None:
        """``key`` now holds a fresh container whose elements at literal positions are known.

        ``sequence``: a list/array (integer positions that shift on insert/remove, a known
        length); otherwise a map (keys).
        """
        if self.env is None:
            return
        self.env.slots[key] = {k: frozenset((v,)) for k, v in (items or {}).items()}
        if sequence and (items is None or all(isinstance(k, int) for k in items)):
            self.env.lens[key] = len(items or {})
        else:
            self.env.lens.pop(key, None)

    def _position(self, key: str, index: object) -> object:
        """Negative list positions count from the end (``lst[-1]``); None when that is unknown."""
        if isinstance(index, int) and not isinstance(index, bool) and index < 0:
            n = self.env.lens.get(key) if self.env is not None else None
            return None if n is None else index + n
        return index

    def container_store(self, key: str, index: object, value: int, *, append: bool = False) -> None:
        """Record a store into container ``key``; a non-literal index drops the precise tracking."""
        env = self.env
        if env is None or key not in env.slots:
            return
        if append:
            n = env.lens.get(key)
            if n is None:
                env.slots.pop(key, None)
                return
            index = n
            env.lens[key] = n + 1
        index = self._position(key, index)
        if index is None:
            env.slots.pop(key, None)
            env.lens.pop(key, None)
            return
        env.slots[key][index] = frozenset((value,))

    def container_insert(self, key: str, index: object, value: int) -> None:
        """``list.add(i, v)`` / ``lst.insert(i, v)``: later elements move up one position."""
        env = self.env
        if env is None or key not in env.slots:
            return
        n = env.lens.get(key)
        index = self._position(key, index)
        if n is None or not isinstance(index, int) or isinstance(index, bool):
            self.container_forget(key)
            return
        index = min(index, n)
        old = env.slots[key]
        env.slots[key] = {(j + 1 if isinstance(j, int) and j >= index else j): d for j, d in old.items()}
        env.slots[key][index] = frozenset((value,))
        env.lens[key] = n + 1

    def container_remove(self, key: str, index: object) -> None:
        """``list.remove(i)`` / ``lst.pop(i)`` (later elements move down) or ``map.remove(k)``."""
        env = self.env
        if env is None or key not in env.slots:
            return
        if index is None:
            self.container_forget(key)
            return
        n = env.lens.get(key)
        if n is None:  # a map: the key is gone
            env.slots[key].pop(index, None)
            return
        index = self._position(key, index)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
            self.container_forget(key)
            return
        old = env.slots[key]
        env.slots[key] = {(j - 1 if isinstance(j, int) and j > index else j): d for j, d in old.items() if j != index}
        env.lens[key] = n - 1

    def container_length(self, key: str) -> int | None:
        return self.env.lens.get(key) if self.env is not None else None

    def container_forget(self, key: str) -> None:
        if self.env is not None:
            self.env.slots.pop(key, None)
            self.env.lens.pop(key, None)

    def container_read(self, key: str, index: object) -> frozenset[int] | None:
        """Definitions of element ``index`` of ``key`` when tracked precisely, else None.

        A tracked container saw only literal-index stores since it was created empty or from a
        literal, so an index nothing was stored at holds nothing (``frozenset()``).
        """
        env = self.env
        if env is None or index is None:
            return None
        slots = env.slots.get(key)
        if slots is None:
            return None
        index = self._position(key, index)
        if index is None:
            return None
        return slots.get(index, frozenset())
