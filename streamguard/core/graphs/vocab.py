"""Fixed vocabularies of the graph featurizer: node kinds, node feature columns, edge types.

Every id is an index into a tuple written out literally below, so ids are identical in every
process and on every machine (never derived from ``hash()``). Changing any tuple changes what a
trained model sees: bump ``FEATURIZER_VERSION`` whenever one of them changes.
"""

from __future__ import annotations

from .catalog import DEFAULT_DIGEST
from .subtokens import MAX_SUBTOKENS, NUM_SUBTOKEN_BUCKETS, SUBTOKEN_VOCAB

# The graph format's own version, then the hash of the API catalog(s) in use (see catalog.py).
# sg-graph-4: identifier/literal subtokens (``subtok``, see subtokens.py) and literal-shape columns.
GRAPH_FORMAT_VERSION = "sg-graph-4"
# The taint analysis' own revision: bumped when the same code under the same vocabularies gets other
# flags or edges (a2: receivers known by their declared type, and a local bound once to a call taken
# for that call). It is part of FEATURIZER_VERSION, so stored graphs of an older analysis are rebuilt,
# and not of GRAPH_FORMAT_VERSION, so trained models still read the graphs, as after a catalog change.
ANALYSIS_REVISION = "a2"
FEATURIZER_VERSION = f"{GRAPH_FORMAT_VERSION}.{ANALYSIS_REVISION}+{DEFAULT_DIGEST[:12]}"


def featurizer_version(catalog_digest: str) -> str:
    """``FEATURIZER_VERSION`` for graphs built with the catalog of this digest."""
    return f"{GRAPH_FORMAT_VERSION}.{ANALYSIS_REVISION}+{catalog_digest[:12]}"

UNK_KIND = "<unk>"

# Python kinds are ``ast`` class names ("py." prefix); binary, boolean and unary operators and
# constant types are folded into the kind because the operator/type nodes themselves are not
# emitted. Java kinds are tree-sitter-java 0.23 named node types ("java." prefix), without
# comments and string fragments, plus the binary operators. "tok." kinds belong to the token
# chain used when Python code cannot be parsed at all.
_PY_KINDS = (
    "py.Module", "py.Interactive", "py.Expression", "py.FunctionType",
    "py.FunctionDef", "py.AsyncFunctionDef", "py.ClassDef", "py.Return", "py.Delete", "py.Assign",
    "py.TypeAlias", "py.AugAssign", "py.AnnAssign", "py.For", "py.AsyncFor", "py.While", "py.If", "py.With",
    "py.AsyncWith", "py.Match", "py.Raise", "py.Try", "py.TryStar", "py.Assert", "py.Import", "py.ImportFrom",
    "py.Global", "py.Nonlocal", "py.Expr", "py.Pass", "py.Break", "py.Continue",
    "py.BoolOp", "py.BoolOp:And", "py.BoolOp:Or", "py.NamedExpr", "py.BinOp",
    "py.BinOp:Add", "py.BinOp:Sub", "py.BinOp:Mult", "py.BinOp:MatMult", "py.BinOp:Div", "py.BinOp:Mod",
    "py.BinOp:Pow", "py.BinOp:LShift", "py.BinOp:RShift", "py.BinOp:BitOr", "py.BinOp:BitXor",
    "py.BinOp:BitAnd", "py.BinOp:FloorDiv",
    "py.UnaryOp", "py.UnaryOp:Invert", "py.UnaryOp:Not", "py.UnaryOp:UAdd", "py.UnaryOp:USub",
    "py.Lambda", "py.IfExp", "py.Dict", "py.Set", "py.ListComp", "py.SetComp", "py.DictComp", "py.GeneratorExp",
    "py.Await", "py.Yield", "py.YieldFrom", "py.Compare", "py.Call", "py.FormattedValue", "py.JoinedStr",
    "py.Constant", "py.Constant:str", "py.Constant:bytes", "py.Constant:int", "py.Constant:float",
    "py.Constant:complex", "py.Constant:bool", "py.Constant:None", "py.Constant:Ellipsis",
    "py.Attribute", "py.Subscript", "py.Starred", "py.Name", "py.List", "py.Tuple", "py.Slice",
    "py.comprehension", "py.ExceptHandler", "py.arguments", "py.arg", "py.keyword", "py.alias", "py.withitem",
    "py.match_case", "py.MatchValue", "py.MatchSingleton", "py.MatchSequence", "py.MatchMapping",
    "py.MatchClass", "py.MatchStar", "py.MatchAs", "py.MatchOr", "py.TypeIgnore", "py.TypeVar",
    "py.ParamSpec", "py.TypeVarTuple",
)

_JAVA_KINDS = (
    "java.annotated_type", "java.annotation", "java.annotation_argument_list", "java.annotation_type_body",
    "java.annotation_type_declaration", "java.annotation_type_element_declaration", "java.argument_list",
    "java.array_access", "java.array_creation_expression", "java.array_initializer", "java.array_type",
    "java.assert_statement", "java.assignment_expression", "java.asterisk", "java.binary_expression",
    "java.binary_integer_literal", "java.block", "java.boolean_type", "java.break_statement",
    "java.cast_expression", "java.catch_clause", "java.catch_formal_parameter", "java.catch_type",
    "java.character_literal", "java.class_body", "java.class_declaration", "java.class_literal",
    "java.compact_constructor_declaration", "java.constant_declaration", "java.constructor_body",
    "java.constructor_declaration", "java.continue_statement", "java.decimal_floating_point_literal",
    "java.decimal_integer_literal", "java.dimensions", "java.dimensions_expr", "java.do_statement",
    "java.element_value_array_initializer", "java.element_value_pair", "java.enhanced_for_statement",
    "java.enum_body", "java.enum_body_declarations", "java.enum_constant", "java.enum_declaration",
    "java.explicit_constructor_invocation", "java.exports_module_directive", "java.expression_statement",
    "java.extends_interfaces", "java.false", "java.field_access", "java.field_declaration",
    "java.finally_clause", "java.floating_point_type", "java.for_statement", "java.formal_parameter",
    "java.formal_parameters", "java.generic_type", "java.guard", "java.hex_floating_point_literal",
    "java.hex_integer_literal", "java.identifier", "java.if_statement", "java.import_declaration",
    "java.inferred_parameters", "java.instanceof_expression", "java.integral_type", "java.interface_body",
    "java.interface_declaration", "java.labeled_statement", "java.lambda_expression",
    "java.local_variable_declaration", "java.marker_annotation", "java.method_declaration",
    "java.method_invocation", "java.method_reference", "java.modifiers", "java.module_body",
    "java.module_declaration", "java.null_literal", "java.object_creation_expression",
    "java.octal_integer_literal", "java.opens_module_directive", "java.package_declaration",
    "java.parenthesized_expression", "java.pattern", "java.permits", "java.program",
    "java.provides_module_directive", "java.receiver_parameter", "java.record_declaration",
    "java.record_pattern", "java.record_pattern_body", "java.record_pattern_component",
    "java.requires_modifier", "java.requires_module_directive", "java.resource",
    "java.resource_specification", "java.return_statement", "java.scoped_identifier",
    "java.scoped_type_identifier", "java.spread_parameter", "java.static_initializer",
    "java.string_interpolation", "java.string_literal", "java.super", "java.super_interfaces",
    "java.superclass", "java.switch_block", "java.switch_block_statement_group", "java.switch_expression",
    "java.switch_label", "java.switch_rule", "java.synchronized_statement", "java.template_expression",
    "java.ternary_expression", "java.this", "java.throw_statement", "java.throws", "java.true",
    "java.try_statement", "java.try_with_resources_statement", "java.type_arguments", "java.type_bound",
    "java.type_identifier", "java.type_list", "java.type_parameter", "java.type_parameters",
    "java.type_pattern", "java.unary_expression", "java.underscore_pattern", "java.update_expression",
    "java.uses_module_directive", "java.variable_declarator", "java.void_type", "java.while_statement",
    "java.wildcard", "java.yield_statement", "java.ERROR",
    "java.binary_expression:+", "java.binary_expression:-", "java.binary_expression:*",
    "java.binary_expression:/", "java.binary_expression:%", "java.binary_expression:==",
    "java.binary_expression:!=", "java.binary_expression:<", "java.binary_expression:>",
    "java.binary_expression:<=", "java.binary_expression:>=", "java.binary_expression:&&",
    "java.binary_expression:||", "java.binary_expression:&", "java.binary_expression:|",
    "java.binary_expression:^", "java.binary_expression:<<", "java.binary_expression:>>",
    "java.binary_expression:>>>",
)

_TOKEN_KINDS = ("tok.NAME", "tok.KEYWORD", "tok.OP", "tok.STRING", "tok.NUMBER", "tok.OTHER")

NODE_KINDS: tuple[str, ...] = (UNK_KIND,) + _PY_KINDS + _JAVA_KINDS + _TOKEN_KINDS
NUM_NODE_KINDS = len(NODE_KINDS)
KIND_INDEX: dict[str, int] = {name: i for i, name in enumerate(NODE_KINDS)}


def kind_id(name: str) -> int:
    """Id of a node-kind name; ``<unk>`` (0) for names outside the vocabulary."""
    return KIND_INDEX.get(name, 0)


# Language-neutral roles of the node kinds: what a node *is* in any of the languages (a call, a
# string literal, an assignment, a loop ...), so that what a model learns about Java's
# ``method_invocation`` also applies to Python's ``Call``. A model derives a node's role from its
# kind (`KIND_ROLES`), so the graphs and ``FEATURIZER_VERSION`` do not change; a model that uses
# roles saves the mapping it was trained with. Kinds not listed here have the role "other".
NODE_ROLES: tuple[str, ...] = (
    "other", "module", "class_def", "function_def", "lambda", "parameters", "parameter", "block",
    "assignment", "declaration", "call", "new_object", "arguments", "keyword_argument", "attribute",
    "name", "type", "string", "string_build", "number", "boolean", "null", "add", "format_op",
    "arithmetic", "compare", "logical", "unary", "if", "conditional_expr", "switch", "loop",
    "comprehension", "return", "yield", "try", "catch", "finally", "raise", "with", "collection",
    "subscript", "expression_statement", "import", "jump", "cast", "annotation", "self_ref", "assert",
)
_ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "module": ("py.Module", "py.Interactive", "py.Expression", "java.program"),
    "class_def": ("py.ClassDef", "java.class_declaration", "java.interface_declaration", "java.enum_declaration",
                  "java.record_declaration", "java.annotation_type_declaration"),
    "function_def": ("py.FunctionDef", "py.AsyncFunctionDef", "java.method_declaration",
                     "java.constructor_declaration", "java.compact_constructor_declaration"),
    "lambda": ("py.Lambda", "java.lambda_expression", "java.method_reference"),
    "parameters": ("py.arguments", "java.formal_parameters", "java.inferred_parameters"),
    "parameter": ("py.arg", "java.formal_parameter", "java.spread_parameter", "java.receiver_parameter"),
    "block": ("java.block", "java.class_body", "java.constructor_body", "java.interface_body", "java.enum_body",
              "java.switch_block"),
    "assignment": ("py.Assign", "py.AugAssign", "py.AnnAssign", "py.NamedExpr", "java.assignment_expression"),
    "declaration": ("java.local_variable_declaration", "java.variable_declarator", "java.field_declaration",
                    "java.constant_declaration"),
    "call": ("py.Call", "java.method_invocation", "java.explicit_constructor_invocation"),
    "new_object": ("java.object_creation_expression", "java.array_creation_expression"),
    "arguments": ("java.argument_list",),
    "keyword_argument": ("py.keyword",),
    "attribute": ("py.Attribute", "java.field_access", "java.scoped_identifier"),
    "name": ("py.Name", "java.identifier", "tok.NAME"),
    "type": ("java.type_identifier", "java.scoped_type_identifier", "java.generic_type", "java.array_type",
             "java.integral_type", "java.floating_point_type", "java.boolean_type", "java.void_type",
             "java.type_arguments", "java.annotated_type"),
    "string": ("py.Constant:str", "py.Constant:bytes", "java.string_literal", "java.character_literal",
               "tok.STRING"),
    "string_build": ("py.JoinedStr", "py.FormattedValue", "java.template_expression",
                     "java.string_interpolation"),
    "number": ("py.Constant:int", "py.Constant:float", "py.Constant:complex", "java.decimal_integer_literal",
               "java.hex_integer_literal", "java.octal_integer_literal", "java.binary_integer_literal",
               "java.decimal_floating_point_literal", "java.hex_floating_point_literal", "tok.NUMBER"),
    "boolean": ("py.Constant:bool", "java.true", "java.false"),
    "null": ("py.Constant:None", "java.null_literal"),
    "add": ("py.BinOp:Add", "java.binary_expression:+"),
    "format_op": ("py.BinOp:Mod",),  # Python's % formats strings; Java's % is arithmetic
    "arithmetic": ("py.BinOp", "py.BinOp:Sub", "py.BinOp:Mult", "py.BinOp:MatMult", "py.BinOp:Div",
                   "py.BinOp:Pow", "py.BinOp:LShift", "py.BinOp:RShift", "py.BinOp:BitOr", "py.BinOp:BitXor",
                   "py.BinOp:BitAnd", "py.BinOp:FloorDiv", "java.binary_expression", "java.binary_expression:-",
                   "java.binary_expression:*", "java.binary_expression:/", "java.binary_expression:%",
                   "java.binary_expression:&", "java.binary_expression:|", "java.binary_expression:^",
                   "java.binary_expression:<<", "java.binary_expression:>>", "java.binary_expression:>>>"),
    "compare": ("py.Compare", "java.binary_expression:==", "java.binary_expression:!=",
                "java.binary_expression:<", "java.binary_expression:>", "java.binary_expression:<=",
                "java.binary_expression:>=", "java.instanceof_expression"),
    "logical": ("py.BoolOp", "py.BoolOp:And", "py.BoolOp:Or", "py.UnaryOp:Not", "java.binary_expression:&&",
                "java.binary_expression:||"),
    "unary": ("py.UnaryOp", "py.UnaryOp:Invert", "py.UnaryOp:UAdd", "py.UnaryOp:USub", "java.unary_expression",
              "java.update_expression"),
    "if": ("py.If", "java.if_statement"),
    "conditional_expr": ("py.IfExp", "java.ternary_expression"),
    "switch": ("py.Match", "py.match_case", "java.switch_expression", "java.switch_block_statement_group",
               "java.switch_rule", "java.switch_label"),
    "loop": ("py.For", "py.AsyncFor", "py.While", "java.for_statement", "java.enhanced_for_statement",
             "java.while_statement", "java.do_statement"),
    "comprehension": ("py.ListComp", "py.SetComp", "py.DictComp", "py.GeneratorExp", "py.comprehension"),
    "return": ("py.Return", "java.return_statement"),
    "yield": ("py.Yield", "py.YieldFrom", "py.Await", "java.yield_statement"),
    "try": ("py.Try", "py.TryStar", "java.try_statement", "java.try_with_resources_statement"),
    "catch": ("py.ExceptHandler", "java.catch_clause", "java.catch_formal_parameter", "java.catch_type"),
    "finally": ("java.finally_clause",),
    "raise": ("py.Raise", "java.throw_statement", "java.throws"),
    "with": ("py.With", "py.AsyncWith", "py.withitem", "java.resource_specification", "java.resource"),
    "collection": ("py.List", "py.Tuple", "py.Set", "py.Dict", "java.array_initializer"),
    "subscript": ("py.Subscript", "py.Slice", "java.array_access"),
    "expression_statement": ("py.Expr", "java.expression_statement"),
    "import": ("py.Import", "py.ImportFrom", "py.alias", "java.import_declaration", "java.package_declaration"),
    "jump": ("py.Break", "py.Continue", "py.Pass", "java.break_statement", "java.continue_statement"),
    "cast": ("java.cast_expression",),
    "annotation": ("java.annotation", "java.marker_annotation", "java.modifiers"),
    "self_ref": ("java.this", "java.super"),
    "assert": ("py.Assert", "java.assert_statement"),
}
NUM_NODE_ROLES = len(NODE_ROLES)
_ROLE_INDEX = {name: i for i, name in enumerate(NODE_ROLES)}
_KIND_ROLE = {kind: role for role, kinds in _ROLE_KINDS.items() for kind in kinds}
# ``KIND_ROLES[kind_id]`` is the role id of that node kind.
KIND_ROLES: tuple[int, ...] = tuple(_ROLE_INDEX[_KIND_ROLE.get(kind, "other")] for kind in NODE_KINDS)


# Feature columns of ``feat`` (floats). Flags are 0.0/1.0; depth .. num_uses are numeric in [0, 1].
NODE_FEATURES: tuple[str, ...] = (
    "is_source",             # API returning untrusted input (request parameter, env, stdin, socket, file read)
    "is_param_source",       # parameter of an entry function (not called in the file), treated as untrusted
    "is_sink",               # security-sensitive call (SQL execution, OS command, file path, LDAP/XPath, header)
    "is_path_sink",          # sink whose dangerous argument is a file path (also is_sink)
    "is_sanitizer",          # value is made safe for every sink (parameter binding, escaping, numeric
                             # parsing, membership in a constant allow-list)
    "is_path_sanitizer",     # value is made safe for path sinks only (basename, confined canonical path)
    "is_literal",
    "is_sql_literal",        # string literal that looks like SQL
    "has_placeholder",       # literal with a bind placeholder (?, %s, {}, :name)
    "is_string_concat",      # string +, %, .format, f-string, String.format, StringBuilder.append
    "is_call",
    "is_local_call",         # call resolved to a function/method defined in the same file
    "is_identifier",
    "is_def",                # node defines a variable (assignment target, declarator, parameter)
    "is_use",                # node reads a variable
    "is_tainted",            # forward taint propagation from sources over data-flow edges
    "flows_to_sink",         # value can reach a sink argument over data-flow edges (tainted or not)
    "on_taint_path",         # tainted and flows to a sink: lies on a source -> sink path
    "dead",                  # lies in a statically dead branch or unreachable code
    "const_true",            # branch condition folded to a constant true
    "const_false",           # branch condition folded to a constant false
    "overwritten_by_const",  # variable use whose reaching definitions all assign constants
    "in_loop",
    "graph_truncated",       # the graph hit max_nodes and was cut (same value on every node)
    "depth",                 # AST depth / 32, capped at 1
    "literal_len",           # log2(1 + literal length) / 12, capped at 1; 0 for non-literals
    "num_children",          # log2(1 + AST children) / 5, capped at 1
    "position",              # node index / number of nodes (pre-order position in the code)
    "num_uses",              # log2(1 + def-use edges out of this definition) / 4, capped at 1
    "is_shell_literal",      # string literal that looks like a shell command (ls, sh -c, cmd /c, ; | && $( ...)
    "is_path_literal",       # string literal that looks like a file path (/etc/x, ../a, C:\\, *.txt)
    "is_url_literal",        # string literal that is a URL (http:, ldap:, jdbc: ...)
    "is_markup_literal",     # string literal holding an HTML/XML tag
)
NODE_FEAT_DIM = len(NODE_FEATURES)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(NODE_FEATURES)}
# The numeric columns (sizes and positions, in [0, 1]); every other column is a 0/1 flag.
NUMERIC_FEATURES: frozenset[str] = frozenset({"depth", "literal_len", "num_children", "position", "num_uses"})
FLAG_FEATURES: tuple[str, ...] = tuple(f for f in NODE_FEATURES if f not in NUMERIC_FEATURES)

# Directed edge types. Reverse edges are stored as their own types so that message passing in a
# relational GNN also runs against the direction of the AST and of data flow.
EDGE_TYPES: tuple[str, ...] = (
    "ast_child",     # parent -> child
    "ast_parent",    # child -> parent
    "next_stmt",     # statement -> next statement of its block; compound statement -> first statement of a body
    "data_flow",     # value flow: operand -> expression, definition -> use, right-hand side -> definition
    "call_arg",      # argument -> call of a function not defined in the file (result may carry the argument)
    "sink_arg",      # argument in a dangerous position -> sink call (the only edges that reach a sink)
    "param_flow",    # argument -> parameter of a function defined in the same file
    "return_flow",   # returned value -> call site of a function defined in the same file
    "dead_branch",   # any edge between live and statically dead code (never carries taint)
    "flow_rev",      # reverse of data_flow, call_arg, sink_arg, param_flow, return_flow
)
NUM_EDGE_TYPES = len(EDGE_TYPES)
EDGE_INDEX: dict[str, int] = {name: i for i, name in enumerate(EDGE_TYPES)}

# Edge types along which taint propagates (sink_arg only ends at a sink).
FLOW_EDGE_TYPES = frozenset(EDGE_INDEX[t] for t in ("data_flow", "call_arg", "param_flow", "return_flow"))
SINK_EDGE_TYPE = EDGE_INDEX["sink_arg"]

# Subtoken ids of ``graph["subtok"]``: ``[[node, id, ...], ...]`` for the nodes that carry a name or
# a string literal, ids in 1..NUM_SUBTOKEN_BUCKETS, at most MAX_SUBTOKENS per node (subtokens.py).
SUBTOKENS = {"vocab": SUBTOKEN_VOCAB, "buckets": NUM_SUBTOKEN_BUCKETS, "per_node": MAX_SUBTOKENS}
