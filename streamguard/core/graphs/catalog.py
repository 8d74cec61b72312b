"""The API catalog: sources, sinks and sanitizers as data (``catalog.json``), loaded, checked and compiled.

The default catalog ships next to this module (and so inside the SageMaker source dir). Users add
their own database wrappers and frameworks in an extra catalog of the same format, named by
``STREAMGUARD_EXTRA_CATALOGS`` (paths separated by ``os.pathsep``) or passed to `load`; an extra
catalog's entries are tried before the default ones, and its list fields extend them. The hash of
the catalogs in use is part of ``FEATURIZER_VERSION``, so graphs built with different API tables
never mix silently.

Format (see ``catalog.json``): per language, ordered entry lists. An entry matches a call by
``methods`` (name), ``functions`` (dotted callee, Python), ``qualified`` (``Base.name``, Java),
``types`` (constructed type, Java), ``name_pattern``/``not_pattern`` (callee name regular
expressions), narrowed by ``receivers`` (exact last receiver component or receiver text) or
``receiver`` (regular expression searched in the receiver text) or ``receiver_types`` (Java: the
declared type of a receiver variable — a local, a parameter or a field of the class or an enclosing
one — so that a ``ResultSet`` or a ``JdbcTemplate`` is known whatever the code names it). Sinks carry
``class`` (one of `SINK_CLASSES`), ``args`` (positions, ``"all"`` or ``[]``) and ``keywords``;
sanitizers carry ``classes`` (sink classes, or ``"all"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

DEFAULT_PATH = Path(__file__).resolve().parent / "catalog.json"
ENV_EXTRA = "STREAMGUARD_EXTRA_CATALOGS"
# Replaces the shipped catalog.json as the base catalog (ablation experiments, a trimmed catalog).
ENV_BASE = "STREAMGUARD_CATALOG"
FORMAT = 1

# Sink classes; ids are indices (fixed order: append only). "other" is a sink of no known class.
SINK_CLASSES: tuple[str, ...] = ("sql", "command", "path", "ldap", "xpath", "html", "header", "redirect", "code",
                                 "url", "other")
SINK_CLASS_INDEX = {name: i for i, name in enumerate(SINK_CLASSES)}


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Entry:
    methods: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    qualified: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    receivers: frozenset[str] = frozenset()
    receiver: re.Pattern | None = None
    receiver_last: bool = False  # match ``receiver`` against the last receiver component only
    receiver_types: frozenset[str] = frozenset()  # declared (simple) type names of the receiver, Java
    name_pattern: re.Pattern | None = None
    not_pattern: re.Pattern | None = None
    sink_class: str = ""
    args: tuple[int, ...] | None = ()
    keywords: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    wrapper: bool = False
    binds_params: tuple[int, frozenset[str]] | None = None

    def _receiver_ok(self, recv: str, base: str) -> bool:
        if self.receivers and base not in self.receivers and recv not in self.receivers:
            return False
        if self.receiver is not None and not self.receiver.search(base if self.receiver_last else recv):
            return False
        return True

    def matches_java(self, name: str, recv: str, base: str, recv_type: str = "") -> bool:
        if self.qualified and f"{base}.{name}" in self.qualified:
            return True
        if name not in self.methods:
            return False
        if self.receiver_types:
            if recv_type in self.receiver_types:
                return True
            if not (self.receivers or self.receiver):  # the declared type is the only way in
                return False
        return self._receiver_ok(recv, base)

    def matches_python(self, dotted: str, method: str, has_receiver: bool, recv: str) -> bool:
        if dotted in self.functions:
            return True
        if self.name_pattern is not None:
            return bool(self.name_pattern.match(method)) and not (
                self.not_pattern is not None and self.not_pattern.match(method))
        if not (has_receiver and method in self.methods):
            return False
        return self._receiver_ok(recv, recv.rsplit(".", 1)[-1])


class EntryList(tuple):
    """Entries in catalog order, indexed by name so that a call is tested against few of them."""

    def __new__(cls, entries):
        self = super().__new__(cls, entries)
        self.by_name: dict[str, list[int]] = {}
        self.patterns: list[int] = []
        for i, e in enumerate(self):
            for name in e.methods | e.functions | {q.rsplit(".", 1)[-1] for q in e.qualified} | e.types:
                self.by_name.setdefault(name, []).append(i)
            if e.name_pattern is not None:
                self.patterns.append(i)
        return self

    def _candidates(self, *names: str) -> list[int]:
        found = set(self.patterns)
        for n in names:
            found.update(self.by_name.get(n, ()))
        return sorted(found)

    def first_java(self, name: str, recv: str, base: str, recv_type: str = "") -> Entry | None:
        for i in self._candidates(name):
            if self[i].matches_java(name, recv, base, recv_type):
                return self[i]
        return None

    def first_python(self, dotted: str, method: str, has_receiver: bool, recv: str) -> Entry | None:
        for i in self._candidates(dotted, method):
            if self[i].matches_python(dotted, method, has_receiver, recv):
                return self[i]
        return None


@dataclass(frozen=True)
class JavaTables:
    sources: tuple[Entry, ...]
    sanitizers: tuple[Entry, ...]
    sinks: tuple[Entry, ...]
    constructors: tuple[Entry, ...]
    parameter_annotations: frozenset[str]
    concat_methods: frozenset[str]
    concat_receivers: frozenset[str]
    receiver_only_concat: frozenset[str]


@dataclass(frozen=True)
class PythonTables:
    source_attributes: frozenset[str]
    request_objects: frozenset[str]
    request_attributes: frozenset[str]
    source_functions: frozenset[str]
    source_function_suffixes: tuple[str, ...]
    source_methods: frozenset[str]
    sanitizers: tuple[Entry, ...]
    sinks: tuple[Entry, ...]
    path_normalisers: frozenset[str]
    path_normaliser_methods: frozenset[str]
    path_types: frozenset[str]
    argv_functions: frozenset[str]
    format_methods: frozenset[str]


@dataclass(frozen=True)
class Catalog:
    java: JavaTables
    python: PythonTables
    shells: frozenset[str]
    digest: str          # sha256 over the catalog files in use (canonical JSON)
    sources: tuple[str, ...]  # "name version" of each file, default last


def _err(where: str, msg: str) -> CatalogError:
    return CatalogError(f"catalog {where}: {msg}")


def _strings(raw: dict, key: str, where: str) -> list[str]:
    v = raw.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _err(where, f"{key!r} must be a list of strings")
    return v


def _regex(raw: dict, key: str, where: str) -> re.Pattern | None:
    v = raw.get(key)
    if v is None:
        return None
    try:
        return re.compile(v)
    except (re.error, TypeError) as exc:
        raise _err(where, f"{key!r} is not a valid regular expression ({exc})") from exc


def _entry(raw: dict, where: str, role: str) -> Entry:
    if not isinstance(raw, dict):
        raise _err(where, "an entry must be an object")
    known = {"methods", "functions", "qualified", "types", "receivers", "receiver", "receiver_part", "receiver_types",
             "name_pattern", "not_pattern", "class", "args", "keywords", "classes", "wrapper", "binds_params", "note"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _err(where, f"unknown field(s) {unknown}")
    if not any(raw.get(k) for k in ("methods", "functions", "qualified", "types", "name_pattern")):
        raise _err(where, "an entry needs 'methods', 'functions', 'qualified', 'types' or 'name_pattern'")
    args: tuple[int, ...] | None = ()
    cls, classes, binds = "", (), None
    if role == "sink":
        cls = raw.get("class", "")
        if cls not in SINK_CLASS_INDEX:
            raise _err(where, f"sink 'class' must be one of {list(SINK_CLASSES)}, got {cls!r}")
        a = raw.get("args", "all")
        if a == "all":
            args = None
        elif isinstance(a, list) and all(isinstance(i, int) and i >= 0 for i in a):
            args = tuple(a)
        else:
            raise _err(where, f"'args' must be \"all\" or a list of argument positions, got {a!r}")
        b = raw.get("binds_params")
        if b is not None:
            if not isinstance(b, dict) or not isinstance(b.get("min_args", 0), int):
                raise _err(where, "'binds_params' must be {\"min_args\": int, \"keywords\": [str]}")
            binds = (int(b.get("min_args", 0)) or 10**9, frozenset(_strings(b, "keywords", where)))
    elif role == "sanitizer":
        classes = tuple(_strings(raw, "classes", where))
        bad = [c for c in classes if c != "all" and c not in SINK_CLASS_INDEX]
        if not classes or bad:
            raise _err(where, f"sanitizer 'classes' must list sink classes or \"all\" (bad: {bad or 'empty'})")
        classes = ("all",) if "all" in classes else tuple(sorted(set(classes), key=SINK_CLASS_INDEX.get))
    part = raw.get("receiver_part", "full")
    if part not in ("full", "last"):
        raise _err(where, f"'receiver_part' must be \"full\" or \"last\", got {part!r}")
    return Entry(
        methods=frozenset(_strings(raw, "methods", where)), functions=frozenset(_strings(raw, "functions", where)),
        qualified=frozenset(_strings(raw, "qualified", where)), types=frozenset(_strings(raw, "types", where)),
        receivers=frozenset(_strings(raw, "receivers", where)), receiver=_regex(raw, "receiver", where),
        receiver_last=part == "last", receiver_types=frozenset(_strings(raw, "receiver_types", where)),
        name_pattern=_regex(raw, "name_pattern", where),
        not_pattern=_regex(raw, "not_pattern", where), sink_class=cls, args=args,
        keywords=tuple(_strings(raw, "keywords", where)), classes=classes, wrapper=bool(raw.get("wrapper", False)),
        binds_params=binds)


def _entries(docs: list[tuple[str, dict]], lang: str, key: str, role: str) -> tuple[Entry, ...]:
    out = []
    for name, doc in docs:
        items = doc.get(lang, {}).get(key, [])
        if not isinstance(items, list):
            raise _err(f"{name} {lang}.{key}", "must be a list of entries")
        out += [_entry(e, f"{name} {lang}.{key}[{i}]", role) for i, e in enumerate(items)]
    return EntryList(out)


def _union(docs: list[tuple[str, dict]], lang: str | None, key: str) -> frozenset[str]:
    out: set[str] = set()
    for name, doc in docs:
        sect = doc.get(lang, {}) if lang else doc
        out.update(_strings(sect, key, f"{name} {lang or ''}.{key}".replace(" .", " ")))
    return frozenset(out)


def _read(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot be read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"catalog {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CatalogError(f"catalog {path}: expected an object with \"format\": {FORMAT}")
    unknown = sorted(set(doc) - {"format", "name", "version", "about", "java", "python", "shells"})
    if unknown:
        raise CatalogError(f"catalog {path}: unknown top-level field(s) {unknown}")
    return doc


def build(docs: list[tuple[str, dict]]) -> Catalog:
    """Compile catalog documents (earlier documents take precedence in ordered lists)."""
    canon = json.dumps([d for _, d in docs], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    java = JavaTables(
        sources=_entries(docs, "java", "sources", "source"), sanitizers=_entries(docs, "java", "sanitizers", "sanitizer"),
        sinks=_entries(docs, "java", "sinks", "sink"), constructors=_entries(docs, "java", "constructors", "sink"),
        parameter_annotations=_union(docs, "java", "parameter_annotations"),
        concat_methods=_union(docs, "java", "concat_methods"), concat_receivers=_union(docs, "java", "concat_receivers"),
        receiver_only_concat=_union(docs, "java", "receiver_only_concat"))
    python = PythonTables(
        source_attributes=_union(docs, "python", "source_attributes"),
        request_objects=_union(docs, "python", "request_objects"),
        request_attributes=_union(docs, "python", "request_attributes"),
        source_functions=_union(docs, "python", "source_functions"),
        source_function_suffixes=tuple(sorted(_union(docs, "python", "source_function_suffixes"))),
        source_methods=_union(docs, "python", "source_methods"),
        sanitizers=_entries(docs, "python", "sanitizers", "sanitizer"), sinks=_entries(docs, "python", "sinks", "sink"),
        path_normalisers=_union(docs, "python", "path_normalisers"),
        path_normaliser_methods=_union(docs, "python", "path_normaliser_methods"),
        path_types=_union(docs, "python", "path_types"), argv_functions=_union(docs, "python", "argv_functions"),
        format_methods=_union(docs, "python", "format_methods"))
    return Catalog(java=java, python=python, shells=_union(docs, None, "shells"),
                   digest=hashlib.sha256(canon.encode()).hexdigest(),
                   sources=tuple(f"{d.get('name', n)} {d.get('version', '?')}" for n, d in docs))


def load(extra: list[str | os.PathLike] | tuple = (), *, default: str | os.PathLike | None = DEFAULT_PATH) -> Catalog:
    """The default catalog (unless ``default`` is None) with ``extra`` catalogs in front of it."""
    docs = [(str(p), _read(Path(p))) for p in extra]
    if default is not None:
        docs.append((Path(default).name if Path(default) == DEFAULT_PATH else str(default), _read(Path(default))))
    if not docs:
        raise CatalogError("catalog: no catalog file given")
    return build(docs)


def _env_extra() -> list[str]:
    raw = os.environ.get(ENV_EXTRA, "")
    return [p for p in raw.split(os.pathsep) if p.strip()]


_ACTIVE: Catalog = load(_env_extra(), default=os.environ.get(ENV_BASE) or DEFAULT_PATH)
DEFAULT_DIGEST = _ACTIVE.digest


def active() -> Catalog:
    """The catalog the featurizer classifies calls with now."""
    return _ACTIVE


@contextmanager
def using(cat: Catalog) -> Iterator[Catalog]:
    """Classify with ``cat`` inside the block (tests, experiments); records say which in ``v``."""
    global _ACTIVE
    saved = _ACTIVE
    _ACTIVE = cat
    try:
        yield cat
    finally:
        _ACTIVE = saved
