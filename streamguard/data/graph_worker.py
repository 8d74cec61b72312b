"""The graph-building worker of `prepare`'s process pool.

Kept apart from `streamguard.data.prepare` so that a spawned worker imports only this module and
the featurizer (not the reading, splitting and augmentation code): a worker starts building
sooner, which matters most on small inputs and busy machines.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored afterwards).

    A graph is some hundreds of lists of floats; while thousands of them are held, every full
    collection walks them all, which made building a third slower in one process. The featurizer
    leaves no reference cycles behind, so nothing waits for the collector meanwhile.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def graph_or_error(build_graph, code: str, language: str) -> dict:
    """The graph, or ``{"error": "<type>: <message>"}``: one record never stops the others."""
    try:
        return build_graph(code, language)
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError: quarantined by the caller
        return {"error": f"{type(exc).__name__}: {exc}"}


def graph_chunk(items: list[tuple[str, str]]) -> tuple[list[dict], float]:
    """Worker: graphs of ``(code, language)`` pairs, and the CPU seconds they took."""
    from streamguard.core.graphs import build_graph

    t0 = time.process_time()
    with gc_paused():
        graphs = [graph_or_error(build_graph, code, language) for code, language in items]
    return graphs, time.process_time() - t0
