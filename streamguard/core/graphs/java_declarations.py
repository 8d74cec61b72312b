"""Java declarations: local variables and fields, types and their members, methods, parameters, lambdas.

`JavaDeclarations` is a part of the Java frontend's walker (``java_frontend.py``); each method
emits one declaration and defines what it declares (locals, ``this.`` fields, parameters, which
may be taint sources) in the walker's `GraphIR`.
"""

from __future__ import annotations

from . import ir as IR
from .consts import UNKNOWN
from .ir import FuncInfo
from .java_syntax import LITERALS, STRINGY_PARAM, named, text
from .rules import java_source_annotation

# Expression kinds whose value may fold to a constant (worth trying when a local is bound).
FOLDABLE = LITERALS | {"binary_expression", "parenthesized_expression", "unary_expression", "identifier",
                       "method_invocation", "array_access", "ternary_expression", "field_access"}


class JavaDeclarations:
    """Declaration handlers of the Java walker."""

    def local_variable_declaration(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java." + n.type, parent)
        typ = n.child_by_field_name("type")
        if typ is not None:
            g.name(g.add("java." + typ.type, nid), type_word(text(typ)))
        tname = text(typ).split("<", 1)[0].rsplit(".", 1)[-1].strip() if typ is not None else ""
        for d in n.children_by_field_name("declarator"):
            if n.type == "local_variable_declaration":
                dname, dval = d.child_by_field_name("name"), d.child_by_field_name("value")
                if dname is not None:
                    if tname == "var" and dval is not None and dval.type == "object_creation_expression":
                        vt = dval.child_by_field_name("type")
                        tname_d = text(vt).split("<", 1)[0].rsplit(".", 1)[-1].strip() if vt is not None else ""
                    else:
                        tname_d = tname
                    self.local_types[text(dname)] = tname_d
                    # A local bound once to a call or field (`PrintWriter out = response.getWriter()`)
                    # stands for that expression when it receives a call.
                    if (dval is not None and dval.type in ("method_invocation", "field_access")
                            and self.assignments(text(dname)) <= 1):
                        self.local_receivers[text(dname)] = text(dval)
                    else:
                        self.local_receivers.pop(text(dname), None)
            self.declarator(d, nid, field=(n.type != "local_variable_declaration"))
        return nid

    def declarator(self, d, parent: int, *, field: bool) -> None:
        g = self.g
        did = g.add("java.variable_declarator", parent)
        name_n, value_n = d.child_by_field_name("name"), d.child_by_field_name("value")
        if name_n is None:
            return
        name = text(name_n)
        key = "this." + name if field else name
        var = g.name(g.add("java.identifier", did, IR.IDENT), name)
        if value_n is None:
            if field:
                g.define(key, var)
            else:
                g.declare(key)
            return
        cv = self.const(value_n) if not field and value_n.type in FOLDABLE else UNKNOWN
        v = self.node(value_n, did)
        g.define(key, var, v, const=value_n.type in LITERALS)
        if cv is not UNKNOWN:
            g.const_val[var] = cv
        self.track_container(key, value_n, v)

    # ----------------------------------------------------------------------------- declarations
    def type_declaration(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java." + n.type, parent)
        name_n = n.child_by_field_name("name")
        self.class_stack.append(text(name_n) if name_n is not None else "")
        g.name(nid, self.class_stack[-1])
        try:
            self._type_body(n, nid)
        finally:
            self.class_stack.pop()
        return nid

    def _type_body(self, n, nid: int) -> None:
        g = self.g
        for c in named(n):
            if c.type in ("class_body", "interface_body", "enum_body", "annotation_type_body"):
                bid = g.add("java." + c.type, nid)
                with g.function(None, scope_kind="class"):
                    saved_types, self.local_types = self.local_types, {}
                    saved_receivers, self.local_receivers = self.local_receivers, {}
                    # Fields are known in every method, wherever they are declared (inner classes see
                    # the outer ones too), so that a call on one is classified by its declared type.
                    saved_fields, self.field_types = self.field_types, {**self.field_types, **_field_types(c)}
                    for m in named(c):
                        self.member(m, bid)
                    self.local_types, self.field_types = saved_types, saved_fields
                    self.local_receivers = saved_receivers
            elif c.type == "identifier":
                g.name(g.add("java.identifier", nid), text(c))
            else:
                self.node(c, nid)

    def member(self, m, parent: int) -> None:
        t = m.type
        if t in ("field_declaration", "constant_declaration"):
            self.local_variable_declaration(m, parent)
        elif t == "enum_body_declarations":
            bid = self.g.add("java.enum_body_declarations", parent)
            for c in named(m):
                self.member(c, bid)
        else:
            self.node(m, parent)

    def method_declaration(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java." + n.type, parent)
        name_n = n.child_by_field_name("name")
        info = FuncInfo(text(name_n) if name_n is not None else "<anon>", nid, True,
                        owner=self.class_stack[-1] if self.class_stack else "")
        g.name(nid, info.name)
        saved_types, self.local_types = self.local_types, {}
        saved_receivers, self.local_receivers = self.local_receivers, {}
        with g.function(info):
            for c in named(n):
                if c.type == "formal_parameters":
                    self.formal_parameters(c, nid, info)
                elif c.type in ("block", "constructor_body"):
                    sid = self.block(c, nid)
                    g.edge(nid, sid, IR.NEXT_STMT)
                elif c.type == "identifier":
                    g.name(g.add("java.identifier", nid), text(c))
                else:
                    self.node(c, nid)
        self.local_types, self.local_receivers = saved_types, saved_receivers
        return nid

    def receiver_type(self, obj) -> str:
        """The declared simple type name of a call's receiver (a local, a parameter or a field), else ""."""
        if obj is None:
            return ""
        if obj.type == "identifier":
            name = text(obj)
            return self.local_types.get(name) or self.field_types.get(name, "")
        if obj.type == "field_access":
            owner, field = obj.child_by_field_name("object"), obj.child_by_field_name("field")
            if owner is not None and field is not None and owner.type == "this":
                return self.field_types.get(text(field), "")
        return ""

    def formal_parameters(self, n, parent: int, info: FuncInfo | None) -> None:
        g = self.g
        pid = g.add("java.formal_parameters", parent)
        for p in named(n):
            fid = g.add("java." + p.type, pid)
            typ, name = p.child_by_field_name("type"), p.child_by_field_name("name")
            if name is None:  # spread_parameter keeps its declarator inside
                decl = next((c for c in p.named_children if c.type == "variable_declarator"), None)
                name = decl.child_by_field_name("name") if decl is not None else None
            if typ is None:
                typ = next((c for c in p.named_children if c.type.endswith("type") or c.type == "type_identifier"),
                           None)
            if typ is not None:
                g.name(g.add("java." + typ.type, fid), type_word(text(typ)))
            if name is None:
                continue
            annotated = any(m.type == "modifiers" and any(
                a.type in ("annotation", "marker_annotation") and java_source_annotation(text(a)) for a in m.children)
                for m in p.children)
            var = g.add("java.identifier", fid, IR.IDENT | (IR.SOURCE if annotated and info is not None else 0))
            pname = text(name)
            g.name(var, pname, type_word(text(typ)) if typ is not None else "")
            if typ is not None:
                self.local_types[pname] = type_word(text(typ))
            self.local_receivers.pop(pname, None)
            g.define(pname, var)
            if info is not None:
                info.params.append((pname, var, typ is not None and bool(STRINGY_PARAM.search(text(typ)))))

    def lambda_expression(self, n, parent: int) -> int:
        g = self.g
        nid = g.add("java.lambda_expression", parent)
        params, body = n.child_by_field_name("parameters"), n.child_by_field_name("body")
        outer = g.env
        with g.function(None):
            g.env = outer.copy() if outer is not None else IR.Env()  # lambdas capture locals
            if params is not None:
                if params.type == "identifier":
                    g.define(text(params), g.add("java.identifier", nid, IR.IDENT))
                elif params.type == "formal_parameters":
                    self.formal_parameters(params, nid, None)
                else:
                    for p in named(params):
                        g.define(text(p), g.add("java.identifier", nid, IR.IDENT))
            if body is not None:
                v = self.node(body, nid)
                g.flow(v, nid)
        return nid


def _field_types(body) -> dict[str, str]:
    """Field name -> simple declared type name, for the field declarations of a class body."""
    out = {}
    for m in named(body):
        typ = m.child_by_field_name("type") if m.type == "field_declaration" else None
        if typ is None:
            continue
        for d in m.children_by_field_name("declarator"):
            name_n = d.child_by_field_name("name")
            if name_n is not None:
                out[text(name_n)] = type_word(text(typ))
    return out


def type_word(type_name: str) -> str:
    """``HttpServletRequest`` of ``javax.servlet.http.HttpServletRequest``, ``List`` of ``List<String>``."""
    return type_name.split("<", 1)[0].rsplit(".", 1)[-1].strip().rstrip("[]")
