"""Code gadgets: the statements of a function that reach a sink, as text for a sequence model.

A code gadget (the program slice of slice-based detectors such as VulDeePecker and SySeVR) is the
set of statements that a sink depends on. Here it is computed on the featurizer's graph IR:

- criteria: every live sink call that some argument enters over ``sink_arg`` (the dangerous
  argument positions of the catalog);
- data dependence: backwards from each sink over ``data_flow``, ``call_arg``, ``sink_arg``,
  ``param_flow`` and ``return_flow`` edges (so also through helpers of the same file, guards that
  redefine a value and sanitizer calls), never entering statically dead code;
- forward: what each sink's result flows into (a ``File`` built from the input, checked and then
  read), over the same edges;
- control dependence: the syntactic ancestors of every node in the slice (the enclosing ``if``,
  loop, ``switch``/``match``, ``try``, method and class headers), and the early exits
  (``return``/``raise``/``throw``/``break``/``continue``) before a sink of the same function, with
  the branches that hold them: whether the sink runs at all depends on them.

The gadget is the source lines holding those nodes, in source order. Code with no live sink falls
back to the whole function with its dead lines left out; code whose syntax the frontends cannot
read (a token-chain graph) falls back to the whole text. Both fallbacks are said in `kind`.

With ``markers=True`` each line is prefixed with the taint analysis' roles of its nodes, as words
that are the same in every language (`MARKERS`): ``@source`` (untrusted input enters here),
``@tainted`` (a value on the line carries it), ``@sanitizer``, ``@sql`` (a literal that looks like
SQL), ``@concat`` (a string is built), ``@constant`` (a condition folds to a constant), ``@sink``
(a known sink) and ``@reached`` (a sink that tainted data reaches). The code's own tokens differ
between Java and Python; these do not, so what a model learns of them on one language carries to
the other.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass

from . import ir as IR
from .builder import normalize_language
from .java_frontend import build_java_ir
from .python_frontend import build_python_ir
from .vocab import EDGE_INDEX, FLOW_EDGE_TYPES, SINK_EDGE_TYPE

log = logging.getLogger(__name__)

GADGET_VERSION = "gadget-2"  # gadget-2: optional analysis markers (gadget-1 lines unchanged)
# The IR budget of a gadget (nodes); larger code is cut there and the rest falls back to text.
DEFAULT_BUDGET = 20_000

_AST_CHILD = EDGE_INDEX["ast_child"]
_BACKWARD_TYPES = frozenset(FLOW_EDGE_TYPES) | {SINK_EDGE_TYPE}
_JUMPS = frozenset(("py.Return", "py.Raise", "py.Break", "py.Continue", "java.return_statement",
                    "java.throw_statement", "java.break_statement", "java.continue_statement"))
_FUNCTIONS = frozenset(("py.FunctionDef", "py.AsyncFunctionDef", "py.Lambda", "java.method_declaration",
                        "java.constructor_declaration", "java.compact_constructor_declaration",
                        "java.lambda_expression"))
# Lines that carry no tokens worth reading: imports, package lines, comment lines (also what the
# transformer's whole-text input leaves out, `training_entry/text_inputs.py`).
BOILERPLATE = re.compile(r"^\s*(?:import\s|package\s|from\s+\S+\s+import\s|#|//|/?\*)")
# Lines of braces alone carry no tokens worth a place in a fixed token budget.
_BRACES = re.compile(r"^[{}();\s]*$")


# Line markers, in the order they are written (see the module docstring).
MARKERS = ("@source", "@tainted", "@sanitizer", "@sql", "@concat", "@constant", "@sink", "@reached")
_SANITIZING = IR.SANITIZER | IR.PATH_SANITIZER | IR.SANITIZER_SOME
_MARK_BITS = (("@source", IR.SOURCE | IR.PARAM_SOURCE), ("@sanitizer", _SANITIZING), ("@sql", IR.SQL_LITERAL),
              ("@concat", IR.CONCAT), ("@constant", IR.CONST_TRUE | IR.CONST_FALSE), ("@sink", IR.SINK))


@dataclass(frozen=True)
class Gadget:
    """`text`: the gadget's lines, stripped and joined by newlines; `kind`: "slice" (statements
    reaching a sink), "live" (no sink: the function without its dead code) or "text" (unreadable
    code: the whole text); `sinks`: the sink calls used as criteria; `lines`: 0-based line numbers."""

    text: str
    kind: str
    sinks: int
    lines: tuple[int, ...]


def _source_lines(code: str) -> list[str]:
    # The frontends count lines after normalising line ends (Python) or by "\n" (tree-sitter).
    return code.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _render(lines: list[str], keep, marks: dict[int, str] | None = None) -> tuple[str, tuple[int, ...]]:
    out, kept = [], []
    for i in keep:
        if 0 <= i < len(lines):
            text = lines[i].strip()
            if text and not BOILERPLATE.match(text) and not _BRACES.match(text):
                mark = marks.get(i) if marks else None
                out.append(f"{mark} {text}" if mark else text)
                kept.append(i)
    return "\n".join(out), tuple(kept)


def _line_marks(g) -> dict[int, str]:
    """Source line -> its markers (`MARKERS`), from the nodes on it that are not dead."""
    from .builder import ir_taint  # the builder imports the frontends this module imports too

    _, _, tainted, _, on_path = ir_taint(g)
    found: dict[int, set[str]] = {}
    for v, (line, flag) in enumerate(zip(g.lines, g.flags)):
        if line < 0 or flag & IR.DEAD:
            continue
        names = [name for name, bits in _MARK_BITS if flag & bits]
        if tainted[v]:
            names.append("@tainted")
        if flag & IR.SINK and on_path[v]:
            names.append("@reached")
        if names:
            found.setdefault(line, set()).update(names)
    return {line: " ".join(m for m in MARKERS if m in names) for line, names in found.items()}


def _whole(code: str, kind: str = "text") -> Gadget:
    lines = _source_lines(code)
    text, kept = _render(lines, range(len(lines)))
    return Gadget(text, kind, 0, kept)


def build_ir(code: str, language: str, budget: int = DEFAULT_BUDGET):
    """The graph IR of `code` (None when the frontend fails on it: the caller falls back to text)."""
    frontend = build_java_ir if normalize_language(language) == "java" else build_python_ir
    try:
        graph, _ = frontend(code, budget)
    except (RecursionError, MemoryError):
        return None
    except Exception as exc:  # noqa: BLE001 - one odd record must not stop a training run
        log.warning("code gadget: frontend failed (%s: %s); using the whole text", type(exc).__name__, exc)
        return None
    return graph


def code_gadget(code: str, language: str, budget: int = DEFAULT_BUDGET, markers: bool = False) -> Gadget:
    """The code gadget of one function or file (see the module docstring); with `markers`, each
    line starts with its analysis markers.

    Raises:
        ValueError: unsupported language.
    """
    code = "" if code is None else str(code)
    g = build_ir(code, language, budget)
    if g is None or not g.kinds or len(g.lines) != len(g.kinds) or max(g.lines, default=-1) < 0:
        return _whole(code)
    n = len(g.kinds)
    dead = [bool(f & IR.DEAD) for f in g.flags]
    parent = [-1] * n
    back: list[list[int]] = [[] for _ in range(n)]
    fwd: list[list[int]] = [[] for _ in range(n)]
    sink_in = [False] * n
    for s, d, t in g.edges:
        if t == _AST_CHILD:
            parent[d] = s
        elif t in _BACKWARD_TYPES:
            back[d].append(s)
            fwd[s].append(d)
            if t == SINK_EDGE_TYPE:
                sink_in[d] = True
    sinks = [i for i in range(n) if g.flags[i] & IR.SINK and sink_in[i] and not dead[i]]
    lines = _source_lines(code)
    marks = _line_marks(g) if markers else None
    if not sinks:
        live = sorted({g.lines[i] for i in range(n) if not dead[i] and g.lines[i] >= 0})
        dead_only = {g.lines[i] for i in range(n) if dead[i]} - set(live)
        keep = [i for i in range(len(lines)) if i not in dead_only]
        text, kept = _render(lines, keep, marks)
        return Gadget(text, "live", 0, kept)
    seen = [False] * n
    for adj in (back, fwd):
        reached = [False] * n
        queue = deque(sinks)
        for s in sinks:
            reached[s] = seen[s] = True
        while queue:
            v = queue.popleft()
            for u in adj[v]:
                if not reached[u] and not dead[u]:
                    reached[u] = seen[u] = True
                    queue.append(u)
    # Early exits before a sink of the same function.
    kinds = g.kinds

    def function_of(v: int) -> int:
        while v >= 0 and kinds[v] not in _FUNCTIONS:
            v = parent[v]
        return v

    last_sink: dict[int, int] = {}
    for s in sinks:
        f = function_of(s)
        last_sink[f] = max(last_sink.get(f, -1), s)
    for v in range(n):
        if kinds[v] in _JUMPS and not dead[v]:
            f = function_of(v)
            if v < last_sink.get(f, -1):
                seen[v] = True
    keep_lines: set[int] = set()
    marked = [False] * n
    for v in range(n):
        if not seen[v]:
            continue
        # The node and its syntactic ancestors (control dependence: enclosing statements, headers).
        while v >= 0 and not marked[v]:
            marked[v] = True
            if g.lines[v] >= 0:
                keep_lines.add(g.lines[v])
            v = parent[v]
    text, kept = _render(lines, sorted(keep_lines), marks)
    return Gadget(text, "slice", len(sinks), kept)
