"""Source, sink and sanitizer tables for Java and Python, and the call classifier built on them.

A call is classified from what the code itself shows (method name, the text of its receiver,
argument count, constructed type), never from types we cannot see. The tables are deliberately
short and readable; a model learns the rest from the graph.

``sink_positions`` lists the argument positions whose value must not be tainted (``None``: every
argument). ``cursor.execute(sql, params)`` is a sink on ``sql`` only: ``params`` is bound by the
driver, which is also why such a call is flagged as a sanitizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALL_ARGS = None  # sink_positions value meaning "every argument"


@dataclass(frozen=True)
class CallRule:
    """What the featurizer knows about one call."""

    source: bool = False
    sink: bool = False
    sanitizer: bool = False
    concat: bool = False
    sink_positions: tuple[int, ...] | None = ()
    sink_keywords: tuple[str, ...] = ()
    wrapper: bool = False  # sink recognised by name only (e.g. execute_query): see the frontends
    path_sink: bool = False       # with sink: the dangerous argument is a file path (CWE-22)
    path_sanitizer: bool = False  # result is safe for path sinks only (a basename is no SQL sanitizer)


PLAIN = CallRule()

# ----------------------------------------------------------------------------------------- Java
JAVA_SOURCE_METHODS = frozenset({
    "getParameter", "getParameterValues", "getParameterMap", "getParameterNames", "getHeader", "getHeaders",
    "getHeaderNames", "getCookies", "getQueryString", "getRequestURI", "getRequestURL", "getPathInfo",
    "getReader", "getInputStream", "getenv", "getProperty", "readLine", "nextLine",
})
# ResultSet getters are untrusted input (the Juliet "database" source); other getString()s are not.
_JAVA_RESULTSET_RECEIVER = re.compile(r"(?i)result|^rs$|^rset$")
_JAVA_RESULTSET_GETTERS = frozenset({"getString", "getObject", "getNString"})

_SQL_ARG0 = (0,)
JAVA_SINK_METHODS: dict[str, tuple[int, ...] | None] = {
    # SQL
    "execute": _SQL_ARG0, "executeQuery": _SQL_ARG0, "executeUpdate": _SQL_ARG0, "executeLargeUpdate": _SQL_ARG0,
    "addBatch": _SQL_ARG0, "prepareStatement": _SQL_ARG0, "prepareCall": _SQL_ARG0, "nativeSQL": _SQL_ARG0,
    "createQuery": _SQL_ARG0, "createNativeQuery": _SQL_ARG0, "createSQLQuery": _SQL_ARG0,
    "queryForList": _SQL_ARG0, "queryForObject": _SQL_ARG0, "queryForMap": _SQL_ARG0, "queryForRowSet": _SQL_ARG0,
    "executeBatch": (), "executeLargeBatch": (),  # runs what addBatch queued; flagged, reached via addBatch
    # OS commands, reflection, scripting
    "exec": ALL_ARGS, "command": ALL_ARGS, "forName": _SQL_ARG0, "eval": _SQL_ARG0,
    # LDAP, XPath
    "search": (0, 1), "evaluate": _SQL_ARG0, "compile": _SQL_ARG0,
    # HTTP response splitting, open redirect
    "setHeader": ALL_ARGS, "addHeader": ALL_ARGS, "addCookie": ALL_ARGS, "sendRedirect": _SQL_ARG0,
    "sendError": ALL_ARGS,  # the message is written into the error page (XSS)
}
# Output methods are sinks (XSS) only on a response writer/stream.
_JAVA_WRITER_METHODS = frozenset({"println", "print", "write", "format", "printf", "append"})
_JAVA_WRITER_RECEIVER = re.compile(r"getWriter\s*\(|getOutputStream\s*\(")
JAVA_SINK_CONSTRUCTORS = frozenset({
    "File", "FileInputStream", "FileOutputStream", "FileReader", "FileWriter", "RandomAccessFile",
    "ProcessBuilder", "Cookie", "URL",
})
JAVA_PATH_CONSTRUCTORS = frozenset({
    "File", "FileInputStream", "FileOutputStream", "FileReader", "FileWriter", "RandomAccessFile",
})
# Static helpers returning the last path component only (safe for path sinks, not for SQL).
JAVA_PATH_SANITIZERS = frozenset({"FilenameUtils.getName", "FilenameUtils.getBaseName"})
# Programs that interpret their arguments as a command line: an argv starting with one of these
# (ProcessBuilder("sh", "-c", cmd)) still runs a command built from its arguments.
SHELLS = frozenset({"sh", "bash", "zsh", "ksh", "dash", "csh", "tcsh", "fish", "ash", "busybox", "cmd", "cmd.exe",
                    "powershell", "powershell.exe", "pwsh", "env", "xargs", "eval", "exec"})


def is_shell_program(program: str) -> bool:
    """True when ``program`` (argv[0], possibly a full path) is a shell or a command runner."""
    base = program.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    return not base or base in SHELLS


JAVA_SANITIZER_METHODS = frozenset({
    "parseInt", "parseLong", "parseDouble", "parseFloat", "parseShort", "parseByte", "parseBoolean",
    "escapeXml", "escapeXml10", "escapeXml11", "escapeHtml", "escapeHtml3", "escapeHtml4", "escapeEcmaScript",
    "escapeJava", "escapeJson", "escapeSql", "encodeForHTML", "encodeForHTMLAttribute", "encodeForSQL",
    "encodeForLDAP", "encodeForDN", "encodeForXPath", "encodeForOS", "encodeForURL", "encodeForJavaScript",
    "forHtml", "forHtmlAttribute", "forUriComponent", "forJavaScript", "quote",
    # PreparedStatement parameter binding
    "setString", "setNString", "setInt", "setLong", "setShort", "setByte", "setDouble", "setFloat",
    "setBoolean", "setObject", "setDate", "setTime", "setTimestamp", "setBigDecimal", "setBytes",
})
_JAVA_NUMERIC_BOXES = frozenset({"Integer", "Long", "Short", "Byte", "Double", "Float", "Boolean"})
_JAVA_FORMAT_METHODS = frozenset({"format", "concat", "append", "join", "formatted"})


def classify_java_call(name: str, receiver: str | None) -> CallRule:
    """Classify ``receiver.name(args)`` (receiver is the source text, None for an unqualified call)."""
    recv = receiver or ""
    base = recv.rsplit(".", 1)[-1]
    if name in JAVA_SOURCE_METHODS or (name in _JAVA_RESULTSET_GETTERS and _JAVA_RESULTSET_RECEIVER.search(base)):
        return CallRule(source=True)
    if name in JAVA_SANITIZER_METHODS or (name == "valueOf" and base in _JAVA_NUMERIC_BOXES) or (
            name == "encode" and base in ("URLEncoder", "Encode", "ESAPI.encoder()")):
        return CallRule(sanitizer=True)
    if name in _JAVA_WRITER_METHODS and _JAVA_WRITER_RECEIVER.search(recv):
        return CallRule(sink=True, sink_positions=ALL_ARGS)
    if f"{base}.{name}" in JAVA_PATH_SANITIZERS:
        return CallRule(path_sanitizer=True)
    if name in JAVA_SINK_METHODS:
        return CallRule(sink=True, sink_positions=JAVA_SINK_METHODS[name])
    if (name == "get" and base in ("Paths", "Path")) or (name == "of" and base == "Path"):
        return CallRule(sink=True, sink_positions=ALL_ARGS, path_sink=True)
    if name in _JAVA_FORMAT_METHODS and (base in ("String", "StringBuilder", "StringBuffer") or name != "join"):
        return CallRule(concat=True)
    return PLAIN


def classify_java_constructor(type_name: str) -> CallRule:
    """Classify ``new T(args)`` by the simple name of T."""
    simple = type_name.split("<", 1)[0].rsplit(".", 1)[-1].strip()
    if simple in JAVA_SINK_CONSTRUCTORS:
        return CallRule(sink=True, sink_positions=ALL_ARGS, path_sink=simple in JAVA_PATH_CONSTRUCTORS)
    return PLAIN


# --------------------------------------------------------------------------------------- Python
# Attribute reads that are untrusted input: matched on the last two dotted components.
_PY_REQUEST_ATTRS = frozenset({
    "args", "form", "values", "json", "data", "cookies", "headers", "files", "GET", "POST", "COOKIES",
    "META", "body", "query_params", "query_string", "params", "stream",
})
_PY_SOURCE_ATTRS = frozenset({"sys.argv", "os.environ", "sys.stdin"})
_PY_SOURCE_FUNCS = frozenset({"input", "raw_input", "getenv", "os.getenv", "getpass", "cgi.FieldStorage",
                              "FieldStorage", "urlopen", "urllib.request.urlopen", "requests.get", "requests.post"})
_PY_SOURCE_METHODS = frozenset({
    "recv", "recvfrom", "recv_into", "read", "readline", "readlines", "get_json", "get_data", "getlist",
})

_PY_SQL_KEYWORDS = ("sql", "query", "statement", "operation", "stmt")
_PY_DBAPI_METHODS = frozenset({"execute", "executemany", "executescript", "mogrify", "raw", "read_sql",
                               "read_sql_query"})
# SQL execution, including the thin project wrappers real code calls (execute_query, queryDB,
# insertDB, db_execute, self._query): the callee's name says it runs its first argument.
_PY_SQL_NAME = re.compile(
    r"(?i)^_*(execute\w*|exec|mogrify|raw|sql|run_?sql|\w*_query|query\w*|(insert|delete|update|select)_?"
    r"(db|query|one|all)|db_?execute\w*|run_?command|read_sql\w*)$")
# ... but not helpers that only build or fetch a query string.
_PY_NOT_SQL = re.compile(r"(?i)^_*(build|make|get|parse|format|create|construct|prepare|set|add|log)_")
_PY_SQL_FUNCS = frozenset({"text", "sqlalchemy.text", "read_sql", "pd.read_sql", "pandas.read_sql",
                           "pd.read_sql_query", "pandas.read_sql_query"})
_PY_OS_FUNCS = frozenset({
    "os.system", "os.popen", "os.execl", "os.execlp", "os.execv", "os.execvp", "os.spawnl", "os.spawnv",
    "subprocess.call", "subprocess.run", "subprocess.Popen", "subprocess.check_call",
    "subprocess.check_output", "subprocess.getoutput", "subprocess.getstatusoutput", "commands.getoutput",
    "popen", "system",
})
_PY_CODE_FUNCS = frozenset({"eval", "exec"})
_PY_FILE_FUNCS = frozenset({"open", "io.open", "codecs.open", "os.remove", "os.unlink", "shutil.rmtree",
                            "send_file", "flask.send_file", "send_from_directory"})
_PY_SANITIZER_FUNCS = frozenset({
    "int", "float", "bool", "len", "abs", "escape", "quote", "quote_plus", "escape_string", "html.escape",
    "cgi.escape", "shlex.quote", "pipes.quote", "re.escape", "bleach.clean",
    "markupsafe.escape", "urllib.parse.quote", "sql.Literal", "sql.Identifier", "Literal", "Identifier",
})
# The last path component only: safe for path sinks, not for SQL or commands.
_PY_PATH_SANITIZER_FUNCS = frozenset({
    "os.path.basename", "posixpath.basename", "ntpath.basename", "path.basename", "basename",
    "secure_filename", "werkzeug.utils.secure_filename", "utils.secure_filename",
})
# Normalising path functions: a result checked with startswith(<constant base>) is confined to it.
PY_PATH_NORMALISERS = frozenset({"os.path.realpath", "os.path.abspath", "os.path.normpath", "realpath",
                                 "abspath", "normpath", "path.realpath", "path.abspath", "path.normpath"})
PY_PATH_NORMALISER_METHODS = frozenset({"resolve", "absolute"})
# subprocess calls that take an argv list: without shell=True only argv[0] names the program.
PY_ARGV_FUNCS = frozenset({"subprocess.run", "subprocess.call", "subprocess.Popen", "subprocess.check_call",
                           "subprocess.check_output"})
_PY_SANITIZER_METHODS = frozenset({"escape", "escape_string", "literal", "quote", "quote_identifier",
                                   "isdigit", "isnumeric", "isalnum"})
_PY_FORMAT_METHODS = frozenset({"format", "format_map", "join"})


def classify_python_call(dotted: str, nargs: int, keywords: tuple[str, ...], receiver_is_str: bool) -> CallRule:
    """Classify a call by its dotted callee (``"os.system"``, ``"?.execute"`` for a computed receiver)."""
    method = dotted.rsplit(".", 1)[-1]
    has_receiver = "." in dotted
    if dotted in _PY_SOURCE_FUNCS or dotted.endswith(".getenv") or (has_receiver and method in _PY_SOURCE_METHODS):
        return CallRule(source=True)
    if dotted in _PY_SANITIZER_FUNCS or (has_receiver and method in _PY_SANITIZER_METHODS):
        return CallRule(sanitizer=True)
    if dotted in _PY_PATH_SANITIZER_FUNCS:
        return CallRule(path_sanitizer=True)
    if has_receiver and method in _PY_FORMAT_METHODS and receiver_is_str:
        return CallRule(concat=True)
    if method in _PY_DBAPI_METHODS or dotted in _PY_SQL_FUNCS:
        # DB-API: the statement is the first argument; a second one (or a parameters keyword)
        # is bound by the driver.
        bound = nargs >= 2 or any(k in ("params", "parameters", "args", "vars") for k in keywords)
        return CallRule(sink=True, sanitizer=bound, sink_positions=(0,), sink_keywords=_PY_SQL_KEYWORDS)
    if _PY_SQL_NAME.match(method) and not _PY_NOT_SQL.match(method):
        # A project wrapper (queryDB(conn, sql), execute_query(sql, params)): the statement may be
        # any argument; the frontend leaves out arguments that are parameter containers.
        return CallRule(sink=True, sink_positions=ALL_ARGS, sink_keywords=_PY_SQL_KEYWORDS, wrapper=True)
    if dotted in _PY_OS_FUNCS or dotted in _PY_CODE_FUNCS:
        return CallRule(sink=True, sink_positions=(0,), sink_keywords=("args", "cmd", "command"))
    if dotted in _PY_FILE_FUNCS:
        return CallRule(sink=True, sink_positions=(0,), sink_keywords=("file", "path", "filename"), path_sink=True)
    return PLAIN


def is_python_source_attribute(dotted: str) -> bool:
    """True for attribute reads like ``request.args``, ``self.request.GET``, ``os.environ``, ``sys.argv``."""
    if dotted in _PY_SOURCE_ATTRS:
        return True
    parts = dotted.rsplit(".", 2)
    return len(parts) >= 2 and parts[-1] in _PY_REQUEST_ATTRS and parts[-2] in ("request", "req")


# --------------------------------------------------------------------------------- collections
# Methods that store their (last) argument into the receiver: the receiver becomes a definition.
STORE_METHODS = frozenset({
    "add", "addAll", "addElement", "addFirst", "addLast", "append", "appendleft", "extend", "insert", "offer",
    "offerFirst", "offerLast", "push", "put", "putAll", "putIfAbsent", "set", "setdefault", "update",
    "setProperty", "write",
})
# Methods that only read a container; they leave literal-index/key tracking intact.
READ_METHODS = frozenset({
    "get", "getOrDefault", "size", "isEmpty", "contains", "containsKey", "containsValue", "keys", "values",
    "items", "length", "indexOf", "count", "index", "getFirst", "getLast", "peek", "iterator", "toString",
    "hasNext", "next", "equals", "hashCode", "close", "split", "substring", "trim", "strip",
})
# Store methods that append at the end (index = current length) vs store at a literal key.
APPEND_METHODS = frozenset({"add", "append", "addLast", "offer", "offerLast", "addElement"})
KEYED_STORE_METHODS = frozenset({"put", "setProperty", "__setitem__"})
GET_METHODS = frozenset({"get", "getOrDefault", "__getitem__"})

# --------------------------------------------------------------------------------- literals
SQL_TEXT = re.compile(
    r"(?is)\b(select\b.*\bfrom|insert\s+into|update\b.*\bset|delete\s+from|replace\s+into|create\s+table|"
    r"drop\s+table|alter\s+table|where\b)")
PLACEHOLDER = re.compile(r"\?|%s|%d|%\(\w+\)s|\{\w*\}|(?<![\w:]):[A-Za-z_]\w*")
