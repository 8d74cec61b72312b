"""Small Java and Python snippets for the graph featurizer tests: (code, taint reaches a sink?)."""

from __future__ import annotations

JAVA: dict[str, tuple[str, bool]] = {
    "concat_into_executeQuery": ('''class A { void f(HttpServletRequest request, Statement stmt) throws Exception {
  String q = "SELECT * FROM users WHERE id = '" + request.getParameter("id") + "'";
  stmt.executeQuery(q);
}}''', True),
    "prepared_statement": ('''class A { void f(HttpServletRequest request, Connection c) throws Exception {
  PreparedStatement ps = c.prepareStatement("SELECT * FROM users WHERE id = ?");
  ps.setString(1, request.getParameter("id"));
  ps.executeQuery();
}}''', False),
    "if_false": ('''class A { void f(HttpServletRequest request, Statement stmt) throws Exception {
  String d = request.getParameter("id");
  if (false) { stmt.executeQuery("SELECT * FROM users WHERE id='" + d + "'"); }
}}''', False),
    "if_5_eq_7": ('''class A { void f(HttpServletRequest request, Statement stmt) throws Exception {
  String d = request.getParameter("id");
  if (5 == 7) { stmt.executeQuery("SELECT " + d); }
}}''', False),
    "juliet_static_final_false": ('''class A { void f(HttpServletRequest request, Statement stmt) throws Exception {
  String d = request.getParameter("id");
  if (IO.STATIC_FINAL_FALSE) { stmt.executeQuery("SELECT " + d); }
}}''', False),
    "own_static_final_false": ('''class A { private static final boolean DEBUG = false;
 void f(HttpServletRequest request, Statement stmt) throws Exception {
  String d = request.getParameter("id");
  if (DEBUG) { stmt.executeQuery("SELECT " + d); }
}}''', False),
    "own_static_final_true": ('''class A { private static final boolean DEBUG = true;
 void f(HttpServletRequest request, Statement stmt) throws Exception {
  String d = request.getParameter("id");
  if (DEBUG) { stmt.executeQuery("SELECT " + d); }
}}''', True),
    "juliet_private_five": ('''class A { void f(Statement stmt) throws Exception {
  String data;
  if (privateFive != 5) { data = System.getenv("ADD"); } else { data = "foo"; }
  stmt.executeQuery("SELECT " + data);
}}''', False),
    "overwritten_by_constant": ('''class A { void f(HttpServletRequest request, Statement stmt) throws Exception {
  String data = request.getParameter("id");
  data = "foo";
  stmt.executeQuery("SELECT " + data);
}}''', False),
    "helper_sink": ('''class A { void run(HttpServletRequest request) throws Exception {
  String data = request.getParameter("id");
  badSink(data);
 }
 private void badSink(String data) throws Exception {
  Statement s = IO.getDBConnection().createStatement();
  s.executeQuery("SELECT " + data);
 }
}''', True),
    "helper_returns_source": ('''class A {
 private String source(HttpServletRequest request) { return request.getParameter("id"); }
 void run(HttpServletRequest request, Statement s) throws Exception {
  String data = source(request);
  s.executeQuery("SELECT " + data);
}}''', True),
    "helper_returns_constant": ('''class A { private String source(HttpServletRequest request) {
  String unused = request.getParameter("id"); return "foo"; }
 void run(HttpServletRequest request, Statement s) throws Exception {
  String data = source(request);
  s.executeQuery("SELECT " + data);
}}''', False),
    "list_safe_index": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  LinkedList<String> list = new LinkedList<String>();
  list.add(request.getParameter("id"));
  list.add("safe");
  String x = list.get(1);
  s.executeQuery("SELECT " + x);
}}''', False),
    "list_tainted_index": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  LinkedList<String> list = new LinkedList<String>();
  list.add(request.getParameter("id"));
  list.add("safe");
  String x = list.get(0);
  s.executeQuery("SELECT " + x);
}}''', True),
    "map_safe_key": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  HashMap<Integer, String> m = new HashMap<Integer, String>();
  m.put(0, request.getParameter("id"));
  m.put(1, "foo");
  s.executeQuery("SELECT " + m.get(1));
}}''', False),
    "switch_constant_safe": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  String d;
  switch (6) { case 6: d = "foo"; break; default: d = request.getParameter("id"); break; }
  s.executeQuery("SELECT " + d);
}}''', False),
    "switch_constant_tainted": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  String d;
  switch (6) { case 6: d = request.getParameter("id"); break; default: d = "foo"; break; }
  s.executeQuery("SELECT " + d);
}}''', True),
    "while_true_break": ('''class A { void f(Statement s) throws Exception {
  String d = "";
  while (true) { d = System.getProperty("user.home"); break; }
  s.executeQuery("SELECT " + d);
}}''', True),
    "loop_carried": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  String q = "SELECT 1";
  for (int i = 0; i < 3; i++) { s.executeQuery(q); q = request.getParameter("id"); }
}}''', True),
    "sanitized_in_loop": ('''class A { void f(HttpServletResponse response) throws Exception {
  String data = System.getenv("ADD");
  for (int k = 0; k < 1; k++) {
    data = URLEncoder.encode(data, "UTF-8");
    response.addHeader("Location", "/a.jsp?lang=" + data);
  }
}}''', False),
    "field_between_methods": ('''class A { private String dataRun;
 private void sink(Statement stmt) throws Exception { String data = dataRun; stmt.executeQuery("S" + data); }
 public void run(HttpServletRequest request) throws Throwable { dataRun = request.getParameter("a"); sink(null); } }''',
                              True),
    "string_builder": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  StringBuilder sb = new StringBuilder("SELECT * FROM u WHERE id=");
  sb.append(request.getParameter("id"));
  s.execute(sb.toString());
}}''', True),
    "parse_int": ('''class A { void f(HttpServletRequest request, Statement s) throws Exception {
  int id = Integer.parseInt(request.getParameter("id"));
  s.executeQuery("SELECT * FROM u WHERE id=" + id);
}}''', False),
    "os_command": ('''class A { void f() throws Exception {
  String c = System.getenv("X");
  Runtime.getRuntime().exec("ls " + c);
}}''', True),
    "bare_method_param": ('''public ResultSet find(Connection conn, String name) throws SQLException {
    Statement st = conn.createStatement();
    return st.executeQuery("SELECT * FROM users WHERE name = '" + name + "'");
}''', True),
    "bare_method_prepared": ('''public ResultSet find(Connection conn, String name) throws SQLException {
    PreparedStatement ps = conn.prepareStatement("SELECT * FROM users WHERE name = ?");
    ps.setString(1, name);
    return ps.executeQuery();
}''', False),
}

PYTHON: dict[str, tuple[str, bool]] = {
    "percent_into_execute": ('''def view(cursor):
    cursor.execute("SELECT * FROM users WHERE id = '%s'" % request.args["id"])
''', True),
    "parameterized": ('''def view(cursor):
    uid = request.args["id"]
    cursor.execute("SELECT * FROM users WHERE id = %s", (uid,))
''', False),
    "if_false": ('''def view(cursor):
    uid = request.args["id"]
    if False:
        cursor.execute("SELECT * FROM users WHERE id = " + uid)
''', False),
    "while_false": ('''def view(cursor):
    uid = request.args["id"]
    while 0:
        cursor.execute("SELECT * FROM users WHERE id = " + uid)
''', False),
    "module_constant": ('''DEBUG = False

def view(cursor):
    uid = request.args["id"]
    if DEBUG and uid:
        cursor.execute("SELECT * FROM users WHERE id = " + uid)
''', False),
    "overwritten_by_constant": ('''def view(cursor):
    uid = request.args["id"]
    uid = "42"
    cursor.execute("SELECT * FROM users WHERE id = " + uid)
''', False),
    "helper_function": ('''def run(cursor, q):
    cursor.execute(q)

def view(cursor):
    uid = request.form.get("id")
    run(cursor, "SELECT * FROM users WHERE id = " + uid)
''', True),
    "helper_method": ('''class View:
    def run(self, q):
        self.cur.execute(q)

    def get(self):
        uid = request.form.get("id")
        self.run(f"SELECT * FROM users WHERE id = {uid}")
''', True),
    "list_safe_index": ('''def view(cursor):
    vals = [request.args["id"], "safe"]
    cursor.execute("SELECT * FROM users WHERE id = " + vals[1])
''', False),
    "list_tainted_index": ('''def view(cursor):
    vals = [request.args["id"], "safe"]
    cursor.execute("SELECT * FROM users WHERE id = " + vals[0])
''', True),
    "append_safe_index": ('''def view(cursor):
    vals = []
    vals.append(request.args["id"])
    vals.append("safe")
    cursor.execute("SELECT * FROM users WHERE id = " + vals[1])
''', False),
    "dict_safe_key": ('''def view(cursor):
    d = {"a": os.environ["X"], "b": "safe"}
    cursor.execute("SELECT * FROM users WHERE id = " + d["b"])
''', False),
    "dict_tainted_key": ('''def view(cursor):
    d = {"a": os.environ["X"], "b": "safe"}
    cursor.execute("SELECT * FROM users WHERE id = " + d.get("a"))
''', True),
    "int_sanitizer": ('''def view(cursor):
    uid = int(request.args["id"])
    cursor.execute("SELECT * FROM users WHERE id = %d" % uid)
''', False),
    "entry_parameter": ('''def get_user(cur, name):
    cur.execute("SELECT * FROM users WHERE name = '" + name + "'")
    return cur.fetchall()
''', True),
    "entry_parameter_bound": ('''def get_user(cur, name):
    cur.execute("SELECT * FROM users WHERE name = %s", (name,))
    return cur.fetchall()
''', False),
    "wrapper_with_placeholder": ('''def page(name):
    rows = db.query("SELECT * FROM pages WHERE name = $1", name)
    return rows
''', False),
    "wrapper_statement_second": ('''def posts(self, postid):
    text = "SELECT * FROM post WHERE id = %d" % (postid)
    return sql.queryDB(self.conn, text)
''', True),
    "loop_kill": ('''def view(cursor, items):
    q = request.args["q"]
    for i in items:
        q = "x"
        cursor.execute("SELECT " + q)
''', False),
    "f_string": ('''def view(cursor):
    name = input()
    cursor.execute(f"SELECT * FROM users WHERE name = '{name}'")
''', True),
    "str_format": ('''def view(cursor):
    name = input()
    cursor.execute("SELECT * FROM users WHERE name = '{}'".format(name))
''', True),
    "self_attribute_between_methods": ('''class A:
    def load(self):
        self.name = request.args["n"]

    def find(self, cur):
        cur.execute("SELECT * FROM users WHERE name = '%s'" % self.name)
''', True),
    "os_system": ('''import os, sys
os.system("ls " + sys.argv[1])
''', True),
    "global_between_functions": ('''QUERY = ""

def load():
    global QUERY
    QUERY = "SELECT * FROM users WHERE name = '" + input() + "'"

def run(cur):
    cur.execute(QUERY)
''', True),
}

# ------------------------------------------------------------------------- sanitizing patterns
# Path basenames are sanitizers for path sinks only; a membership test on a constant allow-list
# sanitizes the variable on the path where it holds; an argv with a literal program runs no shell.
_J = '''import java.io.*; import java.nio.file.*; import java.sql.*; import java.util.*;
class A {{ private static final Set<String> ALLOWED = new HashSet<>(Arrays.asList("id", "name"));
 Object f(HttpServletRequest request, Statement stmt) throws Exception {{
  String v = request.getParameter("v");
{body}
 }}
}}'''


def _java(body: str) -> str:
    return _J.format(body=body)


JAVA.update({
    "path_trim_only": (_java('  v = v.trim();\n  return new FileInputStream(new File("/srv/files/" + v));'), True),
    "path_paths_get_file_name": (_java(
        '  v = Paths.get(v.trim()).getFileName().toString();\n'
        '  return new FileInputStream(new File("/srv/files/" + v + ".txt"));'), False),
    "path_path_of_file_name": (_java(
        '  String n = Path.of(v).getFileName().toString();\n  return new FileReader("/srv/" + n);'), False),
    "path_new_file_get_name": (_java(
        '  String n = new File(v).getName();\n  return new FileInputStream(new File("/srv/files/", n));'), False),
    "path_filename_utils": (_java(
        '  String n = FilenameUtils.getName(v);\n  return new FileInputStream("/srv/files/" + n);'), False),
    "basename_is_no_sql_sanitizer": (_java(
        '  String n = Paths.get(v).getFileName().toString();\n'
        '  return stmt.executeQuery("SELECT * FROM t WHERE name = \'" + n + "\'");'), True),
    "allowlist_warn_only": (_java(
        '  if (!ALLOWED.contains(v)) {\n    System.err.println("unexpected " + v);\n  }\n'
        '  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'), True),
    "allowlist_overwrite": (_java(
        '  if (!ALLOWED.contains(v)) {\n    System.err.println("unexpected " + v);\n    v = "id";\n  }\n'
        '  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'), False),
    "allowlist_throw": (_java(
        '  if (!ALLOWED.contains(v)) {\n    throw new IllegalArgumentException("bad column " + v);\n  }\n'
        '  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'), False),
    "allowlist_return": (_java(
        '  if (!ALLOWED.contains(v)) return null;\n  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'),
        False),
    "allowlist_positive": (_java(
        '  if (ALLOWED.contains(v)) {\n    return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);\n  }\n'
        '  return null;'), False),
    "allowlist_positive_else_branch": (_java(
        '  if (ALLOWED.contains(v)) {\n    return null;\n  } else {\n'
        '    return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);\n  }'), True),
    "allowlist_null_or_outside": (_java(
        '  String fallback = "id";\n  if (v == null || !ALLOWED.contains(v)) {\n    v = fallback;\n  }\n'
        '  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'), False),
    "default_only_when_null": (_java(
        '  String fallback = "id";\n  if (v == null) {\n    v = fallback;\n  }\n'
        '  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'), True),
    "allowlist_inline_as_list": (_java(
        '  if (!Arrays.asList("localhost", "db.internal").contains(v)) {\n    throw new SecurityException(v);\n  }\n'
        '  return Runtime.getRuntime().exec("ping " + v);'), False),
    "allowlist_grown_from_input": (_java(
        '  ALLOWED.add(request.getParameter("extra"));\n  if (!ALLOWED.contains(v)) {\n    return null;\n  }\n'
        '  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'), True),
    "allowlist_of_request_values": (_java(
        '  List<String> allowed = Arrays.asList(request.getParameterValues("ok"));\n'
        '  if (!allowed.contains(v)) {\n    return null;\n  }\n'
        '  return stmt.executeQuery("SELECT * FROM t ORDER BY " + v);'), True),
    "process_builder_literal_program": (_java(
        '  return new ProcessBuilder("ping", "-c", "1", v).start();'), False),
    "process_builder_shell": (_java('  return new ProcessBuilder("sh", "-c", "ping " + v).start();'), True),
    "process_builder_tainted_program": (_java('  return new ProcessBuilder(v, "-c", "1").start();'), True),
})

PYTHON.update({
    "path_strip_only": ('''import os
BASE = "/srv/files"
def read(request):
    name = request.args["f"].strip()
    return open(os.path.join(BASE, name + ".txt")).read()
''', True),
    "path_basename": ('''import os
BASE = "/srv/files"
def read(request):
    name = os.path.basename(request.args["f"].strip())
    return open(os.path.join(BASE, "%s.txt" % name)).read()
''', False),
    "path_pathlib_name": ('''import os, pathlib
def read(request):
    name = pathlib.Path(request.args["f"]).name
    return open("/srv/files/" + name).read()
''', False),
    "path_secure_filename": ('''from werkzeug.utils import secure_filename
def save(request):
    name = secure_filename(request.args["f"])
    return open("/srv/uploads/" + name, "wb")
''', False),
    "basename_is_no_sql_sanitizer": ('''import os
def find(cursor, request):
    name = os.path.basename(request.args["f"])
    cursor.execute("SELECT * FROM files WHERE name = '%s'" % name)
''', True),
    "path_realpath_prefix_raise": ('''import os
BASE_DIR = "/srv/reports/"
def read(request):
    path = os.path.realpath(os.path.join(BASE_DIR, request.args["f"]))
    if not path.startswith(BASE_DIR):
        raise PermissionError(path)
    return open(path).read()
''', False),
    "path_prefix_warn_only": ('''import os
BASE_DIR = "/srv/reports/"
def read(request):
    path = os.path.realpath(os.path.join(BASE_DIR, request.args["f"]))
    if not path.startswith(BASE_DIR):
        print("outside base: " + path)
    return open(path).read()
''', True),
    "path_prefix_not_normalised": ('''import os
BASE_DIR = "/srv/reports/"
def read(request):
    path = os.path.join(BASE_DIR, request.args["f"])
    if not path.startswith(BASE_DIR):
        raise PermissionError(path)
    return open(path).read()
''', True),
    "allowlist_warn_only": ('''ALLOWED = ("id", "name")
def find(cursor, request):
    key = request.args.get("sort", "")
    if key not in ALLOWED:
        print("unexpected sort column: " + key)
    cursor.execute(f"SELECT * FROM t ORDER BY {key}")
''', True),
    "allowlist_overwrite": ('''ALLOWED = ("id", "name")
def find(cursor, request):
    key = request.args.get("sort", "")
    if key not in ALLOWED:
        print("unexpected sort column: " + key)
        key = "id"
    cursor.execute(f"SELECT * FROM t ORDER BY {key}")
''', False),
    "allowlist_raise": ('''ALLOWED = frozenset({"id", "name"})
def find(cursor, request):
    key = request.args.get("sort", "")
    if key not in ALLOWED:
        raise ValueError("bad column " + key)
    cursor.execute("SELECT * FROM t ORDER BY " + key)
''', False),
    "allowlist_return": ('''ALLOWED = ["id", "name"]
def find(cursor, request):
    key = request.args.get("sort", "")
    if not key in ALLOWED:
        return None
    cursor.execute("SELECT * FROM t ORDER BY %s" % key)
''', False),
    "allowlist_positive": ('''def find(cursor, request):
    key = request.args.get("sort", "")
    if key in ("id", "name") and len(key) < 10:
        cursor.execute("SELECT * FROM t ORDER BY " + key)
''', False),
    "allowlist_positive_else_branch": ('''def find(cursor, request):
    key = request.args.get("sort", "")
    if key in ("id", "name"):
        pass
    else:
        cursor.execute("SELECT * FROM t ORDER BY " + key)
''', True),
    "allowlist_empty_or_outside": ('''ALLOWED = ("id", "name")
def find(cursor, request):
    key = request.args.get("sort", "")
    fallback = "id"
    if not key or key not in ALLOWED:
        key = fallback
    cursor.execute("SELECT * FROM t ORDER BY {}".format(key))
''', False),
    "default_only_when_empty": ('''def find(cursor, request):
    key = request.args.get("sort", "")
    fallback = "id"
    if not key:
        key = fallback
    cursor.execute("SELECT * FROM t ORDER BY {}".format(key))
''', True),
    "allowlist_grown_from_input": ('''ALLOWED = ["id", "name"]
def find(cursor, request):
    ALLOWED.append(request.args["extra"])
    key = request.args.get("sort", "")
    if key not in ALLOWED:
        return None
    cursor.execute("SELECT * FROM t ORDER BY " + key)
''', True),
    "allowlist_of_request_values": ('''def find(cursor, request):
    allowed = request.args.getlist("ok")
    key = request.args.get("sort", "")
    if key not in allowed:
        return None
    cursor.execute("SELECT * FROM t ORDER BY " + key)
''', True),
    "subprocess_argv_literal_program": ('''import subprocess, sys
def check():
    host = sys.argv[1]
    return subprocess.run(["ping", "-c", "1", host], capture_output=True).stdout
''', False),
    "subprocess_constant_tool_plus_arg": ('''import subprocess, sys
TOOL = ["nslookup"]
def check():
    host = sys.argv[1]
    return subprocess.run(TOOL + [host], capture_output=True).stdout
''', False),
    "subprocess_argv_with_shell": ('''import subprocess, sys
def check():
    host = sys.argv[1]
    return subprocess.run(["ping " + host], shell=True).stdout
''', True),
    "subprocess_shell_program": ('''import subprocess, sys
def check():
    host = sys.argv[1]
    return subprocess.run(["sh", "-c", "ping " + host]).stdout
''', True),
    "subprocess_shell_string": ('''import subprocess, sys
def check():
    cmd = "ping -c 1 " + sys.argv[1]
    return subprocess.run(cmd, shell=True).stdout
''', True),
})
