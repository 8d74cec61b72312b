"""The CWE of a finding, from the sink its taint path ends in (GNN) or the model's scope (transformer).

The models say *whether* code is vulnerable; the rule a finding is filed under comes from the
call at the sink line. The patterns name the APIs of each weakness class (JDBC / DB-API query
execution, process creation, file APIs, JNDI/LDAP search, XPath, HTTP response headers and
redirects, response writers). A sink no pattern knows is filed under CWE-20 (improper input
validation) rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    title: str
    severity: str  # GitHub code scanning's `security-severity` (CVSS-like, 0-10)


RULES = {r.id: r for r in (
    Rule("CWE-89", "SqlInjection", "SQL injection: untrusted data reaches a SQL query", "8.8"),
    Rule("CWE-78", "OsCommandInjection", "OS command injection: untrusted data reaches a command line", "9.8"),
    Rule("CWE-22", "PathTraversal", "Path traversal: untrusted data names a file", "7.5"),
    Rule("CWE-90", "LdapInjection", "LDAP injection: untrusted data reaches an LDAP query", "7.3"),
    Rule("CWE-643", "XPathInjection", "XPath injection: untrusted data reaches an XPath expression", "7.3"),
    Rule("CWE-113", "HttpResponseSplitting", "HTTP response splitting: untrusted data reaches a response header", "6.1"),
    Rule("CWE-601", "OpenRedirect", "Open redirect: untrusted data chooses a redirect target", "6.1"),
    Rule("CWE-79", "CrossSiteScripting", "Cross-site scripting: untrusted data is written to a web page", "6.1"),
    Rule("CWE-20", "UntrustedDataAtSink", "Untrusted data reaches a sensitive call", "5.0"),
)}

# Most specific first: a line `conn.prepareStatement(...)` is SQL, `new File(...)` a path.
_SINK_PATTERNS = (
    ("CWE-89", re.compile(r"\b(execute(Query|Update|Large\w*)?|executemany|executescript|prepare(Statement|Call)|"
                          r"addBatch|mogrify|raw|createQuery|createNativeQuery|query)\s*\(")),
    ("CWE-78", re.compile(r"\b(exec|ProcessBuilder|system|popen|Popen|spawn\w*|check_output|check_call|"
                          r"getoutput|getstatusoutput)\s*\(|\bsubprocess\.(run|call)\s*\(")),
    ("CWE-90", re.compile(r"\b(search|lookup)\s*\(.*|DirContext|ldap", re.I)),
    ("CWE-643", re.compile(r"\bxpath|\b(evaluate|compile|selectNodes|selectSingleNode)\s*\(", re.I)),
    ("CWE-113", re.compile(r"\b(setHeader|addHeader|Cookie|addCookie|set_cookie)\s*\(")),
    ("CWE-601", re.compile(r"\b(sendRedirect|redirect)\s*\(")),
    ("CWE-22", re.compile(r"\b(File|FileInputStream|FileOutputStream|FileReader|FileWriter|RandomAccessFile|"
                          r"open|Path|get)\s*\(|Paths\.get|os\.(remove|unlink|rmdir|makedirs)|shutil\.")),
    ("CWE-79", re.compile(r"\b(println|print|write|append|getWriter)\s*\(")),
)


def cwe_for_sink(line_text: str | None, *, path_sink: bool = False) -> str:
    """The rule id for the source line holding a sink (``path_sink``: the featurizer's path-sink flag)."""
    if path_sink:
        return "CWE-22"
    text = line_text or ""
    for cwe, rx in _SINK_PATTERNS:
        if rx.search(text):
            return cwe
    return "CWE-20"


_SQL_CALL = _SINK_PATTERNS[0][1]


def sql_call_line(lines: list[str], start: int) -> int:
    """First line (1-based, file numbering from ``start``) of a function that executes SQL; else ``start``."""
    for i, text in enumerate(lines):
        if _SQL_CALL.search(text):
            return start + i
    return start
