"""`streamguard serve`: the registry's model behind /ping and /invocations, and the errors that refuse to serve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from tests.support.serving_fixtures import GNN_NAME, SAFE_PY, TRANSFORMER_NAME, VULN_JAVA, VULN_PY, register

pytestmark = pytest.mark.slow


def http(url: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": content_type} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


@pytest.fixture
def serving(trained_models):
    """Start an in-process server for a router; yields a function that returns its base URL."""
    from streamguard.serving.server import make_server

    servers = []

    def start(router) -> str:
        server = make_server(router, "127.0.0.1", 0, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_champion_is_served_with_the_registry_version(trained_models, serving, tmp_path):
    from streamguard.serving.models import load_registered
    from streamguard.serving.server import Router, Variant

    handler = load_registered(f"{GNN_NAME}@champion", trained_models["registry"], workdir=tmp_path)
    base = serving(Router([Variant("default", handler, 1.0)]))
    status, body, _ = http(base + "/ping")
    assert status == 200 and body["variants"][0]["model_version"] == f"{GNN_NAME}@1"
    status, body, headers = http(base + "/invocations", json.dumps(
        {"instances": [{"id": "a", "code": VULN_PY}, {"id": "b", "code": SAFE_PY}, {"code": 7}]}).encode())
    assert status == 200, body
    a, b, bad = body["predictions"]
    assert a["id"] == "a" and a["model_version"] == f"{GNN_NAME}@1" and a["sink_line"] == 6
    assert b["taint_reaches_sink"] is False and 0 <= b["score"] <= 1
    assert bad["error"].startswith("instance 2:") and bad["score"] is None
    assert len(headers["X-StreamGuard-Request-Id"]) == 64
    # One bare object is accepted too.
    status, body, _ = http(base + "/invocations", json.dumps({"code": VULN_JAVA, "language": "java"}).encode())
    assert status == 200 and len(body["predictions"]) == 1 and body["predictions"][0]["sink_line"] == 4
    # Errors of the request as a whole: status and reason, never a dropped connection.
    assert http(base + "/invocations", b"{oops")[:2][0] == 400
    status, body, _ = http(base + "/invocations", b"a,b", content_type="text/csv")
    assert status == 415 and "unsupported content type" in body["error"]
    status, body, _ = http(base + "/invocations", json.dumps({"instances": [{"code": "x"}] * 600}).encode())
    assert status == 413 and "limit is 512" in body["error"]
    assert http(base + "/nope")[0] == 404


def run_cli(*argv: str, capsys) -> tuple[int, str]:
    from streamguard.cli import main

    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_models_that_must_not_be_served_are_refused_with_a_reason(trained_models, tmp_path, capsys, monkeypatch):
    from streamguard.registry import RegistryClient

    monkeypatch.setenv("STREAMGUARD_HOME", str(tmp_path / "home"))
    reg = trained_models["registry"]
    rc, err = run_cli("serve", "--model", "no_such_model@champion", "--registry", reg, capsys=capsys)
    assert rc == 2 and "no_such_model" in err and "hint:" in err
    rc, err = run_cli("serve", "--model", f"{GNN_NAME}@staging", "--registry", reg, capsys=capsys)
    assert rc == 2 and "has no alias 'staging'" in err
    rc, err = run_cli("serve", "--model", f"{GNN_NAME}@99", "--registry", reg, capsys=capsys)
    assert rc == 2 and "99" in err

    # A fresh registry so the shared one keeps its versions: a rejected model, and a tampered one.
    client = RegistryClient((tmp_path / "registry").as_uri())
    src = trained_models["gnn"]["archive"]
    rejected = tmp_path / "rejected" / "model.tar.gz"
    tampered = tmp_path / "tampered" / "model.tar.gz"
    for dest in (rejected, tampered):
        dest.parent.mkdir(parents=True)
        shutil.copyfile(src, dest)
    ok = register(client, GNN_NAME, "gnn", tampered, "job-tampered")
    bad = register(client, GNN_NAME, "gnn", rejected, "job-rejected", status="rejected")
    rc, err = run_cli("serve", "--model", f"{GNN_NAME}@{bad.version}", "--registry", client.uri, capsys=capsys)
    assert rc == 2 and "rejected by the gate" in err and "test: rejected" in err
    with open(tampered, "ab") as fh:
        fh.write(b"\0")
    rc, err = run_cli("serve", "--model", f"{GNN_NAME}@{ok.version}", "--registry", client.uri, capsys=capsys)
    assert rc == 2 and "sha256" in err and "refusing to serve it" in err
    assert not list((tmp_path / "home").rglob("config.json")), "nothing of the tampered archive was unpacked"


def _sigint_as_in_a_terminal() -> None:
    """SIGINT back to its default in the server process, as a user's shell gives it: a test run started
    in the background by a non-interactive shell ignores SIGINT, and an ignored SIGINT is inherited (so
    Python would never raise KeyboardInterrupt in the server)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_streamguard_serve_process_answers_invocations(trained_models, tmp_path):
    """The CLI as a user runs it: a separate process on a free port, stopped with SIGINT."""
    env = dict(os.environ, STREAMGUARD_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "streamguard.cli", "serve", "--model", f"{TRANSFORMER_NAME}@champion",
                             "--registry", trained_models["registry"], "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                            preexec_fn=_sigint_as_in_a_terminal)
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        started = json.loads(first)
        base = started["listening"]
        assert base.startswith("http://127.0.0.1:")
        assert http(base + "/ping")[0] == 200
        status, body, _ = http(base + "/invocations", json.dumps({"instances": [{"code": VULN_PY}]}).encode())
        assert status == 200
        (pred,) = body["predictions"]
        assert pred["model_version"] == f"{TRANSFORMER_NAME}@1" and isinstance(pred["anomaly_score"], float)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0
