"""Browser-test helpers: a throw-away Airflow and headless Chromium under Playwright.

The Airflow (api-server, scheduler, dag-processor) runs in a temp AIRFLOW_HOME. Each process gets
its own process group (``start_new_session``), so stopping a group also ends the task processes it
spawned; local training jobs, which run in sessions of their own, are stopped through their status
records. No password is stored in the repository: each server gets a fresh random admin password,
written to its own password file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import OPEN_GATE

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("STREAMGUARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
ADMIN_USER = "admin"
# The Airflow processes of a test server; the scheduler runs tasks with the LocalExecutor.
AIRFLOW_COMMANDS = (("api-server", "--workers", "1"), ("scheduler",), ("dag-processor",))


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing or cannot start; the message says which and how to fix it."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_bin() -> Path:
    """The directory holding this venv's ``airflow`` script (prepended to PATH of every process)."""
    return Path(sys.executable).parent


@dataclass
class AirflowServer:
    """A local Airflow with the bundle's DAGs and plugins in its own AIRFLOW_HOME.

    Args:
        root: temp directory for AIRFLOW_HOME, STREAMGUARD_HOME and the process logs.
        port: API server port (None: a free one).
    """

    root: Path
    port: int | None = None
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    procs: list[subprocess.Popen] = field(default_factory=list)
    # Shared by the API server (signs UI and task tokens) and the scheduler's task workers.
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False, init=False)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False, init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.home = self.root / "airflow"
        self.streamguard_home = self.root / "streamguard"
        self.logs = self.root / "logs"
        for path in (self.home, self.streamguard_home, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.password_file = self.home / "simple_auth_manager_passwords.json.generated"
        # The simple auth manager keeps passwords it finds in this file: a real login with a known,
        # per-run password instead of the one it would generate and print.
        self.password_file.write_text(json.dumps({ADMIN_USER: self.password}) + "\n")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for every Airflow process of this server."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW__", "STREAMGUARD_")) and k != "AIRFLOW_HOME"}
        env.update(
            {
                "PATH": f"{airflow_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": str(REPO / "plugins"),
                "AIRFLOW_HOME": str(self.home),
                "STREAMGUARD_HOME": str(self.streamguard_home),
                "STREAMGUARD_BACKEND": "local",
                # This server runs no triggerer: `train` starts its job and `wait` watches it.
                "STREAMGUARD_DEFERRABLE": "false",
                "STREAMGUARD_GATE_THRESHOLDS": OPEN_GATE,
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # A few task processes at a time (the two training branches run in parallel): the
                # machine may be a shared 2-core one.
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__API__SECRET_KEY": self.secret_key,
                "STREAMGUARD_LOCAL_POKE_SECONDS": "2",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "OMP_NUM_THREADS": "1",
            }
        )
        return env

    def run_cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command against this home; raise with its output when it fails."""
        proc = subprocess.run(["airflow", *args], env=self.env(), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"`airflow {' '.join(args)}` exited {proc.returncode}:\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def start(self) -> None:
        """Migrate the DB, start the processes in their own process groups, wait for the API server."""
        self.run_cli("db", "migrate")
        env = self.env()
        for command in AIRFLOW_COMMANDS:
            log = open(self.logs / f"{command[0]}.log", "wb")
            try:
                self.procs.append(subprocess.Popen(["airflow", *command], env=env, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True,
                                                   cwd=self.root))
            finally:
                log.close()  # the child holds its own descriptor
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 180) -> None:
        """Wait until ``/api/v2/monitor/health`` answers; fail early when a process has died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        raise TimeoutError(f"API server on {self.base_url} not healthy after {timeout:.0f}s\n{self.log_tails()}")

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed these DAGs into the DB (raise naming the missing ones)."""
        deadline, missing = time.monotonic() + timeout, set(dag_ids)
        token = self.token()
        while time.monotonic() < deadline:
            self.check_alive()
            parsed = {d["dag_id"] for d in self.request("GET", "/api/v2/dags?limit=100", token=token)["dags"]}
            missing = set(dag_ids) - parsed
            if not missing:
                return
            time.sleep(2)
        errors = self.request("GET", "/api/v2/importErrors", token=token)
        raise TimeoutError(f"DAGs {sorted(missing)} not parsed after {timeout:.0f}s; import errors: "
                           f"{errors.get('import_errors')}\n{self.log_tails()}")

    def check_alive(self) -> None:
        """Raise (with the process logs) when one of the Airflow processes has exited."""
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(map(str, proc.args))}` exited {proc.returncode}\n{self.log_tails()}")

    def log_tails(self, chars: int = 2500) -> str:
        """The end of every process log, for failure messages."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self, grace: float = 20) -> None:
        """Stop the Airflow process groups (SIGTERM, SIGKILL after ``grace`` s), then any local training job.

        Local training jobs run in sessions of their own (they outlive task processes by design), so
        killing the Airflow groups does not reach them: they are stopped through their status records.
        """
        for proc in self.procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs:
            # Also the group's other members (task runners, training jobs) that outlive the leader.
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        stop_local_jobs(self.streamguard_home / "jobs")

    # --- REST API ---------------------------------------------------------------------------------
    def token(self) -> str:
        """A JWT for the admin user from ``POST /auth/token``."""
        body = self.request("POST", "/auth/token", {"username": ADMIN_USER, "password": self.password}, token=None)
        return body["access_token"]

    def request(self, method: str, path: str, payload: Any = None, token: str | None = "auto") -> Any:
        """One JSON request to the API server; raises with the response body on an HTTP error."""
        if token == "auto":
            token = self.token()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path}: HTTP {error.code}: {error.read()[:2000]!r}") from None

    def dag_runs(self, dag_id: str, token: str) -> list[dict]:
        """Every run of a DAG (``GET /api/v2/dags/{dag_id}/dagRuns``)."""
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100", token=token)["dag_runs"]

    def wait_for_run(self, dag_id: str, timeout: float, poll: float = 5) -> dict:
        """Wait for the DAG's (single) run to finish; return the run record.

        Raises:
            AssertionError: the run failed, naming the failed tasks.
            TimeoutError: still not finished after ``timeout`` seconds.
        """
        deadline, token, token_age = time.monotonic() + timeout, self.token(), time.monotonic()
        last: dict = {}
        while time.monotonic() < deadline:
            self.check_alive()
            if time.monotonic() - token_age > 600:
                token, token_age = self.token(), time.monotonic()
            runs = self.dag_runs(dag_id, token)
            if runs:
                last = runs[-1]
                if last["state"] in ("success", "failed"):
                    if last["state"] == "failed":
                        raise AssertionError(f"run {last['dag_run_id']} failed: {self.task_states(last, token)}\n"
                                             f"{self.log_tails()}")
                    return last
            time.sleep(poll)
        states = self.task_states(last, token) if last else "no run"
        raise TimeoutError(f"{dag_id} not finished after {timeout:.0f}s: {states}\n{self.log_tails()}")

    def task_states(self, run: dict, token: str) -> dict[str, str]:
        """``{task_id[:map_index]: state}`` of one run, for failure messages."""
        path = f"/api/v2/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}/taskInstances?limit=100"
        instances = self.request("GET", path, token=token)["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in instances}


def stop_local_jobs(jobs_dir: Path, wait_s: float = 10) -> list[str]:
    """Stop every local training job under ``jobs_dir`` that is still active; return their names.

    Asks each job to stop through the backend (its supervisor records Stopped), then SIGKILLs the
    supervisor's and the training process's groups if they are still there.
    """
    from streamguard.backends.local import LocalTrainingBackend, kill_group, pid_alive
    from streamguard.jobs.record import TERMINAL_STATES

    if not jobs_dir.is_dir():
        return []
    backend, stopped = LocalTrainingBackend(jobs_dir), []
    for summary in backend.list_training_jobs():
        name = summary["TrainingJobName"]
        status = backend.describe_training_job(name)
        if status["TrainingJobStatus"] in TERMINAL_STATES:
            continue
        stopped.append(name)
        status = backend.stop_training_job(name, wait_s=wait_s)
        for key in ("Pid", "ChildPid"):
            pid = status.get(key)
            if pid and pid_alive(pid) and _belongs_to(pid, name, backend.job_dir(name)):
                kill_group(pid, signal.SIGKILL)
    return stopped


def _belongs_to(pid: int, job_name: str, job_dir: Path) -> bool:
    """Whether a live pid is this job's process, not a reused pid.

    The supervisor's command line names the job; the training script runs inside the job directory.
    """
    proc = Path("/proc") / str(pid)
    try:
        if job_name in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
            return True
        return Path(os.readlink(proc / "cwd")).resolve().is_relative_to(job_dir.resolve())
    except OSError:
        return False


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


def launch_chromium(playwright: Any) -> Any:
    """Start Debian's headless Chromium through Playwright.

    Raises:
        BrowserUnavailable: Chromium is missing or does not start.
    """
    if not CHROMIUM.exists():
        raise BrowserUnavailable(f"{CHROMIUM} not found: run `bash scripts/install-browser.sh` (as root, apt-get "
                                 "installs Debian's chromium)")
    try:
        return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), timeout=60_000)
    except Exception as error:  # noqa: BLE001 - any launch failure means "no usable browser here"
        raise BrowserUnavailable(f"{CHROMIUM} did not start under Playwright: {error}") from error


def import_playwright() -> Any:
    """``playwright.sync_api.sync_playwright``, or BrowserUnavailable saying how to install it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise BrowserUnavailable(f"playwright is not installed in {sys.prefix}: run "
                                 f"`bash scripts/install-browser.sh` ({error})") from error
    return sync_playwright


class Screenshots:
    """Numbered full-page screenshots in ``directory``, copied to ``$STREAMGUARD_SCREENSHOTS`` on ``publish``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page_or_element: Any, name: str) -> Path:
        """Screenshot a page (full page) or one element (e.g. a region inside the plugin's iframe)."""
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        if hasattr(page_or_element, "goto"):
            page_or_element.screenshot(path=str(path), full_page=True)
        else:
            page_or_element.screenshot(path=str(path))
        self.taken.append(path)
        return path

    def publish(self) -> Path | None:
        """Copy the screenshots to ``$STREAMGUARD_SCREENSHOTS`` when set; return that directory."""
        target = os.environ.get("STREAMGUARD_SCREENSHOTS")
        if not target:
            return None
        out = Path(target)
        out.mkdir(parents=True, exist_ok=True)
        for path in self.taken:
            shutil.copy2(path, out / path.name)
        return out
