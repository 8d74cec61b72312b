"""Java frontend: tree-sitter-java syntax tree -> `GraphIR` with def-use, calls and dead branches.

tree-sitter is error-tolerant: code that does not parse still yields a tree (with ERROR/MISSING
nodes, reported as ``parse_ok=False``), and a bare method or statement list parses as well.
Comments, string fragments and the insides of type expressions, modifiers and imports are not
emitted as nodes: they carry no data flow and would only inflate the graph.
"""

from __future__ import annotations

from . import ir as IR
from .consts import UNKNOWN
from .graph_ir import GraphIR
from .java_constants import JavaConstants
from .java_declarations import JavaDeclarations, type_word
from .java_expressions import JavaExpressions
from .java_syntax import LEAF, LITERALS, named, parser, text


def build_java_ir(code: str, budget: int) -> tuple[GraphIR, bool]:
    """Parse Java source and build its graph IR. Returns (ir, parse_ok); never raises on bad code."""
    src = code.encode("utf-8", "replace")
    root = parser().parse(src).root_node
    graph = GraphIR(budget)
    walker = _JavaWalker(graph, code)
    try:
        walker.collect_constants(root)
        walker.node(root, -1)
    except IR.BudgetExceeded:
        pass
    except RecursionError:  # deeper than the statement-level recovery could catch: keep what was built
        graph.truncated = True
        graph.truncation.add("depth")
        graph.depth_errors += 1
    graph.finish()
    return graph, not root.has_error


class _JavaWalker(JavaConstants, JavaExpressions, JavaDeclarations):
    """One pass over a tree-sitter-java tree, in source order (constants, expressions and declarations
    in the mixins)."""

    def __init__(self, graph: GraphIR, code: str):
        self.g = graph
        self.code = code
        self.consts: dict[str, object] = {}        # field name -> folded constant value
        self._const_methods: dict[str, object] | None = None
        self._assigned: dict[str, int] | None = None
        self.declared: set[str] = set()
        self.const_collections: set[str] = set()  # final fields holding a collection of literals
        self.array_elems: dict[int, list[int]] = {}  # array initializer/creation node -> element values
        self.watch: dict[tuple, int] = {}  # span of condition sub-expressions -> node id (see guards)
        self.file_classes: set[str] = set()  # names of the classes/interfaces/enums declared in the file
        self.class_stack: list[str] = []
        self.local_types: dict[str, str] = {}  # local variable or parameter -> simple name of its declared/created type
        self.local_receivers: dict[str, str] = {}  # local bound once to a call/field -> that expression's text
        self.field_types: dict[str, str] = {}  # field of the enclosing classes -> simple name of its declared type

    # -------------------------------------------------------------------------------- dispatch
    def node(self, n, parent: int) -> int:
        """Emit ``n`` (statement, expression or declaration); returns the id carrying its value."""
        t = n.type
        g = self.g
        outer_line, g.line = g.line, n.start_point[0]
        handler = _HANDLERS.get(t)
        if handler is not None:
            nid = handler(self, n, parent)
        elif t in LEAF:
            nid = g.add("java." + t, parent)
            if t in _NAMED_LEAVES:
                g.name(nid, text(n))
            g.line = outer_line
            return nid
        elif t in LITERALS:
            nid = self.literal(n, parent)
            g.line = outer_line
            return nid
        else:
            nid = self.generic(n, parent)
        g.line = outer_line
        if self.watch:
            span = (n.start_byte, n.end_byte, t)
            if span in self.watch:
                self.watch[span] = nid
        return nid

    def generic(self, n, parent: int) -> int:
        """Unknown construct (or ERROR): children emitted in order, their values flow into it."""
        nid = self.g.add("java." + n.type, parent)
        for c in named(n):
            v = self.node(c, nid)
            self.g.flow(v, nid)
        return nid

    # ------------------------------------------------------------------------------ statements
    def block(self, n, parent: int) -> int:
        nid = self.g.add("java." + n.type, parent)
        self.statements(named(n), nid)
        return nid

    def statements(self, stmts: list, parent: int, head: int = -1) -> None:
        """Walk a statement list; code after a jump is unreachable and walked as dead."""
        self.g.walk_statements(stmts, self.node, parent, head)

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
        when_true: list = []
        when_false: list = []
        if cond is not None:
            truth = self.truth(cond)
            if truth is None:
                when_true, when_false = self.guards(cond)
            self.watch = {span: -1 for _, span in when_true + when_false}
            self.mark_condition(self.node(cond, nid), truth)
        watched, self.watch = self.watch, {}
        before = g.env
        env_true, env_false = before, before
        for key, span in when_true:
            env_true = g.guard(env_true, key, watched[span], IR.SANITIZER)
        for key, span in when_false:
            env_false = g.guard(env_false, key, watched[span], IR.SANITIZER)
        cons, alt = n.child_by_field_name("consequence"), n.child_by_field_name("alternative")
        env_then, env_else = env_true, env_false
        if cons is not None:
            sid, env_then = self.branch(cons, nid, env_true, truth is False)
            g.edge(nid, sid, IR.NEXT_STMT)
        if alt is not None:
            sid, env_else = self.branch(alt, nid, env_false, truth is True)
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
            g.name(g.add("java." + typ.type, nid), type_word(text(typ)))
        v = self.node(value, nid) if value is not None else -1
        before = g.env
        if name is not None:
            var = g.name(g.add("java.identifier", nid, IR.IDENT), text(name))
            key = text(name)
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
        for c in named(n):
            if c.type == "catch_clause":
                g.env = IR.join(before, after_body)
                cid = g.add("java.catch_clause", nid)
                for cc in named(c):
                    if cc.type == "catch_formal_parameter":
                        pid = g.add("java.catch_formal_parameter", cid)
                        pname = cc.child_by_field_name("name")
                        if pname is not None:
                            g.define(text(pname), g.add("java.identifier", pid, IR.IDENT))
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
        self.statements(named(n), nid)
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
        groups = named(body)
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
                kids = named(c)
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
        for c in named(n):
            if c.type == "switch_label":
                lid = self.g.add("java.switch_label", nid)
                for k in named(c):
                    self.node(k, lid)
            else:
                stmts.append(c)
        self.statements(stmts, nid)
        return nid

    def return_statement(self, n, parent: int) -> int:
        nid = self.g.add("java.return_statement", parent)
        kids = named(n)
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

    def labeled_statement(self, n, parent: int) -> int:
        nid = self.g.add("java.labeled_statement", parent)
        self.statements([c for c in named(n) if c.type != "identifier"], nid)
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
    "array_initializer": _h("array_initializer"), "array_creation_expression": _h("array_creation_expression"),
    "update_expression": _h("update_expression"),
    "labeled_statement": _h("labeled_statement"), "finally_clause": _h("generic_block_holder"),
    "synchronized_statement": _h("generic"), "static_initializer": _h("generic_block_holder"),
}


_NAMED_LEAVES = frozenset({"type_identifier", "identifier", "scoped_type_identifier"})
