"""Last-resort graph: a chain of tokens, for code no parser (even with repair) could read.

One root node, then one node per significant token linked by ``next_stmt`` edges. Calls are
recognised as ``name(`` and classified by their dotted name, so sources and sinks are still
flagged; there is no data flow, so taint never reaches a sink in such a graph.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize

from . import ir as IR
from .graph_ir import GraphIR
from .rules import PLACEHOLDER, SQL_TEXT, classify_java_call, classify_python_call

_GENERIC_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|\S")
_SKIP = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT, tokenize.ENDMARKER,
         tokenize.ENCODING}


def _python_tokens(code: str) -> list[tuple[str, str]]:
    """(kind, text) pairs from `tokenize`, stopping quietly at the first tokenizer error."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in _SKIP:
                continue
            if tok.type == tokenize.NAME:
                out.append(("tok.KEYWORD" if keyword.iskeyword(tok.string) else "tok.NAME", tok.string))
            elif tok.type == tokenize.OP:
                out.append(("tok.OP", tok.string))
            elif tok.type == tokenize.STRING:
                out.append(("tok.STRING", tok.string))
            elif tok.type == tokenize.NUMBER:
                out.append(("tok.NUMBER", tok.string))
            else:
                out.append(("tok.OTHER", tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    if not out and code.strip():  # tokenizer gave up at once: split on a generic pattern instead
        return _generic_tokens(code)
    return out


def _generic_tokens(code: str) -> list[tuple[str, str]]:
    out = []
    for m in _GENERIC_TOKEN.finditer(code):
        t = m.group(0)
        kind = ("tok.NAME" if t[0].isalpha() or t[0] == "_" else "tok.NUMBER" if t[0].isdigit()
                else "tok.STRING" if t[0] in "\"'" else "tok.OP")
        out.append((kind, t))
    return out


def build_token_ir(code: str, language: str, budget: int) -> GraphIR:
    """Token-chain IR for ``code`` (at least the root node, even for empty input)."""
    g = GraphIR(budget)
    root = g.add("py.Module" if language == "python" else "java.program", -1)
    toks = _python_tokens(code) if language == "python" else _generic_tokens(code)
    prev = root
    dotted: list[str] = []
    try:
        for i, (kind, text) in enumerate(toks):
            flags = 0
            length = -1
            rule = None
            if kind == "tok.STRING":
                flags |= IR.LITERAL
                length = len(text)
                if SQL_TEXT.search(text):
                    flags |= IR.SQL_LITERAL
                if PLACEHOLDER.search(text):
                    flags |= IR.PLACEHOLDER
            elif kind == "tok.NUMBER":
                flags |= IR.LITERAL
                length = len(text)
            elif kind == "tok.NAME":
                flags |= IR.IDENT
                if i + 1 < len(toks) and toks[i + 1][1] == "(":
                    name = ".".join(dotted + [text])
                    rule = (classify_python_call(name, 1, (), False) if language == "python"
                            else classify_java_call(text, ".".join(dotted) or None))
                    flags |= (IR.CALL | (IR.SOURCE if rule.source else 0) | (IR.SINK if rule.sink else 0)
                              | (IR.PATH_SINK if rule.sink and rule.path_sink else 0)
                              | (IR.SANITIZER if rule.sanitizer else 0)
                              | (IR.PATH_SANITIZER if rule.path_sanitizer else 0))
            nid = g.add(kind, root, flags, length)
            if kind == "tok.NAME":
                g.name(nid, text)
            elif kind == "tok.STRING":
                g.literals[nid] = text.strip("\"'")
            if rule is not None:
                if rule.sink and rule.sink_class:
                    g.sink_class[nid] = rule.sink_class
                if rule.sanitizes and not rule.sanitizer:
                    g.sanitizes[nid] = rule.sanitizes
                    if any(c != "path" for c in rule.sanitizes):
                        g.flags[nid] |= IR.SANITIZER_SOME
            g.edge(prev, nid, IR.NEXT_STMT)
            prev = nid
            # Remember a.b. prefixes so that "os . system (" classifies as os.system.
            if kind == "tok.NAME" and i + 1 < len(toks) and toks[i + 1][1] == ".":
                dotted.append(text)
            elif not (kind == "tok.OP" and text == "."):
                dotted = []
    except IR.BudgetExceeded:
        pass
    g.finish()
    return g
