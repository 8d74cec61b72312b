"""The credential scanner of the security tests: AWS keys, secret-key-shaped values, private keys and
account ids in text, reported redacted (first characters only), so a failure never re-leaks a secret.

``scan_text`` is a small pure function; ``scan_tree`` runs it over every text file under a folder
(the security test's run output, the browser test's server logs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The AWS Deep Learning Containers registry: a public account that serves the training images.
PUBLIC_ACCOUNTS = frozenset({"763104351884"})
# Obvious placeholders (moto's default account, all zeros), allowed in tests.
TEST_PLACEHOLDER_ACCOUNTS = frozenset({"123456789012", "000000000000"})
# Outside tests the all-zero account may name the local backend's stand-ins only: ARNs in the
# "local" region or of a resource named local (e.g. the local backend's role), never a real account.
LOCAL_STANDIN_ACCOUNT = "000000000000"

ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
# A 40-character base64 token on the same line as, and shortly after, the word "secret".
SECRET_KEY = re.compile(r"secret[^\n]{0,60}?(?<![A-Za-z0-9/+=])(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
                        re.IGNORECASE)
PRIVATE_KEY = re.compile("-----BEGIN " + r"(?:[A-Z0-9]+ )*PRIVATE KEY-----")
ARN_ACCOUNT = re.compile(r"arn:aws[a-z-]*:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>\d{12}):"
                         r"(?P<resource>[^\s\"'`,;)]*)")
ECR_ACCOUNT = re.compile(r"(?<!\d)(?P<account>\d{12})\.dkr\.ecr\.")

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt", ".h5", ".npy", ".npz"})
BINARY_SUFFIXES = frozenset({".safetensors", ".gz", ".tar", ".png", ".zip", ".whl"}) | PICKLE_SUFFIXES


@dataclass(frozen=True)
class Finding:
    """One suspicious string: where, what kind, and a redacted excerpt."""

    where: str
    line: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.kind}: {self.excerpt}"


def redact(value: str, keep: int = 4) -> str:
    """The first ``keep`` characters and the length: enough to find it, not enough to use it."""
    return f"{value[:keep]}…({len(value)} chars)"


def _account_allowed(account: str, *, in_tests: bool, region: str = "", resource: str = "") -> bool:
    if account in PUBLIC_ACCOUNTS:
        return True
    if in_tests and account in TEST_PLACEHOLDER_ACCOUNTS:
        return True
    return account == LOCAL_STANDIN_ACCOUNT and (region == "local" or "local" in resource.lower())


def _looks_random(token: str) -> bool:
    """A secret-access-key-shaped token mixes cases and digits/symbols (unlike hex digests or words)."""
    return (any(c.isupper() for c in token) and any(c.islower() for c in token)
            and any(c.isdigit() or c in "/+" for c in token))


def scan_text(text: str, where: str, *, in_tests: bool = False) -> list[Finding]:
    """Credentials and account ids in ``text``.

    Args:
        where: the name findings carry (a path, "stdout").
        in_tests: whether the text is test code, where the placeholder account ids are allowed.
    """
    findings: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in ACCESS_KEY_ID.finditer(line):
            findings.append(Finding(where, number, "AWS access key id", redact(match.group(0))))
        for match in SECRET_KEY.finditer(line):
            if _looks_random(match.group("value")):
                findings.append(Finding(where, number, "secret-key-shaped value", redact(match.group("value"))))
        if PRIVATE_KEY.search(line):
            findings.append(Finding(where, number, "private key block", "-----BEGIN …"))
        for match in ARN_ACCOUNT.finditer(line):
            if not _account_allowed(match.group("account"), in_tests=in_tests, region=match.group("region"),
                                    resource=match.group("resource")):
                findings.append(Finding(where, number, "account id in an ARN", redact(match.group("account"))))
        for match in ECR_ACCOUNT.finditer(line):
            if not _account_allowed(match.group("account"), in_tests=in_tests):
                findings.append(Finding(where, number, "account id in an ECR host", redact(match.group("account"))))
    return findings


def read_text(path: Path) -> str | None:
    """A file's text, or None for binary files (by suffix or a NUL byte)."""
    if path.suffix.lower() in BINARY_SUFFIXES:
        return None
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def scan_tree(root: Path, label: str) -> tuple[list[Finding], int]:
    """Scan every text file under ``root``; return the findings and how many files were read."""
    findings, scanned = [], 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = read_text(path)
        if text is None:
            continue
        scanned += 1
        findings += scan_text(text, f"{label}/{path.relative_to(root)}")
    return findings, scanned
