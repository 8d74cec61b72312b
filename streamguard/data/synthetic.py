"""Synthetic vulnerable/safe counterfactual pairs in Python and Java, for demos and tests.

Each pair shares a ``group``: the vulnerable variant lets outside input (request parameter,
header, environment, argv, stdin) reach a sink (SQL query, OS command, file path); the safe
variant is a small edit of it (parameterized query, integer parsing, allow-list, constant
overwrite outside an allow-list, dead branch, argument list, basename). Both variants of a pair format strings and
call the same sink, so no single token separates them.

Every sixth pair is emitted as one record carrying the safe code in ``counterfactual`` (the
other shape of paired data that ``streamguard prepare`` accepts).
"""

from __future__ import annotations

import random
from pathlib import Path

from streamguard.data import io

_TABLES = {
    "users": ("username", "email", "status"), "orders": ("reference", "status", "customer"),
    "invoices": ("number", "customer", "currency"), "products": ("sku", "title", "category"),
    "accounts": ("login", "owner", "iban"), "tickets": ("title", "assignee", "priority"),
    "employees": ("name", "department", "city"), "books": ("isbn", "title", "author"),
    "sessions": ("token", "user_name", "ip"), "comments": ("author", "post_slug", "state"),
}
_VARS = ("value", "term", "needle", "key", "ident", "login", "lookup", "query_arg", "name", "ref", "item")
_VERBS = ("find", "get", "load", "search", "lookup", "fetch", "count", "list")
_HOSTS = ("host", "target", "addr", "server", "node")
_FILES = ("filename", "name", "doc", "report", "path_arg")

# Python sources: (expression, imports, needs request)
_PY_SOURCES = (
    ('request.args.get("{p}", "")', ("from flask import request",), True),
    ('request.form["{p}"]', ("from flask import request",), True),
    ('request.headers.get("X-{P}", "")', ("from flask import request",), True),
    ('request.cookies.get("{p}", "")', ("from flask import request",), True),
    ('request.values.get("{p}", "")', ("from flask import request",), True),
    ('os.environ.get("{E}", "")', ("import os",), False),
    ("sys.argv[1]", ("import sys",), False),
    ("sys.stdin.readline().strip()", ("import sys",), False),
    ('input("{p}: ")', (), False),
)
# Numeric parsing that makes a value safe for any sink (Python; Java below), and the Java SQL sinks
# of a Statement and of a statement prepared from the built string (no parameters bound: still open).
_PY_NUMERIC = ("int({v})", "int({v}.strip())", "abs(int({v}))", "float({v})")
_JAVA_NUMERIC = ("String.valueOf(Integer.parseInt({v}.trim()))", "String.valueOf(Long.parseLong({v}))",
                 "Integer.valueOf({v}).toString()")
_JAVA_QUERY_SINKS = (
    (["Statement stmt = conn.createStatement();"], "ResultSet rs = stmt.executeQuery(sql);"),
    (["Statement stmt = conn.createStatement();"], "ResultSet rs = stmt.executeQuery(sql);"),
    ([], "ResultSet rs = conn.prepareStatement(sql).executeQuery();"),
    (["Statement st = conn.createStatement();"], "ResultSet rs = st.execute(sql) ? st.getResultSet() : null;"),
)
# Java sources: (expression, setup line or "", parameter list)
_JAVA_SOURCES = (
    ('request.getParameter("{p}")', "", "HttpServletRequest request"),
    ('request.getHeader("X-{P}")', "", "HttpServletRequest request"),
    ('System.getenv("{E}")', "", ""),
    ("args[0]", "", "String[] args"),
    ("reader.readLine()", "BufferedReader reader = new BufferedReader(new InputStreamReader(System.in));", ""),
    ('props.getProperty("{p}")', "", "Properties props"),
    ('request.getParameterValues("{p}")[0]', "", "HttpServletRequest request"),
)

_SQL_STRATEGIES = ("param", "int", "allowlist", "constant", "dead")
_CMD_STRATEGIES = ("argv", "allowlist", "int")
_PATH_STRATEGIES = ("basename", "prefix", "constant")


def generate_samples(n_pairs: int = 150, seed: int = 0) -> list[dict]:
    """Generate ``n_pairs`` counterfactual pairs (about half Python, half Java).

    Returns:
        Records with ``id``, ``code``, ``label``, ``language``, ``cwe``, ``group``, ``source``
        ("synthetic"), and ``counterfactual`` on the single-record pairs.
    """
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    rng = random.Random(seed)
    records: list[dict] = []
    for i in range(n_pairs):
        language = "python" if i % 2 == 0 else "java"
        kind = rng.choices(("sql", "cmd", "path"), weights=(6, 2, 2))[0]
        ctx = _context(rng)
        maker = {"python": _python_pair, "java": _java_pair}[language]
        vulnerable, safe, cwe = maker(rng, kind, ctx)
        group = f"synth-{seed}-{i:04d}"
        base = {"language": language, "cwe": cwe, "group": group, "source": "synthetic"}
        tag = f"synth-{seed}-{language[:2]}-{i:04d}"
        if i % 6 == 5:
            records.append({"id": f"{tag}-vul", "code": vulnerable, "label": 1, **base, "counterfactual": safe})
        else:
            records.append({"id": f"{tag}-vul", "code": vulnerable, "label": 1, **base})
            records.append({"id": f"{tag}-safe", "code": safe, "label": 0, **base})
    return records


def write_samples(path: str | Path, records: list[dict]) -> None:
    """Write records as JSON lines; a path ending in .gz is gzip-compressed (reproducibly)."""
    import json

    with io.open_for_write(str(path)) as fh:
        for rec in records:
            fh.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))


def _context(rng: random.Random) -> dict:
    table = rng.choice(sorted(_TABLES))
    cols = _TABLES[table]
    col = rng.choice(cols)
    var = rng.choice(_VARS)
    param = rng.choice(("q", "id", "name", "filter", "sort", "user", "ref", "key"))
    return {
        "table": table, "col": col, "cols": ", ".join(rng.sample(cols, 2)),
        "other_col": rng.choice([c for c in cols if c != col]), "var": var, "p": param, "P": param.capitalize(),
        "E": rng.choice(("APP_USER", "LOOKUP_KEY", "TARGET", "REPORT_NAME", "FILTER")),
        "verb": rng.choice(_VERBS), "host": rng.choice(_HOSTS), "file": rng.choice(_FILES),
        "limit": rng.choice((10, 20, 50, 100)), "default": rng.choice(("guest", "none", "default", "all")),
        "base": rng.choice(("/srv/reports", "/var/data/exports", "/opt/app/files", "/tmp/uploads")),
        "tool": rng.choice((("ping", "-c", "1"), ("nslookup",), ("host",), ("traceroute", "-m", "5"))),
        "comment": rng.random() < 0.5, "log": rng.choice(("print", "logger")),
    }


# ------------------------------------------------------------------------------------------ python
def _py_format(rng: random.Random, template: str, var: str, quote: bool = True) -> str:
    """A Python expression splicing ``var`` into ``template`` (which has one ``{}``)."""
    q = "'" if quote else ""
    before, after = template.split("{}")
    style = rng.randrange(4)
    if style == 0:
        return f'"{before}{q}%s{q}{after}" % {var}'
    if style == 1:
        head = f'"{before}{q}" + ' if (q or before) else ""
        tail = f' + "{q}{after}"' if (q or after) else ""
        return f"{head}{var}{tail}"
    if style == 2:
        return f'"{before}{q}{{}}{q}{after}".format({var})'
    return f'f"{before}{q}{{{var}}}{q}{after}"'


def _py_log(ctx: dict, var: str) -> str:
    if ctx["log"] == "print":
        return f'print(f"{ctx["verb"]} {ctx["table"]} for {{{var}!r}}")'
    return f'logger.info("{ctx["verb"]} {ctx["table"]} for %s", {var})'


def _python_pair(rng: random.Random, kind: str, ctx: dict) -> tuple[str, str, str]:
    src_expr, imports, needs_request = rng.choice(_PY_SOURCES)
    source = src_expr.format(**ctx)
    v = ctx["var"] if kind == "sql" else (ctx["host"] if kind == "cmd" else ctx["file"])
    imports = set(imports)
    if ctx["log"] == "logger":
        imports.add("import logging")
    if kind == "sql":
        fn_name = f'{ctx["verb"]}_{ctx["table"]}'
        params = "cursor" if needs_request or rng.random() < 0.5 else "conn"
        cur = "cursor" if params == "cursor" else "conn"
        vuln, safe = _py_sql(rng, ctx, v, cur)
        cwe = "CWE-89"
    elif kind == "cmd":
        imports |= {"import subprocess"}
        fn_name, params = f'check_{ctx["host"]}', ""
        vuln, safe = _py_cmd(rng, ctx, v, imports)
        cwe = "CWE-78"
    else:
        imports |= {"import os"}
        fn_name, params = f'read_{ctx["file"]}', ""
        vuln, safe = _py_path(rng, ctx, v)
        cwe = "CWE-22"
    header = "\n".join(sorted(imports))
    if ctx["log"] == "logger":
        header += "\n\nlogger = logging.getLogger(__name__)"
    consts = _py_consts(ctx, kind)

    def render(body: list[str]) -> str:
        lines = [f"def {fn_name}({params}):"]
        if ctx["comment"]:
            lines.append(f'    """{ctx["verb"].capitalize()} {ctx["table"]} matching the caller\'s input."""')
        lines.append(f"    {v} = {source}")
        lines.append(f"    {_py_log(ctx, v)}")
        lines += [f"    {line}" if line else "" for line in body]
        return (header + "\n\n" + consts + "\n\n" + "\n".join(lines) + "\n").lstrip("\n")

    return render(vuln), render(safe), cwe


def _py_consts(ctx: dict, kind: str) -> str:
    if kind == "sql":
        return f'ALLOWED = ("{ctx["col"]}", "{ctx["other_col"]}", "id")\nPAGE_SIZE = {ctx["limit"]}\n'
    if kind == "cmd":
        return f'KNOWN_HOSTS = ("localhost", "db.internal", "cache.internal")\nTOOL = {list(ctx["tool"])!r}\n'
    return f'BASE_DIR = "{ctx["base"]}"\n'


def _py_sql(rng: random.Random, ctx: dict, v: str, cur: str) -> tuple[list[str], list[str]]:
    t, col = ctx["table"], ctx["col"]
    select = f'SELECT {ctx["cols"]} FROM {t} WHERE {col} = {{}}'
    limit = 'sql += " LIMIT %d" % PAGE_SIZE'
    strategy = rng.choice(_SQL_STRATEGIES)
    fetch = [f"rows = {cur}.execute(sql).fetchall()" if cur == "conn" else f"{cur}.execute(sql)",
             "return rows" if cur == "conn" else f"return {cur}.fetchall()"]
    if strategy == "param":
        vuln = [f"sql = {_py_format(rng, select, v)}", limit] + fetch
        execute = f'{cur}.execute(sql, ' + rng.choice((f"({v},)", f"[{v}]", f"tuple([{v}])")) + ")"
        safe = [f'sql = "SELECT {ctx["cols"]} FROM {t} WHERE {col} = %s"', limit,
                f"rows = {execute}.fetchall()" if cur == "conn" else execute,
                "return rows" if cur == "conn" else f"return {cur}.fetchall()"]
        return vuln, safe
    if strategy == "int":
        query = f'sql = "SELECT {ctx["cols"]} FROM {t} WHERE id = %s" % {v}'
        cast = rng.choice(_PY_NUMERIC).format(v=v)
        return [query] + fetch, [f"{v} = {cast}", query] + fetch
    if strategy == "allowlist":
        order = f'sql = f"SELECT {ctx["cols"]} FROM {t} ORDER BY {{{v}}} LIMIT {{PAGE_SIZE}}"'
        warn = f'print("unexpected sort column: " + {v})'
        vuln = [f"if {v} not in ALLOWED:", f"    {warn}", order] + fetch
        safe = [f"if {v} not in ALLOWED:", f"    {warn}", f'    {v} = "id"', order] + fetch
        return vuln, safe
    query = f"sql = {_py_format(rng, select, v)}"
    if strategy == "constant":
        # Vulnerable: a default only for empty input. Safe: anything outside the allow-list is
        # replaced by the constant default, so the query only ever sees a known literal.
        vuln = [f'fallback = "{ctx["default"]}"', f"if not {v}:", f"    {v} = fallback", query, limit] + fetch
        safe = [f'fallback = "{ctx["default"]}"', f"if not {v} or {v} not in ALLOWED:", f"    {v} = fallback",
                query, limit] + fetch
        return vuln, safe
    # dead branch: the string-built query runs only when a debug flag is set
    param = f'{cur}.execute("SELECT {ctx["cols"]} FROM {t} WHERE {col} = %s", ({v},))'
    cond_vuln = rng.choice((f"len({v}) < 64", f"{v}.isprintable()", f"not {v}.startswith('#')"))
    cond_safe = rng.choice(("False", "0 > 1", "DEBUG_SQL and False"))
    pre = ["DEBUG_SQL = True"]
    body = [f"    {query}", f"    {cur}.execute(sql)", "else:", f"    {param}", f"return {cur}.fetchall()"]
    return pre + [f"if {cond_vuln}:"] + body, pre + [f"if {cond_safe}:"] + body


def _py_cmd(rng: random.Random, ctx: dict, v: str, imports: set[str]) -> tuple[list[str], list[str]]:
    tool = " ".join(ctx["tool"])
    strategy = rng.choice(_CMD_STRATEGIES)
    shell_cmd = f"cmd = {_py_format(rng, tool + ' {}', v, quote=False)}"
    run_shell = "out = subprocess.run(cmd, shell=True, capture_output=True, text=True)"
    if strategy == "argv":
        vuln = [shell_cmd, run_shell, "return out.stdout"]
        safe = [shell_cmd, f"out = subprocess.run(TOOL + [{v}], capture_output=True, text=True)", "return out.stdout"]
        return vuln, safe
    if strategy == "allowlist":
        check = f"if {v} not in KNOWN_HOSTS:"
        vuln = [check, f'    print("unknown host " + {v})', shell_cmd, run_shell, "return out.stdout"]
        safe = [check, f'    raise ValueError("unknown host " + {v})', shell_cmd, run_shell, "return out.stdout"]
        return vuln, safe
    imports.add("import shlex")
    vuln = [f"{v} = {v}.strip()", shell_cmd, run_shell, "return out.stdout"]
    safe = [f"{v} = shlex.quote({v}.strip())", shell_cmd, run_shell, "return out.stdout"]
    return vuln, safe


def _py_path(rng: random.Random, ctx: dict, v: str) -> tuple[list[str], list[str]]:
    strategy = rng.choice(_PATH_STRATEGIES)
    path = f"path = os.path.join(BASE_DIR, {_py_format(rng, '{}.txt', v, quote=False)})"
    read = ["with open(path, encoding='utf-8') as fh:", "    return fh.read()"]
    if strategy == "basename":
        return [f"{v} = {v}.strip()", path] + read, [f"{v} = os.path.basename({v}.strip())", path] + read
    if strategy == "prefix":
        norm = "path = os.path.realpath(path)"
        vuln = [path, norm, "if not path.startswith(BASE_DIR):", '    print("outside base: " + path)'] + read
        safe = [path, norm, "if not path.startswith(BASE_DIR):", '    raise PermissionError("outside base: " + path)'] + read
        return vuln, safe
    vuln = [f'default_name = "{ctx["default"]}"', path] + read
    safe = [f'{v} = "{ctx["default"]}"', path] + read
    return vuln, safe


# -------------------------------------------------------------------------------------------- java
def _java_concat(rng: random.Random, template: str, var: str, quote: bool = True) -> str:
    q = "'" if quote else ""
    before, after = template.split("{}")
    if rng.random() < 0.3:
        return f'String.format("{before}{q}%s{q}{after}", {var})'
    head = f'"{before}{q}" + ' if (q or before) else ""
    tail = f' + "{q}{after}"' if (q or after) else ""
    return f"{head}{var}{tail}"


def _java_pair(rng: random.Random, kind: str, ctx: dict) -> tuple[str, str, str]:
    src_expr, setup, src_param = rng.choice(_JAVA_SOURCES)
    source = src_expr.format(**ctx)
    table = ctx["table"]
    cls = "".join(w.capitalize() for w in table.split("_")) + rng.choice(("Dao", "Service", "Handler", "Repository"))
    v = _camel(ctx["var"] if kind == "sql" else (ctx["host"] if kind == "cmd" else ctx["file"]))
    if kind == "sql":
        params = ", ".join(p for p in ("Connection conn", src_param) if p)
        vuln, safe, ret = _java_sql(rng, ctx, v)
        method = f'public {ret} {ctx["verb"]}{table.capitalize()}({params}) throws Exception'
        cwe = "CWE-89"
    elif kind == "cmd":
        method = f"public String check{v[0].upper() + v[1:]}({src_param}) throws Exception"
        vuln, safe = _java_cmd(rng, ctx, v)
        cwe = "CWE-78"
    else:
        method = f"public String read{v[0].upper() + v[1:]}({src_param}) throws Exception"
        vuln, safe = _java_path(rng, ctx, v)
        cwe = "CWE-22"
    imports = ["import java.io.*;", "import java.nio.file.*;", "import java.sql.*;", "import java.util.*;",
               "import java.util.logging.Logger;"]
    if "HttpServletRequest" in src_param:
        imports.append("import javax.servlet.http.HttpServletRequest;")

    def render(body: list[str]) -> str:
        lines = imports + ["", f"public class {cls} {{",
                           f"    private static final Logger LOG = Logger.getLogger({cls}.class.getName());",
                           f'    private static final Set<String> ALLOWED = new HashSet<>(Arrays.asList("{ctx["col"]}", "id", "{ctx["other_col"]}"));',
                           f'    private static final String BASE_DIR = "{ctx["base"]}/";', ""]
        if ctx["comment"]:
            lines.append(f'    // {ctx["verb"].capitalize()}s {table} for the value supplied by the caller.')
        lines.append(f"    {method} {{")
        if setup:
            lines.append(f"        {setup}")
        lines.append(f"        String {v} = {source};")
        lines.append(f'        LOG.info("{ctx["verb"]} {table} for " + {v});')
        lines += [f"        {line}" if line else "" for line in body]
        lines += ["    }", "}"]
        return "\n".join(lines) + "\n"

    return render(vuln), render(safe), cwe


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _java_sql(rng: random.Random, ctx: dict, v: str) -> tuple[list[str], list[str], str]:
    t, col, cols = ctx["table"], ctx["col"], ctx["cols"]
    strategy = rng.choice(_SQL_STRATEGIES)
    setup, sink = rng.choice(_JAVA_QUERY_SINKS) if strategy != "dead" else _JAVA_QUERY_SINKS[0]
    stmt = list(setup)
    query = f"String sql = {_java_concat(rng, f'SELECT {cols} FROM {t} WHERE {col} = {{}}', v)};"
    run = [sink, "return rs;"]
    if strategy == "param":
        vuln = stmt + [query] + run
        safe = [f'String sql = "SELECT {cols} FROM {t} WHERE {col} = ?";',
                "PreparedStatement stmt = conn.prepareStatement(sql);", f"stmt.setString(1, {v});",
                "ResultSet rs = stmt.executeQuery();", "return rs;"]
        return vuln, safe, "ResultSet"
    if strategy == "int":
        q = f'String sql = "SELECT {cols} FROM {t} WHERE id = " + {v} + " LIMIT {ctx["limit"]}";'
        cast = rng.choice(_JAVA_NUMERIC).format(v=v)
        return stmt + [q] + run, stmt + [f"{v} = {cast};", q] + run, "ResultSet"
    if strategy == "allowlist":
        q = f'String sql = "SELECT {cols} FROM {t} ORDER BY " + {v};'
        check = f"if (!ALLOWED.contains({v})) {{"
        warn = f'    LOG.warning("unexpected sort column " + {v});'
        vuln = stmt + [check, warn, "}", q] + run
        safe = stmt + [check, warn, f'    {v} = "id";', "}", q] + run
        return vuln, safe, "ResultSet"
    if strategy == "constant":
        # As in Python: the safe variant replaces everything outside the allow-list by the default.
        vuln = stmt + [f'String fallback = "{ctx["default"]}";', f"if ({v} == null) {{", f"    {v} = fallback;", "}",
                       query] + run
        safe = stmt + [f'String fallback = "{ctx["default"]}";', f"if ({v} == null || !ALLOWED.contains({v})) {{",
                       f"    {v} = fallback;", "}", query] + run
        return vuln, safe, "ResultSet"
    cond_vuln = rng.choice((f"{v} != null", f"{v}.length() < 64", f"!{v}.isEmpty()"))
    cond_safe = rng.choice(("false", "1 > 2", f"{v} != null && false"))
    body = stmt + ["int count = 0;", "{cond}", f"    {query}", "    ResultSet rs = stmt.executeQuery(sql);",
                   "    while (rs.next()) { count++; }", "} else {",
                   f'    PreparedStatement ps = conn.prepareStatement("SELECT {cols} FROM {t} WHERE {col} = ?");',
                   f"    ps.setString(1, {v});", "    ResultSet rs = ps.executeQuery();",
                   "    while (rs.next()) { count++; }", "}", "return count;"]
    vuln = [line.replace("{cond}", f"if ({cond_vuln}) {{") for line in body]
    safe = [line.replace("{cond}", f"if ({cond_safe}) {{") for line in body]
    return vuln, safe, "int"


def _java_cmd(rng: random.Random, ctx: dict, v: str) -> tuple[list[str], list[str]]:
    tool = list(ctx["tool"])
    strategy = rng.choice(_CMD_STRATEGIES)
    cmd = f"String cmd = {_java_concat(rng, ' '.join(tool) + ' {}', v, quote=False)};"
    read = ["BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream()));",
            "return out.readLine();"]
    if strategy == "argv":
        argv = ", ".join(f'"{t}"' for t in tool)
        return ([cmd, "Process p = Runtime.getRuntime().exec(cmd);"] + read,
                [cmd, "LOG.fine(cmd);", f"Process p = new ProcessBuilder({argv}, {v}).start();"] + read)
    if strategy == "allowlist":
        check = f'if (!Arrays.asList("localhost", "db.internal").contains({v})) {{'
        vuln = [check, f'    LOG.warning("unknown host " + {v});', "}", cmd, "Process p = Runtime.getRuntime().exec(cmd);"]
        safe = [check, f'    throw new IllegalArgumentException("unknown host " + {v});', "}", cmd,
                "Process p = Runtime.getRuntime().exec(cmd);"]
        return vuln + read, safe + read
    vuln = [f"{v} = {v}.trim();", cmd, 'Process p = Runtime.getRuntime().exec(new String[] {"sh", "-c", cmd});']
    safe = [f"{v} = String.valueOf(Integer.parseInt({v}.trim()));", cmd,
            'Process p = Runtime.getRuntime().exec(new String[] {"sh", "-c", cmd});']
    return vuln + read, safe + read


def _java_path(rng: random.Random, ctx: dict, v: str) -> tuple[list[str], list[str]]:
    strategy = rng.choice(_PATH_STRATEGIES)
    path = f"File file = new File(BASE_DIR + {_java_concat(rng, '{}.txt', v, quote=False)});"
    read = ['return new String(Files.readAllBytes(file.toPath()), "UTF-8");']
    if strategy == "basename":
        return ([f"{v} = {v}.trim();", path] + read,
                [f"{v} = Paths.get({v}.trim()).getFileName().toString();", path] + read)
    if strategy == "prefix":
        check = ["String canonical = file.getCanonicalPath();", "if (!canonical.startsWith(BASE_DIR)) {"]
        vuln = [path] + check + ['    LOG.warning("outside base: " + canonical);', "}"] + read
        safe = [path] + check + ['    throw new SecurityException("outside base: " + canonical);', "}"] + read
        return vuln, safe
    return ([f'String defaultName = "{ctx["default"]}";', path] + read,
            [f'{v} = "{ctx["default"]}";', path] + read)
