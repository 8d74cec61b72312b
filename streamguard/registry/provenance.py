"""Provenance of registry records: the bundle's code version (artifact hashes: `streamguard.core.archive`)."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The version of the code that trained a model.

    ``$STREAMGUARD_CODE_VERSION`` when set (a deployment can stamp it), else ``git describe`` of
    the checkout holding this package (``git:<describe>``), else the package version (``pkg:<v>``).
    """
    if os.environ.get("STREAMGUARD_CODE_VERSION"):
        return os.environ["STREAMGUARD_CODE_VERSION"]
    bundle = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(
            ["git", "-C", str(bundle), "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=5, check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            return f"git:{result.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass  # no git binary or not a checkout: fall back to the package version
    from streamguard import __version__

    return f"pkg:{__version__}"
