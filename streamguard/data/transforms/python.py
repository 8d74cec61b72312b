"""Program transformations of Python code (``ast`` + ``ast.unparse``), each with why its label holds or flips.

Every function takes the code and a seeded ``random.Random`` and returns the new code, or raises
`NotApplicable` with a reason. The docstring's first paragraph is the argument for the label.
"""

from __future__ import annotations

import ast
import copy
import random

from streamguard.data.counterfactuals import python_sql
from streamguard.data.transforms.base import NotApplicable, Transformation, const_for
from streamguard.data.transforms.python_ast import (DEFAULT_SANITIZER, SANITIZERS, Program, copy_expr, expr, free_names,
                                                    get_slot, holes, put_slot, stmts)

_VARS = ("value", "item", "entry", "text", "field", "token", "part", "record", "arg", "elem", "chunk", "val")
_FUNCS = ("handle", "process", "run_step", "do_work", "perform", "apply", "serve", "task", "fetch", "update_item")
_FLAGS = ("enabled", "use_input", "live", "active", "flag", "mode_on")


# ------------------------------------------------------------------------------ label-preserving
def rename_variables(code: str, rng: random.Random) -> str:
    """Renaming every local variable and parameter consistently changes no value that flows anywhere,
    so what reaches each sink is unchanged and the label is kept."""
    prog = Program(code, rng)
    stored = {n.id for n in ast.walk(prog.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    params = {a.arg for a in ast.walk(prog.tree) if isinstance(a, ast.arg)} - {"self", "cls"}
    declared = {name for n in ast.walk(prog.tree) if isinstance(n, (ast.Global, ast.Nonlocal)) for name in n.names}
    targets = sorted((stored | params) - declared)
    if not targets:
        raise NotApplicable("no_local_variable")
    mapping = {old: prog.fresh(_VARS) for old in targets}
    for n in ast.walk(prog.tree):
        if isinstance(n, ast.Name) and n.id in mapping:
            n.id = mapping[n.id]
        elif isinstance(n, ast.arg) and n.arg in mapping:
            n.arg = mapping[n.arg]
    return prog.code()


def rename_methods(code: str, rng: random.Random) -> str:
    """Renaming each function (and its calls in this code) changes names, not what any call computes;
    the label is kept."""
    prog = Program(code, rng)
    funcs = [f for f in ast.walk(prog.tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             and not f.name.startswith("__")]
    if not funcs:
        raise NotApplicable("no_function")
    mapping = {f.name: prog.fresh(_FUNCS) for f in funcs}
    for n in ast.walk(prog.tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in mapping:
            n.name = mapping[n.name]
        elif isinstance(n, ast.Name) and n.id in mapping:
            n.id = mapping[n.id]
        elif (isinstance(n, ast.Attribute) and n.attr in mapping and isinstance(n.value, ast.Name)
              and n.value.id in ("self", "cls")):
            n.attr = mapping[n.attr]
    return prog.code()


def via_helper(code: str, rng: random.Random) -> str:
    """The sink's argument passes through a new helper function that returns its argument unchanged:
    the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    sink, slot = prog.one_flow()
    helper, param = prog.fresh(("relay", "pass_through", "forward", "identity")), prog.fresh(_VARS)
    prog.tree.body.insert(prog.top_level_of(sink.call), stmts(f"def {helper}({param}):\n    return {param}")[0])
    put_slot(slot, ast.Call(func=ast.Name(helper, ast.Load()), args=[get_slot(slot)], keywords=[]))
    return prog.code()


def via_class(code: str, rng: random.Random) -> str:
    """The sink's argument passes through a static method of a second class that returns it unchanged:
    the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    sink, slot = prog.one_flow()
    cls, param = prog.fresh(("Relay", "Carrier", "Holder", "Channel")), prog.fresh(_VARS)
    prog.tree.body.insert(prog.top_level_of(sink.call), stmts(
        f"class {cls}:\n    @staticmethod\n    def forward({param}):\n        return {param}")[0])
    put_slot(slot, ast.Call(func=expr(f"{cls}.forward"), args=[get_slot(slot)], keywords=[]))
    return prog.code()


def _through_list(prog: Program, sink, slot, index: int) -> None:
    """Store the slot's value in a new list beside the sink class's constant, just before the sink's
    statement, and make the slot read the list at ``index`` (0: the value itself, 1: the constant)."""
    items = prog.fresh(("items", "values", "parts", "entries"))
    new = stmts(f"{items} = [None, {const_for(sink.sink_class)!r}]")
    new[0].value.elts[0] = get_slot(slot)
    prog.insert_before(sink.stmt, new)
    put_slot(slot, expr(f"{items}[{index}]"))


def via_collection(code: str, rng: random.Random) -> str:
    """The sink's argument is stored in a list beside a constant and read back from its own index (0):
    the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    _through_list(prog, *prog.one_flow(), 0)
    return prog.code()


def via_ternary(code: str, rng: random.Random) -> str:
    """The sink's argument becomes ``arg if flag else <constant>`` with ``flag = True`` just before: the
    live branch is the original value, so the label is kept."""
    prog = Program(code, rng)
    sink, slot = prog.one_flow()
    flag = prog.fresh(_FLAGS)
    prog.insert_before(sink.stmt, stmts(f"{flag} = True"))
    put_slot(slot, ast.IfExp(test=ast.Name(flag, ast.Load()), body=get_slot(slot),
                             orelse=ast.Constant(const_for(sink.sink_class))))
    return prog.code()


def via_switch(code: str, rng: random.Random) -> str:
    """The sink's argument is chosen by a ``match`` on a local constant whose matching case assigns the
    original value: the same value reaches the sink, so the label is kept."""
    prog = Program(code, rng)
    sink, slot = prog.one_flow()
    var, k = prog.fresh(_VARS), rng.randint(1, 9)
    new = stmts(f"match {k}:\n    case {k}:\n        {var} = None\n    case _:\n"
                f"        {var} = {const_for(sink.sink_class)!r}")
    new[0].cases[0].body[0].value = get_slot(slot)
    prog.insert_before(sink.stmt, new)
    put_slot(slot, ast.Name(var, ast.Load()))
    return prog.code()


def via_string_builder(code: str, rng: random.Random) -> str:
    """A concatenation that starts with a string literal and reaches a sink (directly or through the one
    assignment of a variable) becomes ``"".join([...])`` of the same parts: the same string reaches the
    sink, so the label is kept."""
    prog = Program(code, rng)
    candidates = [(s, sl) for s in prog.sinks() for sl in s.slots
                  if _concat_parts(_built_value(prog, s, get_slot(sl)))]
    if not candidates:
        raise NotApplicable("no_concatenation_at_sink")
    sink, slot = rng.choice(candidates)
    built = _built_value(prog, sink, get_slot(slot))
    joined = ast.Call(func=ast.Attribute(ast.Constant(""), "join", ast.Load()),
                      args=[ast.List(_concat_parts(built), ast.Load())], keywords=[])
    if built is get_slot(slot):
        put_slot(slot, joined)
    else:  # the variable's one assignment builds the string
        assign = next(n for n in ast.walk(prog.tree) if isinstance(n, ast.Assign) and n.value is built)
        assign.value = joined
    return prog.code()


def _concat_parts(e: ast.expr) -> list[ast.expr] | None:
    if not (isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add)):
        return None
    parts: list[ast.expr] = []

    def flat(n):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add):
            flat(n.left)
            flat(n.right)
        else:
            parts.append(n)
    flat(e)
    first = parts[0]
    return parts if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def dead_code(code: str, rng: random.Random) -> str:
    """A copy of one of the function's statements is inserted under ``if False:``: it never runs, so no
    value changes anywhere and the label is kept."""
    prog = Program(code, rng)
    funcs = [f for f in ast.walk(prog.tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not funcs:
        raise NotApplicable("no_function")
    func = rng.choice(funcs)
    simple = [s for s in ast.walk(func) if isinstance(s, (ast.Expr, ast.Assign, ast.AugAssign))]
    body = [copy.deepcopy(rng.choice(simple))] if simple else [ast.Pass()]
    at = rng.randint(1 if ast.get_docstring(func) else 0, len(func.body))
    func.body.insert(at, ast.If(test=ast.Constant(False), body=body, orelse=[]))
    return prog.code()


def reorder_statements(code: str, rng: random.Random) -> str:
    """Two adjacent assignments that call nothing and share no variable are swapped: neither reads what
    the other writes, so every value is unchanged and the label is kept."""
    prog = Program(code, rng)
    pairs = []
    for node in ast.walk(prog.tree):
        for fieldname in ("body", "orelse", "finalbody"):
            block = getattr(node, fieldname, None)
            if isinstance(block, list):
                pairs += [(block, i) for i in range(len(block) - 1) if _independent(block[i], block[i + 1])]
    if not pairs:
        raise NotApplicable("no_independent_statements")
    block, i = rng.choice(pairs)
    block[i], block[i + 1] = block[i + 1], block[i]
    return prog.code()


def _independent(a: ast.stmt, b: ast.stmt) -> bool:
    def rw(s):
        if not isinstance(s, ast.Assign) or any(isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom,
                                                               ast.NamedExpr, ast.Lambda)) for n in ast.walk(s)):
            return None
        if not all(isinstance(t, ast.Name) for t in s.targets):
            return None
        reads = {n.id for n in ast.walk(s.value) if isinstance(n, ast.Name)}
        return reads, {t.id for t in s.targets}
    ra, rb = rw(a), rw(b)
    if ra is None or rb is None:
        return False
    return not (ra[1] & (rb[0] | rb[1])) and not (rb[1] & ra[0])


# ------------------------------------------------------------------------------ label-flipping
def sanitize(code: str, rng: random.Random) -> str:
    """Every value spliced into a string that reaches a sink is wrapped in a sanitizer for that sink's
    class (``shlex.quote`` for a command, ``os.path.basename`` for a path, ``html.escape`` for markup,
    URL quoting for a header or redirect, a number otherwise): nothing reaches a sink unsanitized, so
    vulnerable code becomes safe."""
    prog = Program(code, rng)
    sinks = prog.required_sinks()
    work = []
    for sink in sinks:
        for slot in sink.slots:
            work.append((sink, holes(_built_value(prog, sink, get_slot(slot)))))
    for sink, hs in work:
        template, module = SANITIZERS.get(sink.sink_class, DEFAULT_SANITIZER)
        for h in hs:
            wrapped = expr(template.format(x="__sg_x__"))
            for n in ast.walk(wrapped):
                for fieldname, value in ast.iter_fields(n):
                    if isinstance(value, list):
                        value[:] = [get_slot(h) if isinstance(v, ast.Name) and v.id == "__sg_x__" else v for v in value]
            put_slot(h, wrapped)
        prog.import_in_function(sink.call, module)
    return prog.code()


def _built_value(prog: Program, sink, arg: ast.expr) -> ast.expr:
    """The argument, or for a variable assigned once in the function, the value it was assigned."""
    if not isinstance(arg, ast.Name):
        return arg
    func = prog.enclosing_function(sink.call)
    assigns = [n for n in ast.walk(func if func is not None else prog.tree)
               if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))
               and any(isinstance(t, ast.Name) and t.id == arg.id
                       for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))]
    if len(assigns) == 1 and isinstance(assigns[0], ast.Assign) and len(assigns[0].targets) == 1:
        return assigns[0].value
    return arg


def parameterize(code: str, rng: random.Random) -> str:
    """Every string-built query passed to ``execute`` becomes a parameterized one with the values bound
    by the driver (`streamguard.data.counterfactuals.python_sql`): no value is read as SQL any more,
    so vulnerable code becomes safe. Returns nothing when any string-built query is left."""
    new = python_sql.make_parameterized(code)
    if new is None or new.strip() == code.strip():
        raise NotApplicable("no_parameterizable_query")
    return new


def overwrite_constant(code: str, rng: random.Random) -> str:
    """Just before each sink, every variable its dangerous argument reads is assigned a constant: only
    constants reach the sinks, so vulnerable code becomes safe."""
    prog = Program(code, rng)
    sinks = prog.required_sinks()
    plan = []
    for sink in sinks:
        names = sorted({n for slot in sink.slots for n in free_names(get_slot(slot))})
        if not names:
            raise NotApplicable("no_variable_at_sink")
        plan.append((sink, names))
    for sink, names in plan:
        prog.insert_before(sink.stmt, stmts("\n".join(f"{n} = {const_for(sink.sink_class)!r}" for n in names)))
    return prog.code()


def dead_branch(code: str, rng: random.Random) -> str:
    """Each sink's dangerous argument becomes ``arg if flag else <constant>`` with ``flag = False`` just
    before: the tainted value lives only in the dead branch and the sink gets the constant, so
    vulnerable code becomes safe."""
    prog = Program(code, rng)
    sinks = prog.required_sinks()
    for sink in sinks:
        flag = prog.fresh(_FLAGS)
        prog.insert_before(sink.stmt, stmts(f"{flag} = False"))
        for slot in sink.slots:
            put_slot(slot, ast.IfExp(test=ast.Name(flag, ast.Load()), body=get_slot(slot),
                                     orelse=ast.Constant(const_for(sink.sink_class))))
    return prog.code()


def safe_element(code: str, rng: random.Random) -> str:
    """Each sink's dangerous argument is stored in a list beside a constant and the sink reads the
    constant's index (1): the tainted value never reaches it, so vulnerable code becomes safe."""
    prog = Program(code, rng)
    for sink, slot in prog.sink_slots():
        _through_list(prog, sink, slot, 1)
    return prog.code()


def logged_instead(code: str, rng: random.Random) -> str:
    """Each sink's dangerous argument is written to the console (``print``) just before, and the sink
    gets a constant instead: the tainted value reaches only a console line, which is no query, command,
    path, page, header or redirect, so vulnerable code becomes safe. (A model that reads sinks by their
    names learns here that tainted data flowing into a call is not enough: it has to be a dangerous
    call.)"""
    prog = Program(code, rng)
    for sink, slot in prog.sink_slots():
        new = stmts("print(None)")
        new[0].value.args[0] = copy_expr(get_slot(slot))
        prog.insert_before(sink.stmt, new)
        put_slot(slot, ast.Constant(const_for(sink.sink_class)))
    return prog.code()


TRANSFORMATIONS = tuple(Transformation(fn.__name__, "python", flips, fn) for flips, fns in (
    (False, (rename_variables, rename_methods, via_helper, via_class, via_collection, via_ternary, via_switch,
             via_string_builder, dead_code, reorder_statements)),
    (True, (sanitize, parameterize, overwrite_constant, dead_branch, safe_element, logged_instead))) for fn in fns)
