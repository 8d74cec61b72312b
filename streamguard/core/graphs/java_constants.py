"""Constant folding of Java conditions: literals, file constants, Juliet support values (walker mixin)."""

from __future__ import annotations

import re

from .consts import JULIET_CONSTANTS, JULIET_METHODS, UNKNOWN, fold_binary, fold_str_method, fold_subscript, fold_unary
from .java_syntax import CONTAINER_TYPES, TYPE_DECLS, named, text

# Every alternative starts at a word start (lookbehind), which keeps the scan linear in the input.
_ASSIGNED = re.compile(
    r"(?<![\w.=!<>])(\w+)\s*(?:[-+*/%&|^]|<<|>>>?)?=(?!=)|(?:\+\+|--)\s*(\w+)|(?<!\w)(\w+)\s*(?:\+\+|--)")
_CONST_METHOD = re.compile(
    r"\b(\w+)\s*\(\s*\)\s*(?:throws[\w\s,.]*)?\{\s*return\s+(true|false|-?\d+)\s*;\s*\}")


# Factories of a collection from their literal arguments, and wrappers of one collection.
_LITERAL_FACTORIES = frozenset({"asList", "of", "singleton", "singletonList"})
_WRAPPERS = frozenset({"copyOf", "unmodifiableSet", "unmodifiableList", "unmodifiableCollection",
                       "unmodifiableSortedSet", "unmodifiableNavigableSet"})
_SCALAR_LITERALS = frozenset({"string_literal", "decimal_integer_literal", "hex_integer_literal",
                              "character_literal", "true", "false"})
_GROWING = "add|addAll|addFirst|addLast|addElement|offer|push|put|putAll|putIfAbsent|set|insert"


class JavaConstants:
    """Condition folding for the Java walker (uses ``self.g``, ``self.code``, ``self.consts``,
    ``self.declared``, ``self.const_collections``, ``self._const_methods``, ``self._assigned``)."""

    @property
    def const_methods(self) -> dict[str, object]:
        """No-arg methods whose whole body is ``return <literal>;`` (scanned on first need)."""
        if self._const_methods is None:
            self._const_methods = {}
            for m in _CONST_METHOD.finditer(self.code):
                v = m.group(2)
                self._const_methods[m.group(1)] = True if v == "true" else False if v == "false" else int(v)
        return self._const_methods

    def assignments(self, name: str) -> int:
        """How often ``name`` is assigned or incremented anywhere in the file (scanned on first need)."""
        if self._assigned is None:
            self._assigned = {}
            for m in _ASSIGNED.finditer(self.code):
                key = m.group(1) or m.group(2) or m.group(3)
                self._assigned[key] = self._assigned.get(key, 0) + 1
        return self._assigned.get(name, 0)

    def collect_constants(self, root) -> None:
        """Fields with a constant initializer that are final or never reassigned (usable to fold
        branch conditions), in every class body of the file."""
        stack = [root]
        while stack:
            n = stack.pop()
            for c in n.named_children:
                if c.type in TYPE_DECLS:
                    cname = c.child_by_field_name("name")
                    if cname is not None:
                        self.file_classes.add(text(cname))
                    body = c.child_by_field_name("body")
                    if body is not None:
                        stack.append(body)
                elif c.type in ("field_declaration", "constant_declaration"):
                    self._field_constants(c)

    def _field_constants(self, decl) -> None:
        mods = next((c for c in decl.children if c.type == "modifiers"), None)
        final = mods is not None and "final" in text(mods).split()
        for d in decl.children_by_field_name("declarator"):
            name_n, value_n = d.child_by_field_name("name"), d.child_by_field_name("value")
            if name_n is None:
                continue
            name = text(name_n)
            self.declared.add(name)
            if value_n is None:
                continue
            v = self.const(value_n)
            if v is not UNKNOWN and (final or self.assignments(name) <= 1):
                self.consts[name] = v
            if final and self.literal_collection(value_n, fields=False) and not self.grown(name):
                self.const_collections.add(name)

    def grown(self, name: str) -> bool:
        """Whether the file adds elements to the collection field ``name`` (``ALLOWED.add(x)``)."""
        return re.search(rf"\b{re.escape(name)}\s*\.\s*(?:{_GROWING})\s*\(", self.code) is not None

    def literal_collection(self, n, fields: bool = True) -> bool:
        """A collection of literals: ``Arrays.asList("a", "b")``, ``Set.of(...)``, ``List.of(...)``,
        ``new HashSet<>(Arrays.asList(...))``, ``Collections.unmodifiableSet(...)`` of one, or (with
        ``fields``) a final field of the file initialised with one and never grown."""
        t = n.type
        if t == "parenthesized_expression":
            inner = named(n)
            return len(inner) == 1 and self.literal_collection(inner[0], fields)
        if t == "identifier":
            name = text(n)
            return fields and name in self.const_collections and not self.g.is_local(name)
        if t == "field_access":
            obj, fld = n.child_by_field_name("object"), n.child_by_field_name("field")
            return (fields and obj is not None and obj.type == "this" and fld is not None
                    and text(fld) in self.const_collections)
        args = n.child_by_field_name("arguments")
        items = named(args) if args is not None else []
        if t == "method_invocation":
            name = text(n.child_by_field_name("name"))
            if name in _LITERAL_FACTORIES:
                return bool(items) and all(a.type in _SCALAR_LITERALS for a in items)
            if name in _WRAPPERS:
                return len(items) == 1 and self.literal_collection(items[0], fields)
            return False
        if t == "object_creation_expression":
            typ = n.child_by_field_name("type")
            return (typ is not None and CONTAINER_TYPES.search(text(typ)) is not None and len(items) == 1
                    and self.literal_collection(items[0], fields))
        return False

    def guards(self, cond) -> tuple[list, list]:
        """Variables a branch condition proves to be members of a constant collection.

        Returns ``(on the true path, on the false path)``, each a list of ``(variable key, span of
        the contains() call)``: ``ALLOWED.contains(x)`` is true only for one of its literals;
        ``!``, ``&&`` and ``||`` combine them (``!A.contains(x) || y`` false: ``x`` is a member).
        """
        t = cond.type
        if t == "parenthesized_expression":
            inner = named(cond)
            return self.guards(inner[0]) if len(inner) == 1 else ([], [])
        if t == "unary_expression":
            op, operand = cond.child_by_field_name("operator"), cond.child_by_field_name("operand")
            if op is not None and op.type == "!" and operand is not None:
                on_true, on_false = self.guards(operand)
                return on_false, on_true
            return [], []
        if t == "binary_expression":
            op = cond.child_by_field_name("operator")
            sides = [self.guards(c) for c in (cond.child_by_field_name("left"), cond.child_by_field_name("right"))
                     if c is not None]
            if op is not None and op.type == "&&":
                return [x for on_true, _ in sides for x in on_true], []
            if op is not None and op.type == "||":
                return [], [x for _, on_false in sides for x in on_false]
            return [], []
        if t == "method_invocation":
            obj, name_n, args = (cond.child_by_field_name(f) for f in ("object", "name", "arguments"))
            items = named(args) if args is not None else []
            if (name_n is not None and text(name_n) == "contains" and obj is not None and len(items) == 1
                    and items[0].type == "identifier" and self.g.is_local(text(items[0]))
                    and self.literal_collection(obj)):
                return [(text(items[0]), (cond.start_byte, cond.end_byte, cond.type))], []
        return [], []

    def const(self, n) -> object:
        """Fold a Java expression to a Python value, or UNKNOWN."""
        t = n.type
        if t == "true":
            return True
        if t == "false":
            return False
        if t in ("decimal_integer_literal", "hex_integer_literal", "octal_integer_literal", "binary_integer_literal"):
            s = text(n).replace("_", "").rstrip("lL")
            try:
                if t == "octal_integer_literal" and not s.lower().startswith("0o"):
                    return int(s, 8)
                return int(s, 0)
            except ValueError:
                return UNKNOWN
        if t == "decimal_floating_point_literal":
            try:
                return float(text(n).rstrip("fFdD"))
            except ValueError:
                return UNKNOWN
        if t == "string_literal":
            s = text(n)
            return s[1:-1] if len(s) >= 2 else UNKNOWN
        if t == "parenthesized_expression":
            inner = named(n)
            return self.const(inner[0]) if len(inner) == 1 else UNKNOWN
        if t == "unary_expression":
            op, operand = n.child_by_field_name("operator"), n.child_by_field_name("operand")
            return fold_unary(op.type, self.const(operand)) if op is not None and operand is not None else UNKNOWN
        if t == "binary_expression":
            op = n.child_by_field_name("operator")
            left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
            if op is None or left is None or right is None:
                return UNKNOWN
            return fold_binary(op.type, self.const(left), lambda: self.const(right))
        if t == "character_literal":
            s = text(n)[1:-1]
            return s if len(s) == 1 else UNKNOWN
        if t == "identifier":
            name = text(n)
            if self.g.is_local(name):
                return self.g.local_const(name)
            if name in self.consts:
                return self.consts[name]
            return UNKNOWN if name in self.declared else JULIET_CONSTANTS.get(name, UNKNOWN)
        if t == "field_access":
            obj, fld = n.child_by_field_name("object"), n.child_by_field_name("field")
            if obj is None or fld is None:
                return UNKNOWN
            if obj.type == "this":
                return self.consts.get(text(fld), UNKNOWN)
            return JULIET_CONSTANTS.get(f"{text(obj)}.{text(fld)}", UNKNOWN)
        if t == "array_access":
            arr, idx = n.child_by_field_name("array"), n.child_by_field_name("index")
            if arr is None or idx is None:
                return UNKNOWN
            return fold_subscript(self.const(arr), self.const(idx))
        if t == "ternary_expression":
            cond = n.child_by_field_name("condition")
            c = self.const(cond) if cond is not None else UNKNOWN
            if c is UNKNOWN:
                return UNKNOWN
            arm = n.child_by_field_name("consequence" if c else "alternative")
            return self.const(arm) if arm is not None else UNKNOWN
        if t == "method_invocation":
            args = n.child_by_field_name("arguments")
            obj, name_n = n.child_by_field_name("object"), n.child_by_field_name("name")
            if args is not None and obj is not None and obj.type != "this" and name_n is not None:
                recv = self.const(obj)
                if isinstance(recv, str):  # "ABC".charAt(2), guess.equals("x") on a constant local
                    return fold_str_method("java", text(name_n), recv, [self.const(a) for a in named(args)])
            if args is None or named(args):
                return UNKNOWN
            obj, name = n.child_by_field_name("object"), text(n.child_by_field_name("name"))
            if obj is None or obj.type == "this":
                if name in self.const_methods:
                    return self.const_methods[name]
                return JULIET_METHODS.get(name, UNKNOWN)
            return JULIET_METHODS.get(f"{text(obj)}.{name}", UNKNOWN)
        return UNKNOWN

    def truth(self, cond) -> bool | None:
        v = self.const(cond)
        return None if v is UNKNOWN else bool(v)
