"""`call`: how a DAG task runs its one library function, with records converted at the boundary.

A task receives XCom dicts and must return JSON; the library functions in
`streamguard.pipeline.training` and `streamguard.pipeline.retraining` take and return records
(`streamguard.pipeline.records`, `TrainingConfig`, `JobRecord`). `call` imports the function when
the task runs (so parsing a DAG file imports nothing heavy), turns each dict argument into the
record its parameter is annotated with (``from_dict``) and the result back into a dict (``to_dict``).

    @task
    def evaluate(run: dict, config: dict, job: dict, data: dict, source: dict) -> dict:
        return call("training:evaluate", run, config, "gnn", job, data, source)
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from typing import Any

from streamguard.pipeline.records import plain


def _record_types(annotation: Any) -> list[type]:
    """The record classes an annotation names (``X``, ``X | None``, ``X | Y``): those with ``from_dict``."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
        else (annotation,)
    return [a for a in args if isinstance(a, type) and hasattr(a, "from_dict")]


def _convert(annotation: Any, value: Any) -> Any:
    """``value`` as the first record type of ``annotation`` that accepts it; unchanged if not a dict."""
    candidates = _record_types(annotation)
    if not candidates or not isinstance(value, dict):
        return value
    errors = []
    for record in candidates:
        try:
            return record.from_dict(value)
        except (TypeError, ValueError, KeyError) as exc:
            errors.append(f"{record.__name__}: {exc}")
    raise TypeError(f"{sorted(value)[:8]} is none of the records it should be ({'; '.join(errors)})")


def call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``streamguard.pipeline.<module>.<function>`` (``target`` = ``"module:function"``).

    Dict arguments become the records their parameters are annotated with; a returned record (or a
    list of them) becomes its dict.

    Raises:
        TypeError: the arguments do not fit the function's signature.
    """
    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(f"streamguard.pipeline.{module}"), name)
    hints = typing.get_type_hints(fn)
    bound = inspect.signature(fn).bind(*args, **kwargs)
    for param, value in bound.arguments.items():
        bound.arguments[param] = _convert(hints.get(param), value)
    result = fn(*bound.args, **bound.kwargs)
    if isinstance(result, list):
        return [plain(item) for item in result]
    return plain(result)
