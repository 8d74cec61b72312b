"""Hostile input cannot read, hang or crash anything.

Each test is one probe: a location outside the URI policy, worker files a data_uri should not
copy, inputs built to exhaust memory or block a reader, records built to crash a stage, and a
registry that cannot be written or holds a torn record.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from streamguard import storage
from streamguard.cli import main
from streamguard.data import io
from streamguard.data.prepare import PrepareError, prepare
from streamguard.feedback import ingest_feedback
from streamguard.pipeline.params import ParamError, resolve_retraining_config, resolve_training_config

TS = "2025-03-01T12:00:00Z"


def py(i: int, label: int = 1) -> str:
    if label:
        return f"def f{i}(cur, v):\n    cur.execute(\"SELECT * FROM t{i} WHERE a = '%s'\" % v)\n"
    return f"def f{i}(cur, v):\n    cur.execute(\"SELECT * FROM t{i} WHERE a = %s\", (v,))\n"


def rec(i: int, label: int = 1) -> dict:
    return {"code": py(i, label), "label": label, "language": "python"}


def fb(code: str, verdict: str = "confirmed") -> dict:
    return {"code": code, "verdict": verdict, "prediction": 1 if verdict in ("confirmed", "false_positive") else 0,
            "model_version": "taint_flow_gnn:3", "timestamp": TS}


def write_lines(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for line in lines:
            fh.write((line if isinstance(line, bytes) else
                      (line if isinstance(line, str) else json.dumps(line)).encode()) + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_bounded(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return in time."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds}s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


# ------------------------------------------------------------------------------- URI policy
REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "unsupported scheme 'http'"),
    ("https://example.com/data.jsonl", "unsupported scheme 'https'"),
    ("ftp://example.com/data.jsonl", "unsupported scheme 'ftp'"),
    ("memory://sg/raw", "unsupported scheme 'memory'"),
    ("simplecache::s3://bucket/raw.jsonl", "chained URLs"),
    ("s3://bucket/raw.jsonl::http://example.com/x", "chained URLs"),
    ("file://attacker.example/etc/passwd", "file URIs must be local"),
    ("file://localhost/etc/passwd", "file URIs must be local"),
    ("file:///data/raw.jsonl?x=1", "no ?query"),
    ("s3://user:pw@bucket/raw", "not a valid S3 bucket"),
    ("data/raw.jsonl", "relative path"),
]


@pytest.mark.parametrize("value, fragment", REFUSED)
def test_trigger_params_refuse_locations_outside_the_policy(value, fragment):
    with pytest.raises(ParamError, match=r"param 'data_uri'.*") as info:
        resolve_training_config({"data_uri": value})
    assert fragment in str(info.value)
    with pytest.raises(ParamError, match=r"param 'feedback_uri'") as info:
        resolve_retraining_config({"feedback_uri": value})
    assert fragment in str(info.value)


def test_trigger_params_accept_s3_local_and_empty(tmp_path):
    for value in ("", "s3://bucket/raw/", tmp_path.as_uri(), str(tmp_path)):
        assert resolve_training_config({"data_uri": value}).data_uri == value
        assert resolve_retraining_config({"feedback_uri": value}).feedback_uri == value


def test_configured_roots_restrict_trigger_inputs(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (tmp_path / "allowed-not").mkdir()
    monkeypatch.setenv("STREAMGUARD_INPUT_ROOTS", f"{allowed.as_uri()}, s3://bucket/data")
    assert resolve_training_config({"data_uri": (allowed / "sub").as_uri()}).data_uri
    assert resolve_training_config({"data_uri": "s3://bucket/data/2025/"}).data_uri
    outside = ["file:///etc", f"{allowed.as_uri()}/../allowed-not", (tmp_path / "allowed-not").as_uri(),
               "s3://bucket/database", "s3://other/data"]
    (allowed / "escape").symlink_to(tmp_path / "allowed-not")
    outside.append((allowed / "escape").as_uri())
    for value in outside:
        with pytest.raises(ParamError, match="outside the allowed input roots"):
            resolve_training_config({"data_uri": value})


def test_readers_refuse_other_schemes_without_a_request():
    """An http data_uri that skips param validation still reaches no server (so no redirect)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/raw.jsonl"
    try:
        with pytest.raises(PrepareError, match="unsupported scheme 'http'"):
            prepare([url], "/nonexistent/out")
        with pytest.raises(io.InputError, match="unsupported scheme 'http'"):
            ingest_feedback([url])
        with pytest.raises(io.InputError, match="chained URLs"):
            list(io.read_lines(f"simplecache::{url}"))
        with pytest.raises(ValueError, match="unsupported scheme 'http'"):
            storage.read_bytes(url)
        with pytest.raises(ValueError, match="unsupported scheme 'memory'"):
            storage.write_text("memory://x/y", "data")
        with pytest.raises(io.InputError, match="unsupported scheme 'memory'"):
            io.open_for_write("memory://x/y.jsonl")
    finally:
        server.shutdown()
    assert hits == []


# -------------------------------------------------------------------------- worker files
def test_directory_input_skips_hidden_files_and_folders(tmp_path):
    data = tmp_path / "data"
    write_lines(data / "a.jsonl", [rec(i, i % 2) for i in range(8)])
    write_lines(data / ".secrets" / "keys.jsonl", ['{"aws_secret_access_key": "s3cr3t"}'])
    write_lines(data / ".cache.jsonl", ["not json s3cr3t"])
    report = prepare([str(data)], str(tmp_path / "out"), with_graphs=False)
    assert [Path(f).name for f in report.files] == ["a.jsonl"] and report.kept == 8
    batch = ingest_feedback([str(data)])
    assert {Path(q["file"]).name for q in batch.quarantined} == {"a.jsonl"}


def test_dag_quarantine_keeps_no_text_of_lines_that_are_not_records(tmp_path):
    secret = "not-a-real-secret-0xC0FFEE"
    f = write_lines(tmp_path / "in" / "mixed.jsonl", [
        *[rec(i, i % 2) for i in range(6)],
        f"export AWS_ACCESS_KEY_ID={secret}",              # 7: not JSON at all
        f'["{secret}"]',                                     # 8: JSON, not an object
        {"aws_access_key_id": secret},                       # 9: an object that is no record
        {"code": "x = 1", "label": "maybe"},                 # 10: a record with a bad label: kept whole
        b"\xffbinary " + secret.encode(),                    # 11: not UTF-8
    ])
    out = tmp_path / "out"
    prepare([str(f)], str(out), with_graphs=False, auto_counterfactuals=False)  # the DAG's call
    text = (out / "quarantine.jsonl").read_text()
    assert secret not in text
    by_line = {e["line"]: e for e in read_jsonl(out / "quarantine.jsonl")}
    assert {n: by_line[n]["reason"] for n in (7, 8, 9, 10, 11)} == {
        7: "invalid_json", 8: "not_object", 9: "missing_code", 10: "bad_label", 11: "invalid_utf8"}
    line7 = f"export AWS_ACCESS_KEY_ID={secret}".encode()
    assert by_line[7]["length"] == len(line7)
    import hashlib

    assert by_line[7]["sha256"] == hashlib.sha256(line7).hexdigest() and "raw" not in by_line[7]
    assert by_line[10]["record"] == {"code": "x = 1", "label": "maybe"}
    # The command line, on the user's own files, keeps the text.
    assert main(["prepare", "--input", str(f), "--out", str(tmp_path / "cli"), "--no-graphs",
                 "--no-auto-counterfactuals"]) == 0
    assert secret in (tmp_path / "cli" / "quarantine.jsonl").read_text()
    # Feedback ingestion (the retraining DAG's) identifies such lines the same way.
    batch = ingest_feedback([str(f)])
    assert secret not in json.dumps(list(batch.quarantined))
    assert {q["line"] for q in batch.quarantined if "sha256" in q} >= {7, 8, 9, 11}


def test_dag_tasks_write_no_such_text_to_the_artifact_store(tmp_path, monkeypatch):
    """The training DAG's prepare_data and the retraining DAG's ingest_feedback task bodies."""
    from streamguard.pipeline.feedback_ingest import ingest
    from streamguard.pipeline.preparation import prepare_channels

    secret = "ghp_0123456789abcdefSECRET"
    monkeypatch.setenv("STREAMGUARD_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    data = write_lines(tmp_path / "worker" / "data.jsonl", [*[rec(i, i % 2) for i in range(8)], f"TOKEN={secret}"])
    feedback = write_lines(tmp_path / "worker-fb" / "fb.jsonl", [fb("a()"), f"TOKEN={secret}"])
    config = resolve_training_config({"data_uri": data.parent.as_uri(), "models": ["gnn"]})
    out = prepare_channels(config, "probe/run-1")
    assert out.report["quarantined"] == {"invalid_json": 1}
    result = ingest(resolve_retraining_config({"feedback_uri": feedback.as_uri()}), "probe/run-2")
    assert result["n_quarantined"] == 1
    stored = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert any(p.name == "quarantine.jsonl" for p in stored)
    assert not [p for p in stored if secret.encode() in p.read_bytes()]


# ------------------------------------------------------------------------------- memory
def test_over_long_line_is_quarantined_with_its_length_unread(tmp_path):
    f = write_lines(tmp_path / "a.jsonl", [rec(0, 1), b'{"code": "' + b"x" * 50_000 + b'"}', rec(1, 0),
                                           rec(2, 1), b"y" * 5000])  # the last one has no newline after it
    f.write_bytes(f.read_bytes().rstrip(b"\n"))
    report = prepare([str(f)], str(tmp_path / "out"), with_graphs=False, max_line_bytes=4096, keep_raw=True)
    assert report.kept == 3 and report.quarantined == {"line_too_long": 2}
    entries = read_jsonl(tmp_path / "out" / "quarantine.jsonl")
    assert [(e["line"], e["length"]) for e in entries] == [(2, 50_012), (5, 5000)]
    assert all("raw" not in e and "over the 4096-byte limit" in e["message"] for e in entries)


def test_line_cap_bounds_every_read(tmp_path):
    """Structural: the reader never asks for more than the cap (+ newline) in one piece."""
    f = tmp_path / "one-line.jsonl"
    f.write_bytes(b"z" * (3 << 20))
    asked: list[int] = []

    class Spy:
        def __init__(self, fh):
            self._fh = fh

        def readline(self, size=-1):
            asked.append(size)
            return self._fh.readline(size)

        def __getattr__(self, name):
            return getattr(self._fh, name)

    with open(f, "rb") as fh:
        reader = io._Reader(str(f), fh, max_line=1000, max_ratio=0)
        reader.fh = Spy(reader.fh)
        assert list(reader.lines()) == [(None, 3 << 20)]
    assert asked and all(0 < size <= 1 << 20 for size in asked)


@pytest.mark.parametrize("payload", [b"\0" * (12 << 20), b"{}\n" * (4 << 20)], ids=["zeros", "empty-objects"])
def test_gzip_bomb_is_refused_early(tmp_path, payload):
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(payload))
    with pytest.raises(PrepareError, match=r"inflates more than 200x.*decompression bomb"):
        prepare([str(bomb)], str(tmp_path / "out"), with_graphs=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(io.InputError, match="inflates more than"):
        ingest_feedback([str(bomb)])
    # The limit is configurable: with none, the same file is read (and quarantined line by line).
    first = next(io.read_lines(str(bomb), max_gzip_ratio=0, max_line_bytes=1 << 16))
    assert first.reason == "line_too_long" if payload[0] == 0 else first.record == {}


def test_ordinary_gzip_passes_and_spool_keeps_rows_on_disk(tmp_path):
    from streamguard.data.synthetic import generate_samples, write_samples

    f = tmp_path / "sample.jsonl.gz"
    records = generate_samples(n_pairs=2000, seed=1)
    write_samples(f, records)
    assert sum(1 for _ in io.read_lines(str(f))) == len(records)
    from streamguard.data.quarantine import Spool

    spool = Spool()
    for i in range(5000):
        spool.append({"file": "f", "line": i, "reason": "r"})
    assert len(spool) == 5000 and spool[4999]["line"] == 4999 and spool._fh.tell() > 5000 * 20
    assert spool.reasons == {"r": 5000}


def test_fifos_sockets_and_devices_are_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.jsonl"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for path, kind in ((fifo, "a FIFO"), (sock_path, "a socket"), (Path("/dev/zero"), "a character device")):
            with pytest.raises(PrepareError, match=f"is {kind}, not a regular file"):
                run_bounded(lambda p=path: prepare([str(p)], str(tmp_path / "out")))
            with pytest.raises(io.InputError, match=f"is {kind}"):
                run_bounded(lambda p=path: list(io.read_lines(str(p))))
        folder = tmp_path / "dir"
        write_lines(folder / "a.jsonl", [rec(0)])
        os.mkfifo(folder / "b.jsonl")
        with pytest.raises(io.InputError, match=r"b\.jsonl: is a FIFO"):
            run_bounded(lambda: ingest_feedback([str(folder)]))
        assert run_bounded(lambda: main(["feedback", "check", str(fifo)])) == 2
        with pytest.raises(ValueError, match="not a regular file"):
            run_bounded(lambda: storage.download(fifo.as_uri(), tmp_path / "copy"))
        with pytest.raises(ValueError, match="not a regular file"):
            run_bounded(lambda: storage.read_bytes(str(fifo)))
    finally:
        sock.close()


# ------------------------------------------------------------------------------- crashes
DEEP = "[" * 1000 + "]" * 1000


def test_deeply_nested_json_is_quarantined_everywhere(tmp_path, capsys):
    f = write_lines(tmp_path / "deep.jsonl", [*[rec(i, i % 2) for i in range(6)], DEEP,
                                              '{"code": ' + "[" * 200 + "]" * 200 + "}"])
    report = prepare([str(f)], str(tmp_path / "out"), with_graphs=False)
    assert report.kept == 6 and report.quarantined == {"too_deep": 2}
    feedback = write_lines(tmp_path / "fb.jsonl", [fb("a()"), DEEP, fb("b()", "missed")])
    batch = ingest_feedback([str(feedback)])
    assert len(batch.records) == 2 and [q["line"] for q in batch.quarantined] == [2]
    assert "nested too deeply" in batch.quarantined[0]["reason"]
    assert main(["feedback", "check", str(feedback)]) == 1
    assert f"{feedback}:2: invalid JSON: nested too deeply" in capsys.readouterr().err
    dest = tmp_path / "pushed"
    assert main(["feedback", "push", str(feedback), "--to", dest.as_uri()]) == 0
    # A decoded object handed over directly is validated without a crash too.
    nested: dict = {}
    node = nested
    for _ in range(5000):
        node["code"] = {}
        node = node["code"]
    assert len(ingest_feedback([nested]).quarantined) == 1


def test_counterfactual_failure_keeps_the_record_and_the_run(tmp_path):
    huge = 'def f(cur, a):\n    cur.execute("SELECT * FROM t WHERE x = " + ' + "+".join(["a"] * 3000) + ")\n"
    f = write_lines(tmp_path / "a.jsonl", [*[rec(i, i % 2) for i in range(8)],
                                           {"id": "huge", "code": huge, "label": 1, "language": "python"}])
    report = prepare([str(f)], str(tmp_path / "out"), with_graphs=False)
    assert report.kept == 9 and report.augmented["failed_auto"] == 1 and report.augmented["auto"] >= 4
    (entry,) = read_jsonl(tmp_path / "out" / "quarantine.jsonl")
    assert entry["reason"] == "auto_counterfactual_failed" and entry["line"] == 9 and entry["id"] == "huge"
    assert "RecursionError" in entry["message"] and "kept without one" in entry["message"]
    written = [r["id"] for s in ("train", "validation", "test")
               for r in read_jsonl(tmp_path / "out" / s / "data.jsonl")]
    assert "huge" in written


def test_graph_failure_quarantines_that_record_only(tmp_path, monkeypatch):
    import streamguard.core.graphs as graphs

    real = graphs.build_graph

    def build(code, language):
        if "t3 " in code:
            raise RecursionError("maximum recursion depth exceeded")
        return real(code, language)

    monkeypatch.setattr(graphs, "build_graph", build)
    f = write_lines(tmp_path / "a.jsonl", [rec(i, i % 2) for i in range(8)])
    report = prepare([str(f)], str(tmp_path / "out"), auto_counterfactuals=False)
    assert report.graphs["errors"] == 1 and report.graphs["built"] == 7
    (entry,) = read_jsonl(tmp_path / "out" / "quarantine.jsonl")
    assert entry["reason"] == "graph_failed" and entry["line"] == 4 and "RecursionError" in entry["message"]


# ------------------------------------------------------------------------------ registry
def test_read_only_registry_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from streamguard.registry import RegistryClient
    from streamguard.registry.local import LocalStore

    client = RegistryClient(str(tmp_path / "reg"))
    client.register("taint_flow_gnn", model_type="gnn", artifact_uri="file:///m.tar.gz",
                    artifact_sha256="a" * 64, metrics={"test": {"accuracy": 0.9}},
                    training_job_name="job-1", backend="local", data_hash="d" * 64, code_version="t",
                    hyperparameters={}, gate={"passed": True, "reasons": []}, status="registered")
    if os.geteuid() != 0:
        for path in [tmp_path / "reg", *(tmp_path / "reg").rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
    else:  # root ignores permission bits: make the store's writes fail the way a read-only directory does
        from streamguard.registry import local as local_store

        def denied(self, path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        def write_denied(path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(local_store, "write_temp_beside", write_denied)
        monkeypatch.setattr(local_store, "write_bytes_atomic", write_denied)
        monkeypatch.setattr(LocalStore, "_locked", denied)
    try:
        code = main(["registry", "promote", "taint_flow_gnn", "1", "--uri", str(tmp_path / "reg")])
    finally:
        for path in [tmp_path / "reg", *(tmp_path / "reg").rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Permission denied" in err and "read-only" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
