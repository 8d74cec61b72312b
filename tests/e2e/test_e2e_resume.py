"""`airflow dags test streamguard_training` with its training process killed mid-run: the run resumes itself.

While the DAG runs, the test kills the GNN training process (SIGKILL, as the OOM killer or a lost
instance would) right after its first epoch checkpoint reached ``CheckpointConfig``. Nobody clears
anything: `gnn.train`, deferred while its job runs (`airflow dags test` runs the trigger
in-process), fails with the job's reason; Airflow retries it, the retry starts ``<job>-a2`` from
the same request, the entry resumes from the checkpoint, `gnn.wait` only watches that attempt,
and the run finishes with the resumed job registered.
"""

from __future__ import annotations

import json
import signal
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from streamguard import storage  # noqa: E402
from streamguard.backends.local import LocalTrainingBackend, kill_group  # noqa: E402
from streamguard.lifecycle import attempt_job_name  # noqa: E402
from streamguard.registry import RegistryClient  # noqa: E402
from tests.support.e2e import TINY_TRAINING_CONF, run_dags_test, succeeded, tail  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

EPOCHS = 6


def _checkpoint_epoch(home: Path) -> int | None:
    for state in (home / "artifacts" / "runs").rglob("checkpoints/gnn/checkpoint.json"):
        try:
            return json.loads(state.read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return None
    return None


def _kill_after_first_checkpoint(home: Path, done: threading.Event, found: dict) -> None:
    """Find the GNN training job, wait for its first epoch checkpoint, SIGKILL its training process."""
    backend = LocalTrainingBackend(home / "jobs")
    while not done.is_set():
        jobs = [p.name for p in (home / "jobs").glob("sg-gnn-*") if "-eval-" not in p.name]
        if jobs and _checkpoint_epoch(home):
            (name,) = jobs
            pid = backend.describe_training_job(name).get("ChildPid")
            if pid and kill_group(pid, signal.SIGKILL):
                found.update(job=name, killed_after_epoch=_checkpoint_epoch(home))
                return
        time.sleep(0.05)


def test_a_killed_training_job_is_resumed_by_the_retry_and_registered(airflow_db, tmp_path):
    conf = dict(TINY_TRAINING_CONF, models=["gnn"], sample_pairs=300, gnn_epochs=EPOCHS, gnn_batch_size=8)
    done, found = threading.Event(), {}
    killer = threading.Thread(target=_kill_after_first_checkpoint, args=(tmp_path, done, found), daemon=True)
    killer.start()
    try:
        proc = run_dags_test("streamguard_training", conf, tmp_path, STREAMGUARD_LOCAL_CHECKPOINT_SYNC_S="0.2")
    finally:
        done.set()
        killer.join(timeout=10)
    out = proc.stdout + proc.stderr
    assert found.get("job"), "the GNN training process was never killed: " + tail(proc)
    job = found["job"]
    assert succeeded(proc), tail(proc)

    # The train task failed with the job's reason, and said what its retry would do.
    assert f"training job {job} Failed: AlgorithmError" in out and "killed by signal 9" in out
    assert "a retry of this task starts the next attempt" in out
    # Its retry started <job>-a2, which resumed from the checkpoint instead of starting over.
    second = attempt_job_name(job, 2)
    resumed = LocalTrainingBackend(tmp_path / "jobs").job_log_path(second).read_text()
    saved = next(int(line.split("Resuming from epoch ")[1].split()[0].rstrip(":,."))
                 for line in resumed.splitlines() if "Resuming from epoch " in line)
    assert 1 <= found["killed_after_epoch"] <= saved < EPOCHS, resumed[-3000:]
    assert f"Epoch {saved}/{EPOCHS}:" not in resumed  # a saved epoch is not trained again

    # The registered version is the resumed job's, with one history row per epoch, none repeated.
    (version,) = RegistryClient((tmp_path / "registry").as_uri()).list_versions("taint_flow_gnn")
    assert version.training_job_name == second
    with tarfile.open(storage.local_path(version.artifact_uri)) as tar:
        history = json.load(tar.extractfile("history.json"))
    epochs = [h["epoch"] for h in history]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > saved
