"""tree-sitter-java access shared by the Java walker modules: parser, node text, node-type sets."""

from __future__ import annotations

import re
import threading

_LOCAL = threading.local()

SKIP = frozenset({"line_comment", "block_comment"})
# Emitted as one node without children.
LEAF = frozenset({
    "type_identifier", "generic_type", "array_type", "integral_type", "floating_point_type", "boolean_type",
    "void_type", "scoped_type_identifier", "annotated_type", "modifiers", "import_declaration",
    "package_declaration", "marker_annotation", "annotation", "type_parameters", "type_arguments",
    "superclass", "super_interfaces", "extends_interfaces", "throws", "dimensions", "catch_type",
    "scoped_identifier", "class_literal", "this", "super", "method_reference", "permits", "asterisk",
})
LITERALS = frozenset({
    "string_literal", "decimal_integer_literal", "hex_integer_literal", "octal_integer_literal",
    "binary_integer_literal", "decimal_floating_point_literal", "hex_floating_point_literal", "true", "false",
    "null_literal", "character_literal",
})
TYPE_DECLS = frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                        "annotation_type_declaration"})
CONTAINER_TYPES = re.compile(r"List|Map|Set|Queue|Deque|Vector|Stack|Hashtable|Properties|Collection")
# Parameter types that can carry attacker-controlled text (entry-method parameters of these types are sources).
STRINGY_PARAM = re.compile(r"\bString\b|\bObject\b|CharSequence|char\s*\[|byte\s*\[")


def parser():
    """A tree-sitter Java parser for this thread (parsers are not thread-safe), created on first use."""
    p = getattr(_LOCAL, "parser", None)
    if p is None:
        import tree_sitter_java
        from tree_sitter import Language, Parser

        p = _LOCAL.parser = Parser(Language(tree_sitter_java.language()))
    return p


def text(n) -> str:
    """Source text of a node."""
    return n.text.decode("utf-8", "replace")


def named(n) -> list:
    """Named children without comments."""
    kids = n.named_children
    for c in kids:
        if c.is_extra:  # comments are extras; most nodes have none among their children
            return [c for c in kids if c.type not in SKIP]
    return kids
