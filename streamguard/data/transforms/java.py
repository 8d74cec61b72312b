"""Program transformations of Java code (tree-sitter-java, edits by byte spans), each with why its label
holds or flips.

Every function takes the code and a seeded ``random.Random`` and returns the new code, or raises
`NotApplicable` with a reason. The docstring's first paragraph is the argument for the label. Moves
that put a value beside a constant (collection, ternary, switch) need the value to be a ``String``
(a literal, a concatenation, a variable declared ``String`` or a call known to return one).
"""

from __future__ import annotations

import random

from streamguard.data.counterfactuals import java_sql
from streamguard.data.transforms.base import NotApplicable, Transformation, const_for
from streamguard.data.transforms.java_tree import Program, _text, _walk, concat_operands, java_str

_VARS = ("value", "item", "entry", "text", "field", "token", "part", "record", "arg", "elem", "chunk", "input")
_METHODS = ("handle", "process", "runStep", "doWork", "perform", "apply", "serve", "task", "fetch", "updateItem")
_FLAGS = ("enabled", "useInput", "live", "active", "flag", "modeOn")
_KEEP_METHODS = frozenset({"main", "run", "toString", "equals", "hashCode", "doGet", "doPost", "service"})

SANITIZERS = {
    "sql": "Integer.parseInt({x})",
    "command": "Integer.parseInt({x})",
    "html": "org.apache.commons.text.StringEscapeUtils.escapeHtml4({x})",
    "path": "org.apache.commons.io.FilenameUtils.getName({x})",
    "header": 'java.net.URLEncoder.encode({x}, "UTF-8")',
    "redirect": 'java.net.URLEncoder.encode({x}, "UTF-8")',
    "url": 'java.net.URLEncoder.encode({x}, "UTF-8")',
    "ldap": "org.owasp.esapi.ESAPI.encoder().encodeForLDAP({x})",
    "xpath": "org.owasp.esapi.ESAPI.encoder().encodeForXPath({x})",
}
DEFAULT_SANITIZER = "Integer.parseInt({x})"  # a number is safe in every sink
_TYPED_CONSTANTS = {"int": "0", "long": "0L", "short": "0", "byte": "0", "double": "0.0", "float": "0.0f",
                    "boolean": "false", "char": "'a'", "Integer": "0", "Long": "0L"}


def _renamable(node) -> bool:
    parent = node.parent
    if parent is None:
        return True
    if parent.type == "field_access" and parent.child_by_field_name("field") == node:
        return False
    if parent.type in ("method_invocation", "method_declaration", "class_declaration", "constructor_declaration",
                       "interface_declaration", "enum_declaration") and parent.child_by_field_name("name") == node:
        return False
    return parent.type not in ("labeled_statement", "break_statement", "continue_statement")


# ------------------------------------------------------------------------------ label-preserving
def rename_variables(code: str, rng: random.Random) -> str:
    """Renaming every local variable and parameter consistently (names that are also fields left alone)
    changes no value that flows anywhere, so what reaches each sink is unchanged and the label is kept."""
    prog = Program(code, rng)
    fields = {_text(d.child_by_field_name("name")) for n in _walk(prog.root) if n.type == "field_declaration"
              for d in n.named_children if d.type == "variable_declarator"}
    locals_ = set(prog.declared_types(prog.root))
    targets = sorted(locals_ - fields)
    if not targets:
        raise NotApplicable("no_local_variable")
    mapping = {old: prog.fresh(_VARS) for old in targets}
    for n in _walk(prog.root):
        if n.type == "identifier" and _text(n) in mapping and _renamable(n):
            prog.replace(n, mapping[_text(n)])
    return prog.code()


def rename_methods(code: str, rng: random.Random) -> str:
    """Renaming each method declared here (entry points and overrides kept) and its calls on this object
    changes names, not what any call computes; the label is kept."""
    prog = Program(code, rng)
    decls = [n for n in _walk(prog.root) if n.type == "method_declaration"
             and _text(n.child_by_field_name("name")) not in _KEEP_METHODS
             and not any(c.type == "modifiers" and "@Override" in prog.text(c) for c in n.children)]
    if not decls:
        raise NotApplicable("no_method")
    mapping = {}
    for d in decls:
        mapping.setdefault(_text(d.child_by_field_name("name")), prog.fresh(_METHODS))
    for n in _walk(prog.root):
        name = n.child_by_field_name("name") if n.type in ("method_declaration", "method_invocation") else None
        if name is None or _text(name) not in mapping:
            continue
        obj = n.child_by_field_name("object") if n.type == "method_invocation" else None
        if obj is None or prog.text(obj) == "this":
            prog.replace(name, mapping[_text(name)])
    return prog.code()


def via_helper(code: str, rng: random.Random) -> str:
    """The sink's argument passes through a new private static method that returns its argument
    unchanged: the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    sinks = prog.sinks()
    if not sinks:
        raise NotApplicable("no_sink")
    sink = rng.choice(sinks)
    arg = rng.choice(sink.args)
    helper, param = prog.fresh(("relay", "passThrough", "forward", "identity")), prog.fresh(_VARS)
    prog.add_to_class(sink.call, f"private static <T> T {helper}(T {param}) {{ return {param}; }}")
    prog.replace(arg, f"{helper}({prog.text(arg)})")
    return prog.code()


def via_class(code: str, rng: random.Random) -> str:
    """The sink's argument passes through a static method of a second class that returns it unchanged:
    the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    sinks = prog.sinks()
    if not sinks:
        raise NotApplicable("no_sink")
    sink = rng.choice(sinks)
    arg = rng.choice(sink.args)
    cls, param = prog.fresh(("Relay", "Carrier", "Holder", "Channel")), prog.fresh(_VARS)
    prog.insert(len(prog.data), f"\n\nclass {cls} {{\n    static <T> T forward(T {param}) {{\n"
                                f"        return {param};\n    }}\n}}\n")
    prog.replace(arg, f"{cls}.forward({prog.text(arg)})")
    return prog.code()


def via_collection(code: str, rng: random.Random) -> str:
    """The sink's String argument is added to a list after nothing and before a constant, and read back
    from its own index (0): the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    sink, arg, _types = prog.one_string_flow()
    items = prog.fresh(("items", "values", "parts", "entries"))
    prog.insert_before(sink.stmt, [f"java.util.List<String> {items} = new java.util.ArrayList<>();",
                                   f"{items}.add({prog.text(arg)});",
                                   f"{items}.add({java_str(const_for(sink.sink_class))});"])
    prog.replace(arg, f"{items}.get(0)")
    return prog.code()


def via_ternary(code: str, rng: random.Random) -> str:
    """The sink's String argument becomes ``(flag ? arg : <constant>)`` with ``flag = true`` just before:
    the live branch is the original value, so the label is kept."""
    prog = Program(code, rng)
    sink, arg, _types = prog.one_string_flow()
    flag = prog.fresh(_FLAGS)
    prog.insert_before(sink.stmt, [f"boolean {flag} = true;"])
    prog.replace(arg, f"({flag} ? {prog.text(arg)} : {java_str(const_for(sink.sink_class))})")
    return prog.code()


def via_switch(code: str, rng: random.Random) -> str:
    """The sink's String argument is assigned in the matching case of a ``switch`` on a constant (the
    default assigns a constant): the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    sink, arg, _types = prog.one_string_flow()
    var, k = prog.fresh(_VARS), rng.randint(1, 9)
    prog.insert_before(sink.stmt, [f"String {var};", f"switch ({k}) {{", f"case {k}:", f"    {var} = {prog.text(arg)};",
                                   "    break;", "default:", f"    {var} = {java_str(const_for(sink.sink_class))};",
                                   "    break;", "}"])
    prog.replace(arg, var)
    return prog.code()


def via_string_builder(code: str, rng: random.Random) -> str:
    """A concatenation that starts with a string literal and reaches a sink (directly or through the one
    assignment of a variable) becomes a ``StringBuilder`` appending the same operands in order: the
    same string reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    chains = []
    for sink in prog.sinks():
        for a in sink.args:
            try:
                built = _built(prog, a, {})
            except NotApplicable:
                continue
            chains.append((built, concat_operands(built)))
    chains = [(a, ops) for a, ops in chains if ops and ops[0].type == "string_literal"]
    if not chains:
        raise NotApplicable("no_concatenation_at_sink")
    arg, ops = rng.choice(chains)
    prog.replace(arg, "new StringBuilder()" + "".join(f".append({prog.text(o)})" for o in ops) + ".toString()")
    return prog.code()


def dead_code(code: str, rng: random.Random) -> str:
    """A copy of one of the method's expression statements (or a fresh local) is inserted under
    ``if (false)``: it never runs, so no value changes anywhere and the label is kept."""
    prog = Program(code, rng)
    blocks = [n for n in _walk(prog.root) if n.type == "block" and n.parent is not None
              and n.parent.type == "method_declaration" and n.named_child_count]
    if not blocks:
        raise NotApplicable("no_method_body")
    block = rng.choice(blocks)
    simple = [n for n in _walk(block) if n.type == "expression_statement"]
    body = prog.text(rng.choice(simple)) if simple else f"int {prog.fresh(_VARS)} = 0;"
    stmts = [c for c in block.named_children if c.type not in ("line_comment", "block_comment")]
    at = rng.choice(stmts)
    prog.insert_before(at, [f"if (false) {{ {body} }}"])
    return prog.code()


def reorder_statements(code: str, rng: random.Random) -> str:
    """Two adjacent local declarations whose initialisers call nothing and share no variable are
    swapped: neither reads what the other writes, so every value is unchanged and the label is kept."""
    prog = Program(code, rng)
    pairs = []
    for block in (n for n in _walk(prog.root) if n.type == "block"):
        kids = block.named_children
        pairs += [(a, b) for a, b in zip(kids, kids[1:]) if _independent(prog, a, b)]
    if not pairs:
        raise NotApplicable("no_independent_statements")
    a, b = rng.choice(pairs)
    text_a, text_b = prog.text(a), prog.text(b)
    prog.replace(a, text_b)
    prog.replace(b, text_a)
    return prog.code()


def _independent(prog: Program, a, b) -> bool:
    def rw(s):
        if s.type != "local_variable_declaration":
            return None
        if any(n.type in ("method_invocation", "object_creation_expression", "assignment_expression",
                          "update_expression", "lambda_expression", "array_creation_expression") for n in _walk(s)):
            return None
        decl = [d for d in s.named_children if d.type == "variable_declarator"]
        writes = {prog.text(d.child_by_field_name("name")) for d in decl}
        reads = {prog.text(n) for d in decl if d.child_by_field_name("value") is not None
                 for n in _walk(d.child_by_field_name("value")) if n.type == "identifier"}
        return reads, writes
    ra, rb = rw(a), rw(b)
    if ra is None or rb is None:
        return False
    return not (ra[1] & (rb[0] | rb[1])) and not (rb[1] & ra[0])


# ------------------------------------------------------------------------------ label-flipping
def _built(prog: Program, arg, types: dict):
    """The concatenation that builds ``arg``: itself, or the one initialiser/assignment of the variable."""
    if concat_operands(arg):
        return arg
    if arg.type != "identifier":
        raise NotApplicable("sink_argument_not_built_in_place")
    name = prog.text(arg)
    method = prog.ancestor(arg, "method_declaration", "constructor_declaration") or prog.root
    values = [d.child_by_field_name("value") for d in _walk(method) if d.type == "variable_declarator"
              and prog.text(d.child_by_field_name("name")) == name]
    values += [a.child_by_field_name("right") for a in _walk(method) if a.type == "assignment_expression"
               and prog.text(a.child_by_field_name("left")) == name]
    values = [v for v in values if v is not None]
    if len(values) != 1 or not concat_operands(values[0]):
        raise NotApplicable("sink_argument_not_built_in_place")
    return values[0]


def sanitize(code: str, rng: random.Random) -> str:
    """Every value spliced into a string that reaches a sink is wrapped in a sanitizer for that sink's
    class (HTML escaping for markup, URL encoding for a header or redirect, the last path component
    for a path, LDAP/XPath encoding, a number for SQL or a command): nothing reaches a sink
    unsanitized, so vulnerable code becomes safe."""
    prog = Program(code, rng)
    sinks = prog.sinks()
    if not sinks:
        raise NotApplicable("no_sink")
    done = set()
    for sink in sinks:
        template = SANITIZERS.get(sink.sink_class, DEFAULT_SANITIZER)
        types = prog.declared_types(sink.call)
        for arg in sink.args:
            built = _built(prog, arg, types)
            holes = [o for o in concat_operands(built) if o.type != "string_literal"]
            if not holes:
                raise NotApplicable("sink_argument_is_constant")
            for h in holes:
                if (h.start_byte, h.end_byte) not in done:
                    done.add((h.start_byte, h.end_byte))
                    prog.replace(h, template.format(x=prog.text(h)))
    return prog.code()


def parameterize(code: str, rng: random.Random) -> str:
    """Every string-built JDBC query becomes a ``PreparedStatement`` with its values bound
    (`streamguard.data.counterfactuals.java_sql`): no value is read as SQL any more, so vulnerable
    code becomes safe. Nothing is made when any string-built query is left."""
    new = java_sql.make_parameterized(code)
    if new is None or new.strip() == code.strip():
        raise NotApplicable("no_parameterizable_query")
    return new


def overwrite_constant(code: str, rng: random.Random) -> str:
    """Just before each sink, every variable its dangerous argument reads is assigned a constant of its
    declared type: only constants reach the sinks, so vulnerable code becomes safe."""
    prog = Program(code, rng)
    sinks = prog.sinks()
    if not sinks:
        raise NotApplicable("no_sink")
    plan = []
    for sink in sinks:
        types = prog.declared_types(sink.call)
        names = set()
        for arg in sink.args:
            for n in _walk(arg):
                if n.type in ("method_invocation", "field_access", "object_creation_expression"):
                    raise NotApplicable("sink_argument_calls_or_reads_a_field")
                if n.type == "identifier":
                    names.add(prog.text(n))
        lines = []
        for name in sorted(names):
            kind = types.get(name)
            if kind == "String":
                lines.append(f"{name} = {java_str(const_for(sink.sink_class))};")
            elif kind in _TYPED_CONSTANTS:
                lines.append(f"{name} = {_TYPED_CONSTANTS[kind]};")
            else:
                raise NotApplicable("variable_of_unknown_type" if kind is None else "variable_not_assignable")
        plan.append((sink, lines))
    for sink, lines in plan:
        prog.insert_before(sink.stmt, lines)
    return prog.code()


def dead_branch(code: str, rng: random.Random) -> str:
    """Each sink's String argument becomes ``(flag ? arg : <constant>)`` with ``flag = false`` just
    before: the tainted value lives only in the dead branch and the sink gets the constant, so
    vulnerable code becomes safe."""
    prog = Program(code, rng)
    for sink, _types in prog.all_sinks_string():
        flag = prog.fresh(_FLAGS)
        prog.insert_before(sink.stmt, [f"boolean {flag} = false;"])
        for arg in sink.args:
            prog.replace(arg, f"({flag} ? {prog.text(arg)} : {java_str(const_for(sink.sink_class))})")
    return prog.code()


def safe_element(code: str, rng: random.Random) -> str:
    """Each sink's String argument is stored in an array beside a constant and the sink reads the
    constant's index (1): the tainted value never reaches it, so vulnerable code becomes safe."""
    prog = Program(code, rng)
    for sink, _types in prog.all_sinks_string():
        for arg in sink.args:
            items = prog.fresh(("items", "values", "parts", "entries"))
            prog.insert_before(sink.stmt, [f"String[] {items} = {{{prog.text(arg)}, "
                                           f"{java_str(const_for(sink.sink_class))}}};"])
            prog.replace(arg, f"{items}[1]")
    return prog.code()


def logged_instead(code: str, rng: random.Random) -> str:
    """Each sink's String argument is written to the console (``System.out.println``) just before, and
    the sink gets a constant instead: the tainted value reaches only a console line, which is no query,
    command, path, page, header or redirect, so vulnerable code becomes safe. (A model that reads sinks
    by their names learns here that tainted data flowing into a call is not enough: it has to be a
    dangerous call.)"""
    prog = Program(code, rng)
    for sink, _types in prog.all_sinks_string():
        prog.insert_before(sink.stmt, [f"System.out.println({prog.text(arg)});" for arg in sink.args])
        for arg in sink.args:
            prog.replace(arg, java_str(const_for(sink.sink_class)))
    return prog.code()


TRANSFORMATIONS = tuple(Transformation(fn.__name__, "java", flips, fn) for flips, fns in (
    (False, (rename_variables, rename_methods, via_helper, via_class, via_collection, via_ternary, via_switch,
             via_string_builder, dead_code, reorder_statements)),
    (True, (sanitize, parameterize, overwrite_constant, dead_branch, safe_element, logged_instead))) for fn in fns)
