"""`streamguard feedback check|push`: every rejected line named, nothing usable never pushed."""

from __future__ import annotations

import gzip
import json

import pytest

from streamguard import storage
from streamguard.cli import main

GOOD = [
    {"code": "cursor.execute('SELECT * FROM t WHERE id=' + uid)", "verdict": "confirmed", "model_version": "3",
     "timestamp": "2026-11-01T00:00:00Z", "prediction": 1},
    {"code": "total = price * qty", "verdict": "correct", "model_version": "3",
     "timestamp": "2026-11-01T00:00:00Z", "prediction": 0},
]


def _write(path, lines: list) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


BAD_LINES = [
    ("{not json", "invalid JSON"),
    (json.dumps(dict(GOOD[0], verdict="maybe")), "field 'verdict'"),
    (json.dumps({k: v for k, v in GOOD[0].items() if k != "timestamp"}), "timestamp"),
    (json.dumps(dict(GOOD[0], timestamp="2026-11-01T00:00:00")), "timezone"),
    (json.dumps(dict(GOOD[0], verdict="missed")), "implies the model predicted 0"),
    ("[1, 2]", "object"),
]


@pytest.mark.parametrize("bad, reason", BAD_LINES)
def test_check_names_file_line_and_reason_and_keeps_the_valid_lines(tmp_path, capsys, bad, reason):
    path = _write(tmp_path / "fb.jsonl", [GOOD[0], bad, GOOD[1]])
    assert main(["feedback", "check", path]) == 1
    out, err = capsys.readouterr()
    assert "kept: 2 (confirmed 1, correct 1); rejected: 1" in out
    (line,) = err.splitlines()
    assert line.startswith(f"{path}:2: ") and reason.lower() in line.lower(), line


def test_check_exit_codes_and_json(tmp_path, capsys):
    good = _write(tmp_path / "good.jsonl", GOOD)
    assert main(["feedback", "check", good]) == 0
    bad = _write(tmp_path / "bad.jsonl", ["{", "[]"])
    assert main(["feedback", "check", bad, "--json"]) == 2  # nothing usable
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["kept"] == 0 and [r["line"] for r in summary["rejected"]] == [1, 2]
    assert main(["feedback", "check", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "missing.jsonl" in err and "hint:" in err and "Traceback" not in err
    gz = tmp_path / "fb.jsonl.gz"
    gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in GOOD).encode()))
    assert main(["feedback", "check", str(gz), good]) == 0  # gzip, several inputs; duplicates counted
    assert "duplicates: 2" in capsys.readouterr().out


def test_push_copies_once_and_refuses_unusable_input(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STREAMGUARD_HOME", str(tmp_path / "home"))
    path = _write(tmp_path / "fb.jsonl", [GOOD[0], "{", GOOD[1]])
    assert main(["feedback", "push", path]) == 0
    pushed = list((tmp_path / "home" / "artifacts" / "feedback").iterdir())
    assert len(pushed) == 1 and pushed[0].name.endswith("-fb.jsonl")
    assert pushed[0].read_bytes() == (tmp_path / "fb.jsonl").read_bytes()  # unchanged, nothing dropped
    assert main(["feedback", "push", path]) == 0
    assert "already pushed" in capsys.readouterr().out
    assert len(list(pushed[0].parent.iterdir())) == 1

    unusable = _write(tmp_path / "junk.jsonl", ["{", "[]"])
    assert main(["feedback", "push", unusable]) == 2
    assert "nothing pushed" in capsys.readouterr().err
    assert len(list(pushed[0].parent.iterdir())) == 1


def test_push_to_s3(moto_server, tmp_path, capsys):
    import boto3

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="fb-bucket")
    path = _write(tmp_path / "fb.jsonl", GOOD)
    assert main(["feedback", "push", path, "--to", "s3://fb-bucket/streamguard/feedback"]) == 0
    dest = capsys.readouterr().out.strip().splitlines()[-1].split(" to ")[-1]
    assert dest.startswith("s3://fb-bucket/streamguard/feedback/") and dest.endswith("-fb.jsonl")
    assert storage.read_bytes(dest) == (tmp_path / "fb.jsonl").read_bytes()
