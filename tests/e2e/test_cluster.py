"""The distributed deployment (`scripts/cluster.sh`) running the bundle, driven as a user would.

PostgreSQL, Redis, Airflow's CeleryExecutor with two Celery workers (`worker1`, `worker2`),
api-server, scheduler, dag-processor and triggerer are started once for the module. The DAGs are
triggered through the REST API with a JWT from the api-server (POST /auth/token). To keep the
module short, one set of runs carries every scenario:

1. two training runs at once (non-default params: GNN only, 1 epoch, tiny data, 2 graph shards),
   with the train tasks not deferrable (``STREAMGUARD_DEFERRABLE=false``: `train` starts the job,
   `wait` watches it in a worker slot), so that a worker is watching a running job; while one of
   their `wait` sensors runs, the worker running it is SIGKILLed. The scheduler
   notices the missing heartbeats (threshold set low for the test), the sensor is retried on the
   other worker and follows the detached training job, which outlived the worker, to its end;
   the killed worker is started again;
2. as soon as a champion exists, a retraining run (fine-tuning it for 1 epoch); while its `wait`
   sensor runs the scheduler is stopped and started again.

Needs PostgreSQL and Redis: installed from Debian's packages by scripts/install-cluster.sh when
missing (as root, which CI is); without root and without them the module is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamguard.backends.local import pid_alive
from streamguard.registry import RegistryClient
from tests.conftest import OPEN_GATE

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "scripts" / "cluster.sh"
WORKERS = ("worker1", "worker2")
TRAINING, RETRAINING = "streamguard_training", "streamguard_retraining"
GNN = "taint_flow_gnn"

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.cluster, pytest.mark.timeout(1800)]

TRAIN_CONF = {"models": ["gnn"], "sample_pairs": 20, "gnn_epochs": 1, "gnn_batch_size": 16, "prepare_shards": 2}
RETRAIN_CONF = {"models": ["gnn"], "force": True, "finetune_epochs": 1}
# The test's thresholds: a task whose worker died is failed after 20 s without heartbeats (default
# 300 s) and retried 2 s later (default 20 s); the rest is the deployment of deploy/airflow.env.
TEST_SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    # The DAG files do not change during the test: parse them once.
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
    "STREAMGUARD_RETRY_DELAY_SECONDS": "2",
    "STREAMGUARD_LOCAL_POKE_SECONDS": "1",
    "STREAMGUARD_GATE_THRESHOLDS": OPEN_GATE,
    # A worker watches each job (train starts it, wait watches it), so killing that worker kills a
    # watch; deferred, the triggerer would watch it instead (tests/test_e2e_resume.py runs that mode).
    "STREAMGUARD_DEFERRABLE": "false",
}


# --------------------------------------------------------------------------------------- servers
def servers_installed() -> bool:
    return (any(Path("/usr/lib/postgresql").glob("*/bin/postgres")) and shutil.which("redis-server") is not None
            and shutil.which("redis-cli") is not None)


def ensure_servers() -> None:
    if servers_installed():
        return
    if os.geteuid() != 0:
        pytest.skip("PostgreSQL and Redis are not installed and installing them needs root "
                    "(run scripts/install-cluster.sh as root, or apt-get install postgresql redis-server)")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "install-cluster.sh")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0 and servers_installed(), (
        "scripts/install-cluster.sh could not install PostgreSQL and Redis:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Api:
    """Airflow's REST API as a user's script calls it: a JWT from POST /auth/token, then /api/v2."""

    def __init__(self, base: str, password: str):
        import httpx

        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert token.status_code in (200, 201), token.text
        self.http = httpx.Client(base_url=f"{base}/api/v2", timeout=60,
                                 headers={"Authorization": f"Bearer {token.json()['access_token']}"})

    def get(self, path: str, **params) -> dict:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def trigger(self, dag_id: str, conf: dict) -> str:
        r = self.http.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        assert r.status_code == 200, f"trigger {dag_id}: {r.status_code} {r.text[:500]}"
        return r.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=200)["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        return self.get(path)["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        value = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                         deserialize=True)["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


@dataclass
class Cluster:
    state: Path
    env: dict
    api: Api
    events: dict = field(default_factory=dict)

    def sh(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run(["bash", str(CLUSTER), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"cluster.sh {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    def pid(self, component: str) -> int:
        return int((self.state / "pids" / f"{component}.pid").read_text())

    @property
    def home(self) -> Path:
        return self.state / "streamguard"

    def job_status(self, name: str) -> dict | None:
        path = self.home / "jobs" / name / "status.json"
        return json.loads(path.read_text()) if path.exists() else None

    def logs(self) -> str:
        out = []
        for log in sorted((self.state / "logs").glob("*.log")):
            out.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-1500:])
        return "\n".join(out)


def wait_until(what: str, check, timeout: float, cluster: Cluster, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{cluster.logs()}")


def finished(cluster: Cluster, dag_id: str, run_id: str) -> str | None:
    state = cluster.api.run_state(dag_id, run_id)
    return state if state in ("success", "failed") else None


@pytest.fixture(scope="module")
def cluster():
    ensure_servers()
    # Outside pytest's private temp dir: the postgres user must be able to reach its data dir.
    state = Path(tempfile.mkdtemp(prefix="sg-cluster-", dir="/tmp"))
    state.chmod(0o755)
    pg, redis, api, health, trig = free_ports(5)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "STREAMGUARD_")) and k not in ("PYTHONPATH",)}
    env.update(TEST_SETTINGS, STREAMGUARD_CLUSTER_DIR=str(state), STREAMGUARD_PYTHON=sys.executable,
               STREAMGUARD_CLUSTER_PG_PORT=str(pg), STREAMGUARD_CLUSTER_REDIS_PORT=str(redis),
               STREAMGUARD_CLUSTER_API_PORT=str(api), STREAMGUARD_CLUSTER_SCHEDULER_HEALTH_PORT=str(health),
               STREAMGUARD_CLUSTER_TRIGGERER_LOG_PORT=str(trig), STREAMGUARD_CLUSTER_WAIT_SECONDS="300")
    c = Cluster(state, env, api=None)  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        c.sh("up", timeout=900)
        c.events["up_s"] = time.monotonic() - started
        password = json.loads((state / "secrets" / "passwords.json").read_text())["admin"]
        c.api = Api(f"http://127.0.0.1:{api}", password)
        for dag_id in (TRAINING, RETRAINING):  # parsed by the dag-processor, paused at creation
            wait_until(f"{dag_id} parsed", lambda d=dag_id: c.api.http.get(f"/dags/{d}").status_code == 200, 240, c)
            r = c.api.http.patch(f"/dags/{dag_id}", json={"is_paused": False})
            assert r.status_code == 200, r.text
        yield c
    finally:
        subprocess.run(["bash", str(CLUSTER), "down"], env=env, capture_output=True, timeout=300)
        if not os.environ.get("STREAMGUARD_KEEP_CLUSTER"):
            shutil.rmtree(state, ignore_errors=True)


# ---------------------------------------------------------------------------------- the scenario
def running_wait(cluster: Cluster, runs: list[str]):
    """(run id, task instance) of a `gnn.wait` sensor running on a worker, with its job in progress."""
    for run_id in runs:
        for ti in cluster.api.task_instances(TRAINING, run_id):
            if ti["task_id"] == "gnn.wait" and ti["state"] == "running" and ti["hostname"] in WORKERS:
                job = cluster.api.xcom(TRAINING, run_id, "gnn.build_job", "job_name")
                status = cluster.job_status(job) or {}
                if status.get("TrainingJobStatus") == "InProgress" and pid_alive(status.get("Pid")):
                    return run_id, ti, job, status
    return None


@pytest.fixture(scope="module")
def scenario(cluster):
    c = cluster
    t0 = time.monotonic()
    runs = [c.api.trigger(TRAINING, dict(TRAIN_CONF, seed=seed)) for seed in (21, 22)]
    run_id, ti, job, status = wait_until("a gnn.wait sensor running with its job in progress",
                                         lambda: running_wait(c, runs), 600, c, every=0.5)
    victim = ti["hostname"]
    survivor = next(w for w in WORKERS if w != victim)
    os.killpg(c.pid(victim), signal.SIGKILL)
    killed_at = time.time()
    time.sleep(1.0)
    c.events.update(victim=victim, survivor=survivor, killed_run=run_id, killed_job=job, killed_try=ti["try_number"],
                    supervisor_pid=status["Pid"], supervisor_alive_after_kill=pid_alive(status["Pid"]),
                    killed_at=killed_at)

    def retried():
        tries = c.api.tries(TRAINING, run_id, "gnn.wait")
        later = [t for t in tries if t["try_number"] > ti["try_number"] and t["state"] in ("running", "success")]
        return later[0] if later else None

    wait_until("the killed sensor's retry", retried, 300, c)
    # The worker comes back (as a restarted container would), in the background.
    restart = subprocess.Popen(["bash", str(CLUSTER), "up", victim], env=c.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)

    # The retraining run starts as soon as a champion exists (the other training run may still be going).
    registry = RegistryClient((c.home / "registry").as_uri())
    wait_until("a champion", lambda: registry.get_alias(GNN, "champion"), 900, c, every=1)
    retrain = c.api.trigger(RETRAINING, RETRAIN_CONF)

    def retrain_waiting():
        return any(t["task_id"] == "gnn.wait" and t["state"] == "running"
                   for t in c.api.task_instances(RETRAINING, retrain))

    wait_until("the retraining run's gnn.wait sensor running", retrain_waiting, 600, c, every=0.5)
    before = c.pid("scheduler")
    c.sh("stop", "scheduler")
    c.events["scheduler_stopped_mid_run"] = c.api.run_state(RETRAINING, retrain) == "running"
    c.sh("up", "scheduler")
    c.events["scheduler_pids"] = (before, c.pid("scheduler"))

    states = [wait_until(f"training run {r}", lambda r=r: finished(c, TRAINING, r), 900, c, every=2) for r in runs]
    state = wait_until("the retraining run", lambda: finished(c, RETRAINING, retrain), 900, c, every=2)
    out, _ = restart.communicate(timeout=300)
    assert restart.returncode == 0, out
    c.events.update(training_runs=runs, training_states=states, retraining_run=retrain, retraining_state=state,
                    runs_s=time.monotonic() - t0)
    print(f"\ncluster timings: up {c.events['up_s']:.0f}s; two training runs and a retraining run, with a worker "
          f"kill and a scheduler restart, {c.events['runs_s']:.0f}s")
    return c


def all_tries(c: Cluster, dag_id: str, run_id: str) -> list[dict]:
    out = []
    for ti in c.api.task_instances(dag_id, run_id):
        out += c.api.tries(dag_id, run_id, ti["task_id"], ti["map_index"])
    return out


# ------------------------------------------------------------------------------------------ tests
def test_status_names_both_workers(cluster):
    out = cluster.sh("status")
    for worker in WORKERS:
        line = next(line for line in out.splitlines() if line.startswith(worker))
        assert "running" in line and f"celery@{worker}" in line
    for component in ("postgres", "redis", "api-server", "scheduler", "dag-processor", "triggerer"):
        assert any(line.startswith(component) and "running" in line for line in out.splitlines()), out


def test_both_training_runs_succeed_with_tasks_on_both_workers(scenario):
    c = scenario
    assert c.events["training_states"] == ["success", "success"], c.logs()
    hosts = set()
    for run_id in c.events["training_runs"]:
        tries = all_tries(c, TRAINING, run_id)
        hosts |= {t["hostname"] for t in tries}
        final = {(t["task_id"], t["map_index"]): t for t in c.api.task_instances(TRAINING, run_id)}
        # The non-default params took effect: the transformer was skipped, graphs built by 2 mapped tasks.
        assert final[("transformer.build_job", -1)]["state"] == "skipped"
        assert sorted(m for (task, m) in final if task == "build_graphs") == [0, 1]
        assert all(t["state"] in ("success", "skipped") for t in final.values())
        config = c.api.xcom(TRAINING, run_id, "resolve_config")
        assert config["models"] == ["gnn"] and config["per_model"]["gnn"]["epochs"] == 1
        assert config["sample_pairs"] == 20 and config["prepare_shards"] == 2
    assert set(WORKERS) <= hosts, f"task instances ran on {hosts}"


def test_two_concurrent_runs_register_distinct_complete_versions(scenario):
    c = scenario
    client = RegistryClient((c.home / "registry").as_uri())
    versions, unreadable = client.scan_versions(GNN)
    assert not unreadable, unreadable  # nothing half-written
    jobs = {c.api.xcom(TRAINING, r, "gnn.wait")["job_name"] for r in c.events["training_runs"]}
    trained = [v for v in versions if v.training_job_name in jobs]
    assert len(trained) == 2 and len({v.version for v in trained}) == 2
    assert len({v.training_job_name for v in trained}) == 2 and len({v.artifact_uri for v in trained}) == 2
    assert len({v.data_hash for v in trained}) == 2  # seeds 21 and 22: two data sets
    import hashlib

    from streamguard import storage

    for v in trained:
        assert v.status == "registered" and v.metrics["test"]["n"] > 0
        data = Path(storage.local_path(v.artifact_uri)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == v.artifact_sha256


def test_killed_worker_task_is_retried_on_the_other_worker_and_no_job_starts_twice(scenario):
    c = scenario
    e = c.events
    tries = {t["try_number"]: t for t in c.api.tries(TRAINING, e["killed_run"], "gnn.wait")}
    killed = tries[e["killed_try"]]
    assert killed["hostname"] == e["victim"] and killed["state"] not in ("success", "running")
    final = tries[max(tries)]
    assert final["state"] == "success" and final["hostname"] == e["survivor"]
    # One training job per run, never a second attempt (`-a2`): the retry reconnected.
    for run_id in e["training_runs"]:
        base = c.api.xcom(TRAINING, run_id, "gnn.build_job", "job_name")
        attempts = sorted(p.name for p in (c.home / "jobs").iterdir() if p.name.startswith(base))
        assert attempts == [base], attempts
    assert c.api.xcom(TRAINING, e["killed_run"], "gnn.wait")["job_name"] == e["killed_job"]


def test_detached_training_job_outlives_its_worker_and_the_other_worker_follows_it(scenario):
    c = scenario
    e = c.events
    assert e["supervisor_alive_after_kill"], "the training job died with the worker that started it"
    status = c.job_status(e["killed_job"])
    assert status["TrainingJobStatus"] == "Completed" and status["Pid"] == e["supervisor_pid"]
    from datetime import datetime

    ended = datetime.fromisoformat(status["TrainingEndTime"]).timestamp()
    assert ended > e["killed_at"], "the job had ended before the worker was killed"
    # The sensor that saw it to the end ran on the other worker.
    tries = c.api.tries(TRAINING, e["killed_run"], "gnn.wait")
    assert max(tries, key=lambda t: t["try_number"])["hostname"] == e["survivor"]


def test_retraining_via_rest_finishes_across_a_scheduler_restart(scenario):
    c = scenario
    e = c.events
    assert e["retraining_state"] == "success", c.logs()
    assert e["scheduler_stopped_mid_run"]
    before, after = e["scheduler_pids"]
    assert before != after and not pid_alive(before)
    final = {t["task_id"]: t for t in c.api.task_instances(RETRAINING, e["retraining_run"])}
    assert final["gnn.compare_and_promote"]["state"] == "success"
    assert final["transformer.decide"]["state"] in ("success", "skipped")  # not selected by `models`
    client = RegistryClient((c.home / "registry").as_uri())
    decisions = [ev.payload for ev in client.list_events(kind="retrain_decision")
                 if ev.payload.get("model_type") == "gnn"]
    assert decisions and decisions[-1]["retrain"] is True
    versions, unreadable = client.scan_versions(GNN)
    assert not unreadable and len(versions) == 3
    challenger = c.api.xcom(RETRAINING, e["retraining_run"], "gnn.wait")["job_name"]
    assert [v.training_job_name for v in versions].count(challenger) == 1  # recorded once, whatever the verdict
    base = c.api.xcom(RETRAINING, e["retraining_run"], "gnn.build_job", "job_name")
    assert sorted(p.name for p in (c.home / "jobs").iterdir() if p.name.startswith(base)) == [base]
