"""The run's source-dir tarball (`streamguard.sourcedir`), uploaded once per content."""

from __future__ import annotations

import tempfile
from pathlib import Path

from streamguard import storage
from streamguard.pipeline.records import SourcePackage, run_uri


def package_source(key: str) -> SourcePackage:
    """Build the deterministic source-dir tarball and upload it to ``<run>/code/<sha256[:12]>/``."""
    from streamguard.sourcedir import build_sourcedir_tarball

    with tempfile.TemporaryDirectory(prefix="sg-src-") as tmp:
        path, sha = build_sourcedir_tarball(Path(tmp) / "sourcedir.tar.gz")
        uri = run_uri(key, "code", sha[:12], "sourcedir.tar.gz")
        if not storage.exists(uri):
            storage.upload_file(str(path), uri)
    return SourcePackage(uri=uri, sha256=sha)
