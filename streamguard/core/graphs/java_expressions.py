"""Java expressions: value flow, calls, containers, assignments (mixin of the Java walker)."""

from __future__ import annotations

import re
from dataclasses import replace

from . import ir as IR
from .consts import UNKNOWN
from .ir import CallInfo
from .java_syntax import CONTAINER_TYPES, LITERALS, named, text
from .rules import (APPEND_METHODS, GET_METHODS, KEYED_STORE_METHODS, PLACEHOLDER, READ_METHODS, SQL_TEXT,
                    PLAIN, STORE_METHODS, CallRule, classify_java_call, classify_java_constructor, is_shell_program)


_MAP_TYPES = re.compile(r"Map|Properties|Hashtable")
# Mutating StringBuilder methods that write their last argument into the builder (besides append/insert).
_BUILDERS = frozenset({"StringBuilder", "StringBuffer"})
_BUILDER_STORES = frozenset({"replace", "setCharAt"})


def _simple_type(type_name: str) -> str:
    return type_name.split("<", 1)[0].rsplit(".", 1)[-1].strip()


def _last_word(obj) -> str:
    """The receiver's own name for subtokens: ``jdbcTemplate`` of ``this.jdbcTemplate``, ``Runtime`` of
    ``Runtime.getRuntime()``, the type of ``new File(..)``; "" for anything else."""
    if obj is None:
        return ""
    t = obj.type
    if t in ("identifier", "type_identifier"):
        return text(obj)
    if t == "field_access":
        fld = obj.child_by_field_name("field")
        return text(fld) if fld is not None else ""
    if t == "method_invocation":
        inner = obj.child_by_field_name("object")
        return _last_word(inner) if inner is not None else ""
    if t == "object_creation_expression":
        typ = obj.child_by_field_name("type")
        return _simple_type(text(typ)) if typ is not None else ""
    return ""


def _names_a_file_only(method: str, obj) -> bool:
    """``Paths.get(x).getFileName()``, ``Path.of(x).getFileName()``, ``new File(x).getName()``."""
    if method == "getFileName" and obj.type == "method_invocation":
        recv, name = obj.child_by_field_name("object"), obj.child_by_field_name("name")
        return (recv is not None and name is not None
                and (text(recv), text(name)) in (("Paths", "get"), ("Path", "get"), ("Path", "of")))
    if method == "getName" and obj.type == "object_creation_expression":
        typ = obj.child_by_field_name("type")
        return typ is not None and _simple_type(text(typ)) == "File"
    return False


class JavaExpressions:
    """Expression handlers of the Java walker (uses ``self.g``, ``self.node``, ``self.const``,
    ``self.array_elems``). Each returns the id of the node that carries the expression's value."""

    def literal(self, n, parent: int) -> int:
        t = n.type
        flags = IR.LITERAL
        length = 0
        if t == "string_literal":
            s = text(n)[1:-1]
            length = len(s)
            if SQL_TEXT.search(s):
                flags |= IR.SQL_LITERAL
            if PLACEHOLDER.search(s):
                flags |= IR.PLACEHOLDER
            nid = self.g.add("java.string_literal", parent, flags, length)
            self.g.literals[nid] = s
            return nid
        return self.g.add("java." + t, parent, flags, len(text(n)))

    def track_container(self, key: str, value_n, value_id: int) -> None:
        """A new collection/array assigned to ``key`` starts literal-index tracking."""
        t = value_n.type
        if t == "object_creation_expression":
            typ, args = value_n.child_by_field_name("type"), value_n.child_by_field_name("arguments")
            argv = named(args) if args is not None else []
            # Only an empty new collection (no arguments, or an initial capacity) starts empty.
            empty = not argv or (len(argv) == 1 and isinstance(self.const(argv[0]), int))
            if typ is not None and CONTAINER_TYPES.search(text(typ)) and empty:
                self.g.container_new(key, {}, sequence=not _MAP_TYPES.search(text(typ)))
        elif value_id in self.array_elems:  # new T[]{a, b} / {a, b}: elements at literal indices
            self.g.container_new(key, dict(enumerate(self.array_elems[value_id])))
        elif t == "array_creation_expression" and value_n.child_by_field_name("value") is None:
            self.g.container_new(key, {})  # new T[n]: every element null until stored

    def expression_statement(self, n, parent: int) -> int:
        nid = self.g.add("java.expression_statement", parent)
        for c in named(n):
            self.node(c, nid)
        return nid

    def identifier(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.identifier", parent, IR.IDENT)
        name = text(n)
        g.name(nid, name)
        g.use(name if g.is_local(name) else "this." + name, nid)
        return nid

    def var_key(self, n) -> str | None:
        """Variable key for an identifier or ``this.x``; None for anything else."""
        if n.type == "identifier":
            name = text(n)
            return name if self.g.is_local(name) else "this." + name
        if n.type == "field_access":
            obj, fld = n.child_by_field_name("object"), n.child_by_field_name("field")
            if obj is not None and fld is not None and obj.type == "this":
                return "this." + text(fld)
        return None

    def field_access(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.field_access", parent)
        obj, fld = n.child_by_field_name("object"), n.child_by_field_name("field")
        if obj is not None and obj.type == "this" and fld is not None:
            g.add("java.this", nid)
            g.name(g.add("java.identifier", nid), text(fld))
            g.use("this." + text(fld), nid)
            return nid
        if obj is not None:
            g.flow(self.node(obj, nid), nid)
        if fld is not None:
            g.name(g.add("java.identifier", nid), text(fld))
            g.name(nid, text(fld), _last_word(obj))
        return nid

    def assignment_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.assignment_expression", parent)
        left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
        op = n.child_by_field_name("operator")
        plain = op is None or op.type == "="
        cv = self.const(right) if plain and right is not None and left is not None and left.type == "identifier" \
            and self.g.is_local(text(left)) else UNKNOWN
        v = self.node(right, nid) if right is not None else -1
        if left is None:
            return nid
        key = self.var_key(left)
        if key is not None:
            lid = g.add("java." + left.type, nid, IR.IDENT)
            if not plain:
                g.use(key, lid)
                g.flags[lid] |= IR.CONCAT if op is not None and op.type == "+=" else 0
            g.define(key, lid, v, strong=plain, const=plain and right is not None and right.type in LITERALS)
            if cv is not UNKNOWN:
                g.const_val[lid] = cv
            if plain and right is not None:
                self.track_container(key, right, v)
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
        name = text(name_n) if name_n is not None else ""
        g.name(g.add("java.identifier", nid), name)
        g.name(nid, name, _last_word(obj))
        arg_nodes = named(args) if args is not None else []
        aid = g.add("java.argument_list", nid) if args is not None else nid
        vals = [self.node(a, aid) for a in arg_nodes]
        rule = classify_java_call(name, text(obj) if obj is not None else None, self.receiver_type(obj))
        if rule == PLAIN and obj is not None and obj.type == "identifier" and text(obj) in self.local_receivers:
            rule = classify_java_call(name, self.local_receivers[text(obj)])  # out = response.getWriter()
        if obj is not None and not arg_nodes and _names_a_file_only(name, obj):
            # Paths.get(x).getFileName() / new File(x).getName(): the path object is built only to
            # take its last component, which is what the code goes on to use.
            g.unsink(obj_v)
            rule = CallRule(path_sanitizer=True)
        okey = self.var_key(obj) if obj is not None else None
        precise = None
        if okey is not None and name in GET_METHODS and arg_nodes:
            index = self.const(arg_nodes[0])
            precise = g.container_read(okey, None if index is UNKNOWN else index)
        if precise is not None:  # list.get(1) reads exactly what was stored at index 1
            for d in precise:
                g.flow(d, nid)
            if not precise and name == "getOrDefault" and len(vals) == 2:
                g.flow(vals[1], nid)  # nothing stored under that key: the default
        elif obj_v >= 0:
            g.flow(obj_v, nid)
        if okey is not None and obj is not None and obj.type == "identifier":
            # The literal index/key, folded only for the calls that use it.
            uses_lit = (len(vals) == 2 and (name in KEYED_STORE_METHODS or name in ("add", "set"))) or (
                name == "remove" and len(vals) == 1)
            lit = self.const(arg_nodes[0]) if uses_lit else UNKNOWN
            lit = None if lit is UNKNOWN else lit
            builder_store = name in _BUILDER_STORES and self.local_types.get(text(obj)) in _BUILDERS
            if (name in STORE_METHODS or builder_store) and vals:
                g.define(okey, obj_v, vals[-1], strong=False)
                if name in APPEND_METHODS and len(vals) == 1:
                    g.container_store(okey, None, vals[0], append=True)
                elif name in KEYED_STORE_METHODS and len(vals) == 2:
                    g.container_store(okey, lit, vals[1])
                elif name == "add" and len(vals) == 2:  # list.add(i, v): inserts, later ones shift
                    g.container_insert(okey, lit, vals[1])
                elif name == "set" and len(vals) == 2:
                    g.container_store(okey, lit, vals[1])
                else:
                    g.container_forget(okey)
            elif name == "remove" and len(vals) == 1:  # list.remove(i) shifts; map.remove(k) drops k
                g.container_remove(okey, lit)
            elif name not in READ_METHODS:
                g.container_forget(okey)
        if rule.concat or (name == "append" and obj_v >= 0):
            g.flags[nid] |= IR.CONCAT
        via_self = obj is None or obj.type == "this"
        owner, static = "", False
        if obj is not None and obj.type == "object_creation_expression":  # new Helper().m(x)
            typ = obj.child_by_field_name("type")
            owner = _simple_type(text(typ)) if typ is not None else ""
        elif obj is not None and obj.type == "identifier":
            oname = text(obj)
            if g.is_local(oname):  # Helper h = new Helper(); h.m(x)
                owner = self.local_types.get(oname, "")
            elif oname in self.file_classes:  # Helper.m(x)
                owner, static = oname, True
        if owner not in self.file_classes:
            owner = ""
        g.call(CallInfo(nid, name, vals, {}, via_self, rule, nparams_hint=len(vals), owner_hint=owner,
                        static_call=static))
        return nid

    def object_creation_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.object_creation_expression", parent)
        typ, args = n.child_by_field_name("type"), n.child_by_field_name("arguments")
        tname = text(typ) if typ is not None else ""
        if typ is not None:
            g.name(g.add("java." + typ.type, nid), _simple_type(tname))
            g.name(nid, _simple_type(tname))
        vals = []
        if args is not None:
            aid = g.add("java.argument_list", nid)
            vals = [self.node(a, aid) for a in named(args)]
        for c in named(n):
            if c.type == "class_body":  # anonymous class
                bid = g.add("java.class_body", nid)
                with g.function(None, scope_kind="class"):
                    for m in named(c):
                        self.member(m, bid)
        rule = classify_java_constructor(tname)
        if rule.sink and _simple_type(tname) == "ProcessBuilder" and len(vals) >= 2:
            first = named(args)[0]
            if first.type == "string_literal" and not is_shell_program(text(first)[1:-1]):
                # new ProcessBuilder("ping", "-c", "1", host): no shell parses the arguments and the
                # program is a literal; only the program position matters for command injection.
                rule = replace(rule, sink_positions=(0,))
        g.call(CallInfo(nid, "<init>" + tname, vals, {}, False, rule))
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
        for c in named(n):
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
        for c in named(n):
            v = self.node(c, nid)
            g.flow(v, nid)
            key = self.var_key(c)
            if key is not None:
                g.define(key, v, -1, strong=False)
        return nid
