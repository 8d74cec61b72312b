"""Source lines of graph nodes, for findings that point at code (taint paths, sink lines).

The graph record (`streamguard.core.graphs.build_graph`) carries node kinds, not positions. Its
nodes are AST nodes in pre-order, named ``py.<ast class>[:op]`` or ``java.<tree-sitter type>[:op]``,
so the source is parsed again here and the nodes of each kind are matched by their order among
the nodes of that kind: the j-th ``py.Call`` of the graph is the j-th ``ast.Call`` of the
pre-order walk. Matching per kind rather than over the whole sequence keeps it right where the
frontend emits a parent's children in another order (an assignment's value before its target).
A kind whose counts differ (the frontend left some nodes of it out) is not matched; those nodes,
and nodes without a position of their own, take the line of their nearest matched AST ancestor.
Nothing is guessed for graphs that were truncated or that came from unparsable code: their lines
are None.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator, Sequence


def _base(kind: str) -> str:
    return kind.split(":", 1)[0]


def _python_nodes(code: str) -> list[tuple[str, int | None]] | None:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    out: list[tuple[str, int | None]] = []

    def walk(node: ast.AST) -> None:
        out.append(("py." + type(node).__name__, getattr(node, "lineno", None)))
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return out


def _java_nodes(code: str) -> list[tuple[str, int | None]] | None:
    try:
        import tree_sitter_java
        from tree_sitter import Language, Parser
    except ImportError:  # the transformer-only path need not have tree-sitter
        return None
    root = Parser(Language(tree_sitter_java.language())).parse(code.encode("utf-8", "replace")).root_node
    out: list[tuple[str, int | None]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in ("line_comment", "block_comment"):
            continue
        out.append(("java." + node.type, node.start_point[0] + 1))
        stack.extend(reversed(node.named_children))
    return out


def _ast_parents(graph: dict, ast_child_type: int) -> dict[int, int]:
    src, dst = graph["edge_index"]
    return {d: s for s, d, t in zip(src, dst, graph["edge_type"]) if t == ast_child_type}


def node_lines(code: str, graph: dict, node_kinds: Sequence[str], edge_types: Sequence[str],
               truncated_column: int | None = None) -> list[int | None]:
    """1-based source line of every node of ``graph`` (None where it cannot be placed).

    Args:
        code: the source the graph was built from.
        graph: the graph record.
        node_kinds, edge_types: the featurizer's ``NODE_KINDS`` and ``EDGE_TYPES``.
        truncated_column: index of the ``graph_truncated`` feature, when the featurizer has one.
    """
    n = int(graph["num_nodes"])
    lines: list[int | None] = [None] * n
    feat = graph.get("feat") or []
    if not graph.get("parse_ok", False):
        return lines
    if truncated_column is not None and feat and feat[0][truncated_column] > 0.5:
        return lines
    try:
        walked = _python_nodes(code) if graph.get("language") == "python" else _java_nodes(code)
    except RecursionError:  # absurdly deep nesting: no lines rather than no answer
        walked = None
    if walked is None:
        return lines
    by_kind: dict[str, list[int | None]] = defaultdict(list)
    for kind, line in walked:
        by_kind[kind].append(line)
    graph_by_kind: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(graph["kind"]):
        name = node_kinds[k] if 0 <= k < len(node_kinds) else "<unk>"
        if not name.startswith("<"):
            graph_by_kind[_base(name)].append(i)
    for kind, nodes in graph_by_kind.items():
        found = by_kind.get(kind, [])
        if len(found) == len(nodes):
            for i, line in zip(nodes, found):
                lines[i] = line
    # Nodes without a position of their own take their nearest placed AST ancestor's line.
    if "ast_child" in edge_types:
        parents = _ast_parents(graph, list(edge_types).index("ast_child"))
        for i in range(n):
            if lines[i] is None:
                j, seen = parents.get(i), 0
                while j is not None and lines[j] is None and seen < n:
                    j, seen = parents.get(j), seen + 1
                if j is not None:
                    lines[i] = lines[j]
    return lines


def iter_functions(code: str, language: str) -> Iterator[tuple[str, int, int, str]]:
    """The functions / methods of a file: ``(name, first line, last line, source text)``.

    Python: every ``def``/``async def`` not nested in another function (methods included);
    Java: every method and constructor declaration. A file without any yields nothing; a file
    that does not parse (Python) raises SyntaxError.
    """
    if language == "python":
        tree = ast.parse(code)
        lines = code.splitlines(keepends=True)

        def visit(node: ast.AST) -> Iterator[tuple[str, int, int, str]]:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    end = child.end_lineno or child.lineno
                    yield child.name, start, end, _dedent("".join(lines[start - 1:end]))
                elif isinstance(child, ast.ClassDef):
                    yield from visit(child)

        yield from visit(tree)
        return
    import tree_sitter_java
    from tree_sitter import Language, Parser

    src = code.encode("utf-8", "replace")
    root = Parser(Language(tree_sitter_java.language())).parse(src).root_node
    stack = [root]
    found = []
    while stack:
        node = stack.pop()
        if node.type in ("method_declaration", "constructor_declaration"):
            name = node.child_by_field_name("name")
            found.append((name.text.decode("utf-8", "replace") if name is not None else "?",
                          node.start_point[0] + 1, node.end_point[0] + 1,
                          src[node.start_byte:node.end_byte].decode("utf-8", "replace")))
            continue  # methods of local / anonymous classes stay inside their method
        stack.extend(reversed(node.named_children))
    yield from sorted(found, key=lambda f: f[1])


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)
