"""The call classifier: what a call is (source, sink of a class, sanitizer for some classes), from the catalog.

Every API name comes from the catalog (``catalog.json`` next to this file, plus the optional
extra catalogs named in ``STREAMGUARD_EXTRA_CATALOGS``; see `catalog.py`). A call is classified
from what the code itself shows (method name, the text of its receiver, argument count,
constructed type), never from types we cannot see.

``sink_positions`` lists the argument positions whose value must not be tainted (``None``: every
argument). ``cursor.execute(sql, params)`` is a sink on ``sql`` only: ``params`` is bound by the
driver, which is also why such a call is flagged as a sanitizer.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from . import catalog as _catalog

ALL_ARGS = None  # sink_positions value meaning "every argument"


@dataclass(frozen=True)
class CallRule:
    """What the featurizer knows about one call."""

    source: bool = False
    sink: bool = False
    sanitizer: bool = False       # safe for every sink class (parameter binding, numeric parsing)
    concat: bool = False
    sink_positions: tuple[int, ...] | None = ()
    sink_keywords: tuple[str, ...] = ()
    wrapper: bool = False  # sink recognised by name only (e.g. execute_query): see the frontends
    path_sink: bool = False       # with sink: the dangerous argument is a file path (CWE-22)
    path_sanitizer: bool = False  # result is safe for path sinks only (a basename is no SQL sanitizer)
    sink_class: str = ""          # with sink: its class ("sql", "command", ...); "" reads as "path"/"other"
    sanitizes: tuple[str, ...] = ()  # sink classes the result is safe for (class-specific sanitizers)


PLAIN = CallRule()


def _sink_rule(entry, **extra) -> CallRule:
    cls = entry.sink_class
    return CallRule(sink=True, sink_positions=entry.args, sink_keywords=entry.keywords, path_sink=cls == "path",
                    sink_class=cls, **extra)


def _sanitizer_rule(entry) -> CallRule:
    classes = entry.classes
    if "all" in classes:
        return CallRule(sanitizer=True)
    if classes == ("path",):
        return CallRule(path_sanitizer=True, sanitizes=classes)
    return CallRule(sanitizes=classes)


def _per_catalog(fn):
    """Memoise a classifier of the active catalog (the memo starts afresh when the catalog changes).

    Classification depends only on its arguments and the catalog, and a file calls the same few
    APIs again and again.
    """
    memo: dict = {}
    state: list = [None]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            return fn(*args, **kwargs)
        cat = _catalog.active()
        if state[0] is not cat or len(memo) > 100_000:
            memo.clear()
            state[0] = cat
        try:
            return memo[args]
        except KeyError:
            result = memo[args] = fn(*args)
            return result

    return wrapper


def is_shell_program(program: str) -> bool:
    """True when ``program`` (argv[0], possibly a full path) is a shell or a command runner."""
    base = program.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    return not base or base in _catalog.active().shells


# ----------------------------------------------------------------------------------------- Java
@_per_catalog
def classify_java_call(name: str, receiver: str | None, receiver_type: str = "") -> CallRule:
    """Classify ``receiver.name(args)`` (receiver is the source text, None for an unqualified call;
    ``receiver_type`` the declared simple type name of a receiver variable, where it is known)."""
    cat = _catalog.active().java
    recv = receiver or ""
    base = recv.rsplit(".", 1)[-1]
    if cat.sources.first_java(name, recv, base, receiver_type) is not None:
        return CallRule(source=True)
    e = cat.sanitizers.first_java(name, recv, base, receiver_type)
    if e is not None:
        return _sanitizer_rule(e)
    e = cat.sinks.first_java(name, recv, base, receiver_type)
    if e is not None:
        return _sink_rule(e)
    if name in cat.concat_methods and (base in cat.concat_receivers or name not in cat.receiver_only_concat):
        return CallRule(concat=True)
    return PLAIN


@_per_catalog
def classify_java_constructor(type_name: str) -> CallRule:
    """Classify ``new T(args)`` by the simple name of T."""
    simple = type_name.split("<", 1)[0].rsplit(".", 1)[-1].strip()
    for e in _catalog.active().java.constructors:
        if simple in e.types:
            return _sink_rule(e)
    return PLAIN


def java_source_annotation(annotation: str) -> bool:
    """True for a parameter annotation that binds request data (``@RequestParam``, ``@QueryParam``)."""
    simple = annotation.lstrip("@").split("(", 1)[0].rsplit(".", 1)[-1].strip()
    return simple in _catalog.active().java.parameter_annotations


# --------------------------------------------------------------------------------------- Python
@_per_catalog
def classify_python_call(dotted: str, nargs: int, keywords: tuple[str, ...], receiver_is_str: bool,
                         receiver: str = "") -> CallRule:
    """Classify a call by its dotted callee (``"os.system"``, ``"?.execute"`` for a computed receiver)."""
    cat = _catalog.active().python
    method = dotted.rsplit(".", 1)[-1]
    has_receiver = "." in dotted
    if not receiver and has_receiver:
        receiver = dotted.rsplit(".", 1)[0]
    if (dotted in cat.source_functions or any(dotted.endswith(x) for x in cat.source_function_suffixes)
            or (has_receiver and method in cat.source_methods)):
        return CallRule(source=True)
    e = cat.sanitizers.first_python(dotted, method, has_receiver, receiver)
    if e is not None:
        return _sanitizer_rule(e)
    if has_receiver and method in cat.format_methods and receiver_is_str:
        return CallRule(concat=True)
    e = cat.sinks.first_python(dotted, method, has_receiver, receiver)
    if e is not None:
        if e.wrapper:
            # A project wrapper (queryDB(conn, sql), execute_query(sql, params)): the statement may be
            # any argument; the frontend leaves out arguments that are parameter containers.
            return _sink_rule(e, wrapper=True)
        bound = False
        if e.binds_params is not None:
            # DB-API: the statement is the first argument; a second one (or a parameters keyword)
            # is bound by the driver.
            min_args, kws = e.binds_params
            bound = nargs >= min_args or any(k in kws for k in keywords)
        return _sink_rule(e, sanitizer=bound)
    return PLAIN


@_per_catalog
def is_python_source_attribute(dotted: str) -> bool:
    """True for attribute reads like ``request.args``, ``self.request.GET``, ``os.environ``, ``sys.argv``."""
    cat = _catalog.active().python
    if dotted in cat.source_attributes:
        return True
    parts = dotted.rsplit(".", 2)
    return len(parts) >= 2 and parts[-1] in cat.request_attributes and parts[-2] in cat.request_objects


def python_path_normalisers() -> frozenset[str]:
    return _catalog.active().python.path_normalisers


def python_path_normaliser_methods() -> frozenset[str]:
    return _catalog.active().python.path_normaliser_methods


def python_argv_functions() -> frozenset[str]:
    return _catalog.active().python.argv_functions


def python_path_types() -> frozenset[str]:
    return _catalog.active().python.path_types


# --------------------------------------------------------------------------------- collections
# Methods that store their (last) argument into the receiver: the receiver becomes a definition.
STORE_METHODS = frozenset({
    "add", "addAll", "addElement", "addFirst", "addLast", "append", "appendleft", "extend", "insert", "offer",
    "offerFirst", "offerLast", "push", "put", "putAll", "putIfAbsent", "set", "setdefault", "update",
    "setProperty", "write",
})
# Methods that only read a container; they leave literal-index/key tracking intact.
READ_METHODS = frozenset({
    "get", "getOrDefault", "size", "isEmpty", "contains", "containsKey", "containsValue", "keys", "values",
    "items", "length", "indexOf", "count", "index", "getFirst", "getLast", "peek", "iterator", "toString",
    "hasNext", "next", "equals", "hashCode", "close", "split", "substring", "trim", "strip",
})
# Store methods that append at the end (index = current length) vs store at a literal key.
APPEND_METHODS = frozenset({"add", "append", "addLast", "offer", "offerLast", "addElement"})
KEYED_STORE_METHODS = frozenset({"put", "setProperty", "__setitem__"})
GET_METHODS = frozenset({"get", "getOrDefault", "__getitem__"})

# --------------------------------------------------------------------------------- literals
SQL_TEXT = re.compile(
    r"(?is)\b(select\b.*\bfrom|insert\s+into|update\b.*\bset|delete\s+from|replace\s+into|create\s+table|"
    r"drop\s+table|alter\s+table|where\b)")
PLACEHOLDER = re.compile(r"\?|%s|%d|%\(\w+\)s|\{\w*\}|(?<![\w:]):[A-Za-z_]\w*")
