"""Which files `streamguard scan` reads: Java and Python sources, minus `.gitignore`d and vendored paths.

Paths named on the command line are always scanned. Below a directory, a file is skipped when
git ignores it (``git check-ignore``, inside a work tree; elsewhere the ``.gitignore`` files met on
the way down, read with pathspec's gitignore rules) or when it lies in a vendored or generated
directory (``vendor/``, ``node_modules/``, ``third_party/``, virtualenvs, ...). Every skip is
counted; files that cannot be read are reported, never dropped.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

EXTENSIONS = {".py": "python", ".java": "java"}
VENDORED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "vendor", "vendors", "third_party", "third-party",
                           "thirdparty", "site-packages", "dist-packages", ".venv", "venv", ".tox", ".nox",
                           "__pycache__", ".mypy_cache", ".pytest_cache", "bower_components"})


@dataclass
class Discovery:
    files: list[tuple[Path, str]] = field(default_factory=list)   # (path, language)
    ignored: list[Path] = field(default_factory=list)               # .gitignore'd
    vendored: list[Path] = field(default_factory=list)              # under a vendored directory
    missing: list[tuple[Path, str]] = field(default_factory=list)   # (path, reason)


def _git_ignored(root: Path, candidates: list[Path]) -> set[Path] | None:
    """The candidates git ignores, or None when ``root`` is not in a git work tree (or git is missing)."""
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if top.returncode != 0 or not candidates:
        return None if top.returncode != 0 else set()
    proc = subprocess.run(["git", "-C", str(root), "check-ignore", "-z", "--stdin"],
                          input="\0".join(str(p) for p in candidates) + "\0", capture_output=True, text=True,
                          timeout=120)
    if proc.returncode not in (0, 1):  # 1: nothing ignored
        return None
    return {Path(p).resolve() for p in proc.stdout.split("\0") if p}


def _pathspec_ignored(root: Path, candidates: list[Path]) -> set[Path]:
    """Outside git: every `.gitignore` from ``root`` down applies to the paths below its directory."""
    import pathspec

    specs = []
    ancestors = []
    for parent in root.parents:  # .gitignore files above the scanned directory apply too
        ancestors.append(parent / ".gitignore")
        if (parent / ".git").exists():
            break
    for gitignore in [a for a in reversed(ancestors) if a.is_file()] + sorted(root.rglob(".gitignore")):
        try:
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        specs.append((gitignore.parent.resolve(), pathspec.GitIgnoreSpec.from_lines(lines)))
    out = set()
    for path in candidates:
        for base, spec in specs:
            if path.is_relative_to(base) and spec.match_file(path.relative_to(base).as_posix()):
                out.add(path)
                break
    return out


def discover(paths: list[str | Path]) -> Discovery:
    """Expand files and directories into the source files to scan."""
    found = Discovery()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            lang = EXTENSIONS.get(path.suffix.lower())
            if lang is None:
                found.missing.append((path, f"not a Java or Python file (extension {path.suffix or 'none'})"))
            else:
                found.files.append((path, lang))
            continue
        if not path.is_dir():
            found.missing.append((path, "no such file or directory"))
            continue
        root = path.resolve()
        candidates: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: found.missing.append(
                (Path(e.filename or root), f"cannot list directory: {e.strerror}"))):
            keep = []
            for d in sorted(dirnames):
                if d in VENDORED_DIRS or (Path(dirpath, d) / "pyvenv.cfg").is_file():
                    found.vendored.append(Path(dirpath, d))
                else:
                    keep.append(d)
            dirnames[:] = keep
            for name in sorted(filenames):
                if Path(name).suffix.lower() in EXTENSIONS:
                    candidates.append(Path(dirpath, name))
        ignored = _git_ignored(root, candidates)
        if ignored is None:
            ignored = _pathspec_ignored(root, candidates)
        for candidate in candidates:
            if candidate.resolve() in ignored:
                found.ignored.append(candidate)
            else:
                rel = Path(raw) / candidate.relative_to(root)
                found.files.append((rel, EXTENSIONS[candidate.suffix.lower()]))
    return found
