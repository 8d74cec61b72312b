"""Identifier subtokens hashed into a fixed bucket vocabulary, and literal shape features.

Names carry what the node kinds cannot: ``jdbcTemplate.queryForList`` and a team's own
``runQuery`` share the subtoken ``query`` with ``executeQuery``, so a model that learnt what a
catalogued sink looks like can relate an unseen one to it. Every name is split at ``_``, ``.``,
digits and camelCase boundaries (``HTTPServletRequest`` -> ``http servlet request``), lower-cased,
and each subtoken is hashed with BLAKE2b into ``NUM_SUBTOKEN_BUCKETS`` buckets (ids
``1..NUM_SUBTOKEN_BUCKETS``; 0 pads). The hash is keyed by nothing but the text, so ids are the
same in every process and on every machine (never Python's randomised ``hash()``). Changing the
split, the hash or the bucket count changes ``SUBTOKEN_VOCAB`` and with it ``FEATURIZER_VERSION``.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

NUM_SUBTOKEN_BUCKETS = 4096
MAX_SUBTOKENS = 6  # per node: the node's own name first, then its receiver/type words
SUBTOKEN_VOCAB = f"blake2b32-mod{NUM_SUBTOKEN_BUCKETS}-k{MAX_SUBTOKENS}-v1"

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_MIN_LEN = 2
# Literal words used as subtokens: the SQL/shell/path words a literal opens with say what it is for.
_LITERAL_WORDS = 3

_SQL_START = re.compile(r"^\s*(select|insert|update|delete|merge|replace|create|drop|alter|truncate|with|call|exec)\b",
                        re.I)
_SHELL = re.compile(
    r"(^\s*(?:/bin/|/usr/bin/|cmd(?:\.exe)?\b|sh\b|bash\b|zsh\b|powershell\b|ls\b|cat\b|rm\b|cp\b|mv\b|ping\b"
    r"|nslookup\b|grep\b|find\b|echo\b|curl\b|wget\b|chmod\b|tar\b|kill\b|ps\b|dir\b|type\b|git\b|python\d?\b"
    r"|java\b|node\b|perl\b|ruby\b|docker\b|kubectl\b|ffmpeg\b|convert\b))|(?:\s/c\s)|(?:\s-c\s*$)|[;|`]\s*\w|\$\(|&&",
    re.I)
_PATH = re.compile(r"^(?:/|\./|\.\./|~/|[A-Za-z]:[\\/]|\\\\)|(?:[\w.-]+[\\/])+[\w.-]*$|\.(?:txt|log|csv|json|xml|"
                   r"ya?ml|cfg|conf|ini|properties|html?|jsp|php|py|java|class|jar|zip|tar|gz|pdf|png|jpe?g|db|"
                   r"sqlite|key|pem)$", re.I)
_URL = re.compile(r"^\s*(?:https?|ftp|file|ldap|jdbc|jndi):", re.I)
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z][\w-]*[^<>]*>")


def split_identifier(name: str) -> list[str]:
    """Lower-case subtokens of an identifier or dotted name, in order, without repeats.

    ``queryForList`` -> ``[query, for, list]``; ``HTTPServletRequest`` -> ``[http, servlet,
    request]``; ``run_query2`` -> ``[run, query]`` (single characters and bare digits dropped).
    """
    return list(_split(name or ""))


# Names and literals repeat heavily within and across functions (``request``, ``getParameter``,
# ``"SELECT ..."``), so the pure functions of their text are memoised (bounded, text only).
@lru_cache(maxsize=65536)
def _split(name: str) -> tuple[str, ...]:
    out: list[str] = []
    for m in _WORD.finditer(name):
        w = m.group(0).lower()
        if len(w) < _MIN_LEN or w.isdigit() or w in out:
            continue
        out.append(w)
    return tuple(out)


@lru_cache(maxsize=65536)
def bucket(subtoken: str) -> int:
    """Bucket id (1..NUM_SUBTOKEN_BUCKETS) of one subtoken; stable across processes."""
    h = hashlib.blake2b(subtoken.encode("utf-8", "surrogatepass"), digest_size=4).digest()
    return 1 + int.from_bytes(h, "little") % NUM_SUBTOKEN_BUCKETS


def name_buckets(*names: str) -> list[int]:
    """Bucket ids of the subtokens of ``names`` (first name first), at most ``MAX_SUBTOKENS``."""
    return list(name_ids(names))


@lru_cache(maxsize=65536)
def name_ids(names: tuple[str, ...]) -> tuple[int, ...]:
    """`name_buckets` of a tuple of names, memoised."""
    ids: list[int] = []
    for name in names:
        for w in _split(name or ""):
            b = bucket(w)
            if b not in ids:
                ids.append(b)
            if len(ids) >= MAX_SUBTOKENS:
                return tuple(ids)
    return tuple(ids)


def literal_buckets(value: str) -> list[int]:
    """Bucket ids of the first words of a string literal (``"SELECT * FROM users"`` -> select, from, users)."""
    words = split_identifier(" ".join((value or "")[:200].split()[:2 * _LITERAL_WORDS]))
    return [bucket("'" + w) for w in words[:_LITERAL_WORDS]]  # literal words live apart from names


def literal_shape(value: str) -> tuple[bool, bool, bool, bool]:
    """(looks like SQL, a shell command, a file path, a URL) for a string literal's text."""
    v = value or ""
    return (bool(_SQL_START.search(v)), bool(_SHELL.search(v)), bool(_PATH.search(v.strip())) and " " not in v.strip(),
            bool(_URL.search(v)))


def looks_like_markup(value: str) -> bool:
    return bool(_MARKUP.search(value or ""))


_CACHED_LITERAL_LEN = 512  # longer literals are rare and not worth keeping


def literal_facts(value: str) -> tuple[tuple[bool, bool, bool, bool], bool, tuple[int, ...]]:
    """(`literal_shape`, `looks_like_markup`, `literal_buckets`) of a string literal, memoised for
    literals up to ``_CACHED_LITERAL_LEN`` characters."""
    if len(value) <= _CACHED_LITERAL_LEN:
        return _literal_facts(value)
    return _literal_facts.__wrapped__(value)


@lru_cache(maxsize=16384)
def _literal_facts(value: str) -> tuple[tuple[bool, bool, bool, bool], bool, tuple[int, ...]]:
    return literal_shape(value), looks_like_markup(value), tuple(literal_buckets(value))
