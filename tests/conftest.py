"""Test-session set-up: an isolated AIRFLOW_HOME / STREAMGUARD_HOME before anything imports airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="sg-test-home-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_HOME / "airflow"),
        "STREAMGUARD_HOME": str(_SESSION_HOME / "streamguard"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "STREAMGUARD_BACKEND": "local",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)
for var in ("STREAMGUARD_ARTIFACT_ROOT", "STREAMGUARD_REGISTRY_URI", "STREAMGUARD_LOCAL_JOBS_DIR"):
    os.environ.pop(var, None)
# DAG files import operators from plugins/ (Airflow puts the plugins folder on sys.path).
for extra in (REPO / "plugins", REPO / "dags"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


# The deployment setting that opens the gate: end-to-end runs train tiny models that could not pass
# the real thresholds, and the trigger form may only tighten the deployment's gate.
OPEN_GATE = json.dumps({m: {"min_val_accuracy": 0.0, "max_fpr": 1.0} for m in ("gnn", "transformer")})


def airflow_env(**overrides: str) -> dict[str, str]:
    """Environment for a subprocess that runs the `airflow` CLI against the session's home.

    The gate is opened by the deployment setting (`OPEN_GATE`); pass
    ``STREAMGUARD_GATE_THRESHOLDS=""`` to run with the real defaults.
    """
    env = dict(os.environ)
    env["STREAMGUARD_GATE_THRESHOLDS"] = OPEN_GATE
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's Airflow metadata DB once (SQLite in the temp AIRFLOW_HOME)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home

