"""A small source tree with known vulnerable and safe functions, for `streamguard scan` tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

APP_PY = textwrap.dedent('''\
    import sqlite3

    from flask import request


    def find_user(cur):
        name = request.args.get("name")
        query = "SELECT * FROM users WHERE name = '" + name + "'"
        cur.execute(query)
        return cur.fetchall()


    def find_user_safe(cur):
        name = request.args.get("name")
        cur.execute("SELECT * FROM users WHERE name = ?", (name,))
        return cur.fetchall()


    class Repo:
        def by_id(self, cur, item_id):
            cur.execute("SELECT * FROM items WHERE id = '" + item_id + "'")
            return cur.fetchone()
''')
# find_user: source line 7, sink line 9; Repo.by_id: parameter source line 20, sink line 21.
DAO_JAVA = textwrap.dedent('''\
    import java.sql.*;

    public class UserDao {
        public ResultSet find(Connection conn, String user) throws SQLException {
            Statement st = conn.createStatement();
            String q = "SELECT * FROM users WHERE name = '" + user + "'";
            return st.executeQuery(q);
        }

        public ResultSet findSafe(Connection conn, String user) throws SQLException {
            PreparedStatement ps = conn.prepareStatement("SELECT * FROM users WHERE name = ?");
            ps.setString(1, user);
            return ps.executeQuery();
        }
    }
''')
# find: parameter source line 4, sink line 7.
SAFE_PY = textwrap.dedent('''\
    def total(rows):
        return sum(r["amount"] for r in rows)
''')
EXPECTED_SINKS = {("src/app.py", "find_user"): 9, ("src/app.py", "by_id"): 21, ("src/UserDao.java", "find"): 7}
SAFE_FUNCTIONS = {("src/app.py", "find_user_safe"), ("src/UserDao.java", "findSafe"), ("src/util.py", "total")}


def make_project(root: Path, *, with_bad_files: bool = True) -> Path:
    """``root/src`` with the files above, plus an ignored file, a vendored dir and unreadable files."""
    src = root / "src"
    src.mkdir(parents=True)
    (src / "app.py").write_text(APP_PY)
    (src / "UserDao.java").write_text(DAO_JAVA)
    (src / "util.py").write_text(SAFE_PY)
    (src / "README.txt").write_text("not code\n")
    (root / ".gitignore").write_text("build/\n*_generated.py\n")
    (src / "schema_generated.py").write_text(APP_PY)          # ignored by .gitignore
    (root / "build").mkdir()
    (root / "build" / "copy.py").write_text(APP_PY)            # ignored directory
    (src / "vendor" / "lib").mkdir(parents=True)
    (src / "vendor" / "lib" / "dep.py").write_text(APP_PY)     # vendored
    if with_bad_files:
        (src / "latin1.py").write_bytes("# caf\xe9\nx = 1\n".encode("latin-1"))  # not UTF-8
        (src / "gone.py").symlink_to(root / "does-not-exist.py")                   # dangling link
    return root
