"""Java frontend: tree-sitter-java syntax tree -> `GraphIR` with def-use, calls and dead branches.

tree-sitter is error-tolerant: code that does not parse still yields a tree (with ERROR/MISSING
nodes, reported as ``parse_ok=False``), and a bare method or statement list parses as well.
Comments, string fragments and the insides of type expressions, modifiers and imports are not
emitted as nodes: they carry no data flow and would only inflate the graph.
"""

from __future__ import annotations

import re

from . import ir as IR
from .consts import JULIET_CONSTANTS, JULIET_METHODS, UNKNOWN, fold_binary, fold_unary
from .ir import CallInfo, FuncInfo, GraphIR
from .rules import (APPEND_METHODS, GET_METHODS, KEYED_STORE_METHODS, PLACEHOLDER, READ_METHODS, SQL_TEXT,
                    STORE_METHODS, classify_java_call, classify_java_constructor)

_PARSER = None


def _parser():
    """One tree-sitter parser per process, created on first use."""
    global _PARSER
    if _PARSER is None:
        import tree_sitter_java
        from tree_sitter import Language, Parser

        _PARSER = Parser(Language(tree_sitter_java.language()))
    return _PARSER


_SKIP = frozenset({"line_comment", "block_comment"})
# Emitted as one node without children.
_LEAF = frozenset({
    "type_identifier", "generic_type", "array_type", "integral_type", "floating_point_type", "boolean_type",
    "void_type", "scoped_type_identifier", "annotated_type", "modifiers", "import_declaration",
    "package_declaration", "marker_annotation", "annotation", "type_parameters", "type_arguments",
    "superclass", "super_interfaces", "extends_interfaces", "throws", "dimensions", "catch_type",
    "scoped_identifier", "class_literal", "this", "super", "method_reference", "permits", "asterisk",
})
_LITERALS = frozenset({
    "string_literal", "decimal_integer_literal", "hex_integer_literal", "octal_integer_literal",
    "binary_integer_literal", "decimal_floating_point_literal", "hex_floating_point_literal", "true", "false",
    "null_literal", "character_literal",
})
_TYPE_DECLS = frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                         "annotation_type_declaration"})
_CONTAINER_TYPES = re.compile(r"List|Map|Set|Queue|Deque|Vector|Stack|Hashtable|Properties|Collection")
_STRINGY_PARAM = re.compile(r"\bString\b|\bObject\b|CharSequence|char\s*\[|byte\s*\[")
# Every alternative starts at a word start (lookbehind), which keeps the scan linear in the input.
_ASSIGNED = re.compile(
    r"(?<![\w.=!<>])(\w+)\s*(?:[-+*/%&|^]|<<|>>>?)?=(?!=)|(?:\+\+|--)\s*(\w+)|(?<!\w)(\w+)\s*(?:\+\+|--)")
_CONST_METHOD = re.compile(
    r"\b(\w+)\s*\(\s*\)\s*(?:throws[\w\s,.]*)?\{\s*return\s+(true|false|-?\d+)\s*;\s*\}")


def build_java_ir(code: str, budget: int) -> tuple[GraphIR, bool]:
    """Parse Java source and build its graph IR. Returns (ir, parse_ok); never raises on bad code."""
    src = code.encode("utf-8", "replace")
    root = _parser().parse(src).root_node
    graph = GraphIR(budget)
    walker = _JavaWalker(graph, code)
    try:
        walker.collect_constants(root)
        walker.node(root, -1)
    except IR.BudgetExceeded:
        pass
    except RecursionError:  # absurdly deep nesting: keep what was built
        graph.truncated = True
    graph.finish()
    return graph, not root.has_error


def _text(n) -> str:
    return n.text.decode("utf-8", "replace")


def _named(n) -> list:
    return [c for c in n.named_children if c.type not in _SKIP]


class _JavaWalker:
    """One pass over a tree-sitter-java tree, in source order."""

    def __init__(self, graph: GraphIR, code: str):
        self.g = graph
        self.code = code
        self.consts: dict[str, object] = {}        # field name -> folded constant value
        self.const_methods: dict[str, object] = {}  # no-arg method returning a literal -> value
        self.declared: set[str] = set()
        self.array_elems: dict[int, list[int]] = {}  # array initializer/creation node -> element values

    # ------------------------------------------------------------------------------ constants
    def collect_constants(self, root) -> None:
        """Fields with a constant initializer that is final or never reassigned, and no-arg
        methods whose whole body is ``return <literal>;`` (both usable to fold conditions)."""
        assigned: dict[str, int] = {}
        for m in _ASSIGNED.finditer(self.code):
            name = m.group(1) or m.group(2) or m.group(3)
            assigned[name] = assigned.get(name, 0) + 1
        for m in _CONST_METHOD.finditer(self.code):
            v = m.group(2)
            self.const_methods[m.group(1)] = True if v == "true" else False if v == "false" else int(v)
        stack = [root]
        while stack:
            n = stack.pop()
            for c in n.named_children:
                if c.type in _TYPE_DECLS:
                    body = c.child_by_field_name("body")
                    if body is not None:
                        stack.append(body)
                elif c.type in ("field_declaration", "constant_declaration"):
                    self._field_constants(c, assigned)

    def _field_constants(self, decl, assigned: dict[str, int]) -> None:
        mods = next((c for c in decl.children if c.type == "modifiers"), None)
        final = mods is not None and "final" in _text(mods).split()
        for d in decl.children_by_field_name("declarator"):
            name_n, value_n = d.child_by_field_name("name"), d.child_by_field_name("value")
            if name_n is None:
                continue
            name = _text(name_n)
            self.declared.add(name)
            if value_n is None:
                continue
            v = self.const(value_n)
            if v is not UNKNOWN and (final or assigned.get(name, 0) <= 1):
                self.consts[name] = v

    def const(self, n) -> object:
        """Fold a Java expression to a Python value, or UNKNOWN."""
        t = n.type
        if t == "true":
            return True
        if t == "false":
            return False
        if t in ("decimal_integer_literal", "hex_integer_literal", "octal_integer_literal", "binary_integer_literal"):
            s = _text(n).replace("_", "").rstrip("lL")
            try:
                if t == "octal_integer_literal" and not s.lower().startswith("0o"):
                    return int(s, 8)
                return int(s, 0)
            except ValueError:
                return UNKNOWN
        if t == "decimal_floating_point_literal":
            try:
                return float(_text(n).rstrip("fFdD"))
            except ValueError:
                return UNKNOWN
        if t == "string_literal":
            s = _text(n)
            return s[1:-1] if len(s) >= 2 else UNKNOWN
        if t == "parenthesized_expression":
            inner = _named(n)
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
        if t == "identifier":
            name = _text(n)
            if self.g.is_local(name):
                return UNKNOWN
            if name in self.consts:
                return self.consts[name]
            return UNKNOWN if name in self.declared else JULIET_CONSTANTS.get(name, UNKNOWN)
        if t == "field_access":
            obj, fld = n.child_by_field_name("object"), n.child_by_field_name("field")
            if obj is None or fld is None:
                return UNKNOWN
            if obj.type == "this":
                return self.consts.get(_text(fld), UNKNOWN)
            return JULIET_CONSTANTS.get(f"{_text(obj)}.{_text(fld)}", UNKNOWN)
        if t == "method_invocation":
            args = n.child_by_field_name("arguments")
            if args is None or _named(args):
                return UNKNOWN
            obj, name = n.child_by_field_name("object"), _text(n.child_by_field_name("name"))
            if obj is None or obj.type == "this":
                if name in self.const_methods:
                    return self.const_methods[name]
                return JULIET_METHODS.get(name, UNKNOWN)
            return JULIET_METHODS.get(f"{_text(obj)}.{name}", UNKNOWN)
        return UNKNOWN

    def truth(self, cond) -> bool | None:
        v = self.const(cond)
        return None if v is UNKNOWN else bool(v)

    # -------------------------------------------------------------------------------- dispatch
    def node(self, n, parent: int) -> int:
        """Emit ``n`` (statement, expression or declaration); returns the id carrying its value."""
        t = n.type
        handler = _HANDLERS.get(t)
        if handler is not None:
            return handler(self, n, parent)
        if t in _LEAF:
            return self.g.add("java." + t, parent)
        if t in _LITERALS:
            return self.literal(n, parent)
        return self.generic(n, parent)

    def generic(self, n, parent: int) -> int:
        """Unknown construct (or ERROR): children emitted in order, their values flow into it."""
        nid = self.g.add("java." + n.type, parent)
        for c in _named(n):
            v = self.node(c, nid)
            self.g.flow(v, nid)
        return nid

    def literal(self, n, parent: int) -> int:
        t = n.type
        flags = IR.LITERAL
        length = 0
        if t == "string_literal":
            s = _text(n)[1:-1]
            length = len(s)
            if SQL_TEXT.search(s):
                flags |= IR.SQL_LITERAL
            if PLACEHOLDER.search(s):
                flags |= IR.PLACEHOLDER
            return self.g.add("java.string_literal", parent, flags, length)
        return self.g.add("java." + t, parent, flags, len(_text(n)))

    # ------------------------------------------------------------------------------ statements
    def block(self, n, parent: int) -> int:
        nid = self.g.add("java." + n.type, parent)
        self.statements(_named(n), nid)
        return nid

    def statements(self, stmts: list, parent: int, head: int = -1) -> None:
        """Walk a statement list; code after a jump is unreachable and walked as dead."""
        g = self.g
        prev = head
        for s in stmts:
            if g.env is None and not g.dead:
                with g.dead_mode():
                    sid = self.node(s, parent)
            else:
                sid = self.node(s, parent)
            if prev >= 0:
                g.edge(prev, sid, IR.NEXT_STMT)
            prev = sid

    def branch(self, n, parent: int, env_in, dead: bool):
        """Walk one branch from ``env_in``; returns (node id, environment at its end)."""
        g = self.g
        g.env = env_in.copy() if env_in is not None else None
        if dead:
            with g.dead_mode():
                sid = self.node(n, parent)
            return sid, None
        sid = self.node(n, parent)
        return sid, g.env

    def mark_condition(self, cid: int, truth: bool | None) -> None:
        if truth is True:
            self.g.mark(cid, IR.CONST_TRUE)
        elif truth is False:
            self.g.mark(cid, IR.CONST_FALSE)

    def if_statement(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.if_statement", parent)
        cond = n.child_by_field_name("condition")
        truth = None
        if cond is not None:
            truth = self.truth(cond)
            self.mark_condition(self.node(cond, nid), truth)
        before = g.env
        cons, alt = n.child_by_field_name("consequence"), n.child_by_field_name("alternative")
        env_then = env_else = before
        if cons is not None:
            sid, env_then = self.branch(cons, nid, before, truth is False)
            g.edge(nid, sid, IR.NEXT_STMT)
        if alt is not None:
            sid, env_else = self.branch(alt, nid, before, truth is True)
            g.edge(nid, sid, IR.NEXT_STMT)
        elif truth is True:
            env_else = None
        if truth is False:
            env_then = None
        g.env = IR.join(env_then, env_else)
        return nid

    def while_statement(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.while_statement", parent)
        cond = n.child_by_field_name("condition")
        truth = self.truth(cond) if cond is not None else None
        if cond is not None:
            self.mark_condition(self.node(cond, nid), truth)
        body = n.child_by_field_name("body")
        self.loop_body(nid, body, truth, [])
        return nid

    def loop_body(self, nid: int, body, truth: bool | None, updates: list) -> None:
        """Body (and for-updates) of a loop whose condition folded to ``truth``; sets the exit env."""
        g = self.g
        before = g.env
        if body is None:
            return
        if truth is False:
            self.branch(body, nid, before, True)
            g.env = before
            return
        with g.loop() as frame:
            sid, end = self.branch(body, nid, frame.entry, False)
            g.edge(nid, sid, IR.NEXT_STMT)
            g.env = IR.join(end, *frame.continues)
            for u in updates:
                self.node(u, nid)
            end_all = g.env
        g.close_loop(frame, end_all)
        if truth is True:  # leaves only through break
            g.env = frame.resolve(IR.join(*frame.breaks))
        else:
            g.env = frame.resolve(IR.join(before, end_all, *frame.breaks))

    def do_statement(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.do_statement", parent)
        body, cond = n.child_by_field_name("body"), n.child_by_field_name("condition")
        truth = self.truth(cond) if cond is not None else None
        with g.loop() as frame:
            if body is not None:
                sid = self.node(body, nid)
                g.edge(nid, sid, IR.NEXT_STMT)
            g.env = IR.join(g.env, *frame.continues)
            if cond is not None:
                self.mark_condition(self.node(cond, nid), truth)
            end_all = g.env
        g.close_loop(frame, end_all)
        g.env = frame.resolve(IR.join(*frame.breaks) if truth is True else IR.join(end_all, *frame.breaks))
        return nid

    def for_statement(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.for_statement", parent)
        for init in n.children_by_field_name("init"):
            self.node(init, nid)
        cond = n.child_by_field_name("condition")
        truth = True if cond is None else self.truth(cond)
        if cond is not None:
            self.mark_condition(self.node(cond, nid), truth)
        self.loop_body(nid, n.child_by_field_name("body"), truth, n.children_by_field_name("update"))
        return nid

    def enhanced_for_statement(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.enhanced_for_statement", parent)
        typ, name, value = (n.child_by_field_name(f) for f in ("type", "name", "value"))
        if typ is not None:
            g.add("java." + typ.type, nid)
        v = self.node(value, nid) if value is not None else -1
        before = g.env
        if name is not None:
            var = g.add("java.identifier", nid, IR.IDENT)
            key = _text(name)
            with g.loop() as frame:
                g.env = frame.entry
                g.define(key, var, v)
                body = n.child_by_field_name("body")
                end = g.env
                if body is not None:
                    sid = self.node(body, nid)
                    g.edge(nid, sid, IR.NEXT_STMT)
                    end = IR.join(g.env, *frame.continues)
            g.close_loop(frame, end)
            g.env = frame.resolve(IR.join(before, end, *frame.breaks))
        return nid

    def try_statement(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java." + n.type, parent)
        before = g.env
        res = n.child_by_field_name("resources")
        if res is not None:
            self.node(res, nid)
        body = n.child_by_field_name("body")
        if body is not None:
            sid = self.node(body, nid)
            g.edge(nid, sid, IR.NEXT_STMT)
        after_body = g.env
        outs = [after_body]
        fin = None
        for c in _named(n):
            if c.type == "catch_clause":
                g.env = IR.join(before, after_body)
                cid = g.add("java.catch_clause", nid)
                for cc in _named(c):
                    if cc.type == "catch_formal_parameter":
                        pid = g.add("java.catch_formal_parameter", cid)
                        pname = cc.child_by_field_name("name")
                        if pname is not None:
                            g.define(_text(pname), g.add("java.identifier", pid, IR.IDENT))
                    elif cc.type == "block":
                        self.block(cc, cid)
                outs.append(g.env)
            elif c.type == "finally_clause":
                fin = c
        g.env = IR.join(*outs)
        if fin is not None:
            after = g.env
            g.env = IR.join(before, after)
            self.generic_block_holder(fin, nid)
            if after is None:
                g.env = None
        return nid

    def generic_block_holder(self, n, parent: int) -> int:
        """A node whose children are blocks/statements (finally, synchronized, static init)."""
        nid = self.g.add("java." + n.type, parent)
        self.statements(_named(n), nid)
        return nid

    def switch(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.switch_expression", parent)
        cond = n.child_by_field_name("condition")
        sel = UNKNOWN
        if cond is not None:
            sel = self.const(cond)
            self.node(cond, nid)
        body = n.child_by_field_name("body")
        if body is None:
            return nid
        bid = g.add("java.switch_block", nid)
        groups = _named(body)
        labels = [self.case_values(grp) for grp in groups]
        live_from = None
        if sel is not UNKNOWN:
            live_from = next((i for i, (vals, _) in enumerate(labels) if sel in vals), None)
            if live_from is None:
                live_from = next((i for i, (_, dflt) in enumerate(labels) if dflt), None)
        has_default = any(d for _, d in labels)
        before = g.env
        outs = []
        with g.breakable() as breaks:
            fall = None
            for i, grp in enumerate(groups):
                arrow = grp.type == "switch_rule"
                if sel is UNKNOWN:
                    dead = False
                    env_in = before if arrow else IR.join(before, fall)
                else:
                    dead = live_from is None or i < live_from or (i > live_from and (arrow or fall is None))
                    env_in = before if (i == live_from or arrow) else fall
                sid, end = self.branch(grp, bid, env_in, dead)
                g.edge(nid, sid, IR.NEXT_STMT)
                if arrow:
                    outs.append(end)
                    fall = None
                else:
                    fall = end
            outs.append(fall)
        if sel is UNKNOWN and not has_default:
            outs.append(before)
        if sel is not UNKNOWN and live_from is None:
            outs.append(before)
        g.env = IR.join(*outs, *breaks)
        return nid

    def case_values(self, grp) -> tuple[list, bool]:
        vals, dflt = [], False
        for c in grp.named_children:
            if c.type == "switch_label":
                kids = _named(c)
                if not kids:
                    dflt = True
                for k in kids:
                    v = self.const(k)
                    if v is not UNKNOWN:
                        vals.append(v)
        return vals, dflt

    def switch_group(self, n, parent: int) -> int:
        nid = self.g.add("java." + n.type, parent)
        stmts = []
        for c in _named(n):
            if c.type == "switch_label":
                lid = self.g.add("java.switch_label", nid)
                for k in _named(c):
                    self.node(k, lid)
            else:
                stmts.append(c)
        self.statements(stmts, nid)
        return nid

    def return_statement(self, n, parent: int) -> int:
        nid = self.g.add("java.return_statement", parent)
        kids = _named(n)
        v = self.node(kids[0], nid) if kids else -1
        if v >= 0:
            self.g.flow(v, nid)
        self.g.returns(nid if v >= 0 else -1)
        return nid

    def throw_statement(self, n, parent: int) -> int:
        nid = self.generic(n, parent)
        self.g.env = None
        return nid

    def jump(self, n, parent: int) -> int:
        nid = self.g.add("java." + n.type, parent)
        self.g.jump("break" if n.type == "break_statement" else "continue")
        return nid

    def local_variable_declaration(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java." + n.type, parent)
        typ = n.child_by_field_name("type")
        container = False
        if typ is not None:
            g.add("java." + typ.type, nid)
            container = bool(_CONTAINER_TYPES.search(_text(typ)))
        for d in n.children_by_field_name("declarator"):
            self.declarator(d, nid, field=(n.type != "local_variable_declaration"), container=container)
        return nid

    def declarator(self, d, parent: int, *, field: bool, container: bool = False) -> None:
        g = self.g
        did = g.add("java.variable_declarator", parent)
        name_n, value_n = d.child_by_field_name("name"), d.child_by_field_name("value")
        if name_n is None:
            return
        name = _text(name_n)
        key = "this." + name if field else name
        var = g.add("java.identifier", did, IR.IDENT)
        if value_n is None:
            if field:
                g.define(key, var)
            else:
                g.declare(key)
            return
        v = self.node(value_n, did)
        g.define(key, var, v, const=value_n.type in _LITERALS)
        self.track_container(key, value_n, v, container)

    def track_container(self, key: str, value_n, value_id: int, typed_container: bool) -> None:
        """A new collection/array assigned to ``key`` starts literal-index tracking."""
        t = value_n.type
        if t == "object_creation_expression":
            typ = value_n.child_by_field_name("type")
            if typ is not None and _CONTAINER_TYPES.search(_text(typ)):
                self.g.container_new(key, {})
        elif value_id in self.array_elems:  # new T[]{a, b} / {a, b}: elements at literal indices
            self.g.container_new(key, dict(enumerate(self.array_elems[value_id])))

    # ----------------------------------------------------------------------------- declarations
    def type_declaration(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java." + n.type, parent)
        for c in _named(n):
            if c.type in ("class_body", "interface_body", "enum_body", "annotation_type_body"):
                bid = g.add("java." + c.type, nid)
                with g.function(None, scope_kind="class"):
                    for m in _named(c):
                        self.member(m, bid)
            elif c.type == "identifier":
                g.add("java.identifier", nid)
            else:
                self.node(c, nid)
        return nid

    def member(self, m, parent: int) -> None:
        t = m.type
        if t in ("field_declaration", "constant_declaration"):
            self.local_variable_declaration(m, parent)
        elif t == "enum_body_declarations":
            bid = self.g.add("java.enum_body_declarations", parent)
            for c in _named(m):
                self.member(c, bid)
        else:
            self.node(m, parent)

    def method_declaration(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java." + n.type, parent)
        name_n = n.child_by_field_name("name")
        info = FuncInfo(_text(name_n) if name_n is not None else "<anon>", nid, True)
        with g.function(info):
            for c in _named(n):
                if c.type == "formal_parameters":
                    self.formal_parameters(c, nid, info)
                elif c.type in ("block", "constructor_body"):
                    sid = self.block(c, nid)
                    g.edge(nid, sid, IR.NEXT_STMT)
                elif c.type == "identifier":
                    g.add("java.identifier", nid)
                else:
                    self.node(c, nid)
        return nid

    def formal_parameters(self, n, parent: int, info: FuncInfo | None) -> None:
        g = self.g
        pid = g.add("java.formal_parameters", parent)
        for p in _named(n):
            fid = g.add("java." + p.type, pid)
            typ, name = p.child_by_field_name("type"), p.child_by_field_name("name")
            if name is None:  # spread_parameter keeps its declarator inside
                decl = next((c for c in p.named_children if c.type == "variable_declarator"), None)
                name = decl.child_by_field_name("name") if decl is not None else None
            if typ is None:
                typ = next((c for c in p.named_children if c.type.endswith("type") or c.type == "type_identifier"),
                           None)
            if typ is not None:
                g.add("java." + typ.type, fid)
            if name is None:
                continue
            var = g.add("java.identifier", fid, IR.IDENT)
            pname = _text(name)
            g.define(pname, var)
            if info is not None:
                info.params.append((pname, var, typ is not None and bool(_STRINGY_PARAM.search(_text(typ)))))

    def lambda_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.lambda_expression", parent)
        params, body = n.child_by_field_name("parameters"), n.child_by_field_name("body")
        outer = g.env
        with g.function(None):
            g.env = outer.copy() if outer is not None else IR.Env()  # lambdas capture locals
            if params is not None:
                if params.type == "identifier":
                    g.define(_text(params), g.add("java.identifier", nid, IR.IDENT))
                elif params.type == "formal_parameters":
                    self.formal_parameters(params, nid, None)
                else:
                    for p in _named(params):
                        g.define(_text(p), g.add("java.identifier", nid, IR.IDENT))
            if body is not None:
                v = self.node(body, nid)
                g.flow(v, nid)
        return nid

    # ----------------------------------------------------------------------------- expressions
    def expression_statement(self, n, parent: int) -> int:
        nid = self.g.add("java.expression_statement", parent)
        for c in _named(n):
            self.node(c, nid)
        return nid

    def identifier(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.identifier", parent, IR.IDENT)
        name = _text(n)
        g.use(name if g.is_local(name) else "this." + name, nid)
        return nid

    def var_key(self, n) -> str | None:
        """Variable key for an identifier or ``this.x``; None for anything else."""
        if n.type == "identifier":
            name = _text(n)
            return name if self.g.is_local(name) else "this." + name
        if n.type == "field_access":
            obj, fld = n.child_by_field_name("object"), n.child_by_field_name("field")
            if obj is not None and fld is not None and obj.type == "this":
                return "this." + _text(fld)
        return None

    def field_access(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.field_access", parent)
        obj, fld = n.child_by_field_name("object"), n.child_by_field_name("field")
        if obj is not None and obj.type == "this" and fld is not None:
            g.add("java.this", nid)
            g.add("java.identifier", nid)
            g.use("this." + _text(fld), nid)
            return nid
        if obj is not None:
            g.flow(self.node(obj, nid), nid)
        if fld is not None:
            g.add("java.identifier", nid)
        return nid

    def assignment_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.assignment_expression", parent)
        left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
        op = n.child_by_field_name("operator")
        plain = op is None or op.type == "="
        v = self.node(right, nid) if right is not None else -1
        if left is None:
            return nid
        key = self.var_key(left)
        if key is not None:
            lid = g.add("java." + left.type, nid, IR.IDENT)
            if not plain:
                g.use(key, lid)
                g.flags[lid] |= IR.CONCAT if op is not None and op.type == "+=" else 0
            g.define(key, lid, v, strong=plain, const=plain and right is not None and right.type in _LITERALS)
            if plain and right is not None:
                self.track_container(key, right, v, False)
            return lid
        if left.type == "array_access":
            arr, idx = left.child_by_field_name("array"), left.child_by_field_name("index")
            aid = g.add("java.array_access", nid)
            if arr is not None:
                self.node(arr, aid)
            if idx is not None:
                self.node(idx, aid)
            akey = self.var_key(arr) if arr is not None else None
            if akey is not None:
                g.define(akey, aid, v, strong=False)
                index = self.const(idx) if idx is not None else UNKNOWN
                g.container_store(akey, None if index is UNKNOWN else index, v)
            else:
                g.flow(v, aid)
            return aid
        # obj.field = v taints the object it is stored into
        lid = self.node(left, nid)
        g.flow(v, lid)
        obj = left.child_by_field_name("object") if left.type == "field_access" else None
        okey = self.var_key(obj) if obj is not None else None
        if okey is not None:
            g.define(okey, lid, -1, strong=False)
        return lid

    def method_invocation(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.method_invocation", parent)
        obj, name_n, args = (n.child_by_field_name(f) for f in ("object", "name", "arguments"))
        obj_v = self.node(obj, nid) if obj is not None else -1
        g.add("java.identifier", nid)
        name = _text(name_n) if name_n is not None else ""
        arg_nodes = _named(args) if args is not None else []
        aid = g.add("java.argument_list", nid) if args is not None else nid
        vals = [self.node(a, aid) for a in arg_nodes]
        rule = classify_java_call(name, _text(obj) if obj is not None else None)
        okey = self.var_key(obj) if obj is not None else None
        precise = None
        if okey is not None and name in GET_METHODS and arg_nodes:
            index = self.const(arg_nodes[0])
            precise = g.container_read(okey, None if index is UNKNOWN else index)
        if precise is not None:  # list.get(1) reads exactly what was stored at index 1
            for d in precise:
                g.flow(d, nid)
        elif obj_v >= 0:
            g.flow(obj_v, nid)
        if okey is not None and obj is not None and obj.type == "identifier":
            if name in STORE_METHODS and vals:
                g.define(okey, obj_v, vals[-1], strong=False)
                if name in APPEND_METHODS and len(vals) == 1:
                    g.container_store(okey, None, vals[0], append=True)
                elif name in KEYED_STORE_METHODS and len(vals) == 2:
                    key_v = self.const(arg_nodes[0])
                    g.container_store(okey, None if key_v is UNKNOWN else key_v, vals[1])
                else:
                    g.container_forget(okey)
            elif name not in READ_METHODS:
                g.container_forget(okey)
        if rule.concat or (name == "append" and obj_v >= 0):
            g.flags[nid] |= IR.CONCAT
        via_self = obj is None or obj.type == "this"
        g.call(CallInfo(nid, name, vals, {}, via_self, rule, nparams_hint=len(vals)))
        return nid

    def object_creation_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.object_creation_expression", parent)
        typ, args = n.child_by_field_name("type"), n.child_by_field_name("arguments")
        tname = _text(typ) if typ is not None else ""
        if typ is not None:
            g.add("java." + typ.type, nid)
        vals = []
        if args is not None:
            aid = g.add("java.argument_list", nid)
            vals = [self.node(a, aid) for a in _named(args)]
        for c in _named(n):
            if c.type == "class_body":  # anonymous class
                bid = g.add("java.class_body", nid)
                with g.function(None, scope_kind="class"):
                    for m in _named(c):
                        self.member(m, bid)
        g.call(CallInfo(nid, "<init>" + tname, vals, {}, False, classify_java_constructor(tname)))
        return nid

    def binary_expression(self, n, parent: int) -> int:
        g = self.g
        op = n.child_by_field_name("operator")
        opt = op.type if op is not None else ""
        nid = g.add(f"java.binary_expression:{opt}", parent)
        left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
        stringy = False
        for side in (left, right):
            if side is None:
                continue
            v = self.node(side, nid)
            g.flow(v, nid)
            stringy = stringy or side.type == "string_literal" or bool(g.flags[v] & IR.CONCAT)
        if opt == "+" and stringy:
            g.flags[nid] |= IR.CONCAT
        return nid

    def ternary_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.ternary_expression", parent)
        cond, a, b = (n.child_by_field_name(f) for f in ("condition", "consequence", "alternative"))
        truth = self.truth(cond) if cond is not None else None
        if cond is not None:
            self.mark_condition(self.node(cond, nid), truth)
        for arm, dead in ((a, truth is False), (b, truth is True)):
            if arm is None:
                continue
            with g.dead_mode(dead):
                v = self.node(arm, nid)
            g.flow(v, nid)
        return nid

    def array_access(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.array_access", parent)
        arr, idx = n.child_by_field_name("array"), n.child_by_field_name("index")
        av = self.node(arr, nid) if arr is not None else -1
        if idx is not None:
            self.node(idx, nid)
        akey = self.var_key(arr) if arr is not None else None
        precise = None
        if akey is not None and idx is not None:
            index = self.const(idx)
            precise = g.container_read(akey, None if index is UNKNOWN else index)
        if precise is not None:
            for d in precise:
                g.flow(d, nid)
        else:
            g.flow(av, nid)
        return nid

    def array_initializer(self, n, parent: int) -> int:
        nid = self.g.add("java.array_initializer", parent)
        elems = []
        for c in _named(n):
            v = self.node(c, nid)
            self.g.flow(v, nid)
            elems.append(v)
        self.array_elems[nid] = elems
        return nid

    def array_creation_expression(self, n, parent: int) -> int:
        nid = self.generic(n, parent)
        init = n.child_by_field_name("value")
        if init is not None:
            inner = next((i for i in self.array_elems if i > nid), None)
            if inner is not None:
                self.array_elems[nid] = self.array_elems[inner]
        return nid

    def update_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.update_expression", parent)
        for c in _named(n):
            v = self.node(c, nid)
            g.flow(v, nid)
            key = self.var_key(c)
            if key is not None:
                g.define(key, v, -1, strong=False)
        return nid

    def labeled_statement(self, n, parent: int) -> int:
        nid = self.g.add("java.labeled_statement", parent)
        self.statements([c for c in _named(n) if c.type != "identifier"], nid)
        return nid


def _h(name):
    return getattr(_JavaWalker, name)


_HANDLERS = {
    "program": _h("block"), "block": _h("block"), "constructor_body": _h("block"),
    "switch_block_statement_group": _h("switch_group"), "switch_rule": _h("switch_group"),
    "if_statement": _h("if_statement"), "while_statement": _h("while_statement"),
    "do_statement": _h("do_statement"), "for_statement": _h("for_statement"),
    "enhanced_for_statement": _h("enhanced_for_statement"), "try_statement": _h("try_statement"),
    "try_with_resources_statement": _h("try_statement"), "switch_expression": _h("switch"),
    "return_statement": _h("return_statement"), "throw_statement": _h("throw_statement"),
    "break_statement": _h("jump"), "continue_statement": _h("jump"),
    "local_variable_declaration": _h("local_variable_declaration"),
    "field_declaration": _h("local_variable_declaration"), "constant_declaration": _h("local_variable_declaration"),
    "class_declaration": _h("type_declaration"), "interface_declaration": _h("type_declaration"),
    "enum_declaration": _h("type_declaration"), "record_declaration": _h("type_declaration"),
    "annotation_type_declaration": _h("type_declaration"),
    "method_declaration": _h("method_declaration"), "constructor_declaration": _h("method_declaration"),
    "compact_constructor_declaration": _h("method_declaration"),
    "lambda_expression": _h("lambda_expression"), "expression_statement": _h("expression_statement"),
    "identifier": _h("identifier"), "field_access": _h("field_access"),
    "assignment_expression": _h("assignment_expression"), "method_invocation": _h("method_invocation"),
    "object_creation_expression": _h("object_creation_expression"), "binary_expression": _h("binary_expression"),
    "ternary_expression": _h("ternary_expression"), "array_access": _h("array_access"),
    "array_initializer": _h("array_initializer"), "array_creation_expression": _h("array_creation_expression"), "update_expression": _h("update_expression"),
    "labeled_statement": _h("labeled_statement"), "finally_clause": _h("generic_block_holder"),
    "synchronized_statement": _h("generic"), "static_initializer": _h("generic_block_holder"),
}
