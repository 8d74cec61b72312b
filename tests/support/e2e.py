"""Running the bundle's DAGs end to end with `airflow dags test`, as a user does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import airflow_env

# Tiny but real: a few dozen records, one or two epochs, gates open so models register.
TINY_TRAINING_CONF = {
    "sample_pairs": 30,
    "gnn_epochs": 2,
    "transformer_epochs": 1,
    "gnn_batch_size": 16,
    "transformer_batch_size": 16,
    "gnn_min_val_accuracy": 0.0,
    "transformer_min_val_accuracy": 0.0,
    "max_fpr": 1.0,
}


def run_dags_test(dag_id: str, conf: dict, home: Path, *, timeout: int = 900, **env) -> subprocess.CompletedProcess:
    """`airflow dags test DAG_ID -c CONF` with STREAMGUARD_HOME=home; output captured as text."""
    home.mkdir(parents=True, exist_ok=True)
    environment = airflow_env(STREAMGUARD_HOME=str(home), STREAMGUARD_LOCAL_POKE_SECONDS="1", **env)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, "-c", json.dumps(conf)],
        env=environment, capture_output=True, text=True, timeout=timeout,
    )
    (home / f"{dag_id}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    return proc


# The test files that read the shared training run (the `training_run_shared` fixture in
# tests/conftest.py): xdist schedules them as one unit under this name, so the run happens once.
SHARED_RUN_GROUP = "shared-training-run"
SHARED_RUN_FILES = frozenset({"tests/e2e/test_e2e_training_local.py", "tests/repo/test_security.py"})


def shared_training_run(root: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One `airflow dags test streamguard_training` with ``TINY_TRAINING_CONF`` (both models), its own
    StreamGuard home ``root/streamguard`` and task-log folder ``root/task-logs``; ``(home, logs, proc)``.

    Read by the local end-to-end checks (registry, summary) and by the repository's security checks
    (no credentials in the output and logs, weights only as safetensors), which used to run the same
    DAG twice for it.
    """
    home, logs = root / "streamguard", root / "task-logs"
    proc = run_dags_test("streamguard_training", TINY_TRAINING_CONF, home, AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(logs))
    return home, logs, proc


def succeeded(proc: subprocess.CompletedProcess) -> bool:
    out = proc.stdout + proc.stderr
    return proc.returncode == 0 and "state=success" in out and "state=failed" not in out


def tail(proc: subprocess.CompletedProcess, n: int = 6000) -> str:
    return (proc.stdout + proc.stderr)[-n:]
