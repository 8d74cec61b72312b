"""Feedback ingestion: validation, quarantine, dedup, labels, production metrics."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import pytest

from streamguard.feedback import (
    FeedbackBatch,
    ingest_feedback,
    production_metrics,
)
from streamguard.feedback_record import normalize_line_endings

TS = "2025-03-01T12:00:00Z"


def fb(code: str, verdict: str, *, version: str = "3", pred=None, ts: str = TS, **extra) -> dict:
    if pred is None:
        pred = 1 if verdict in ("confirmed", "false_positive") else 0
    return {"code": code, "prediction": pred, "verdict": verdict, "model_version": version,
            "timestamp": ts, **extra}


def write_jsonl(path, lines: list) -> str:
    raw = b"".join((ln if isinstance(ln, bytes) else json.dumps(ln).encode()) + b"\n" for ln in lines)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        path.write_bytes(raw)
    return str(path)


def test_verdicts_become_training_records():
    batch = ingest_feedback([
        fb("q = 'SELECT ' + x", "confirmed", language="Python", cwe=89, id="a"),
        fb("q = execute(x, (y,))", "false_positive", language="python", cwe="CWE-89"),
        fb("run(user_input)", "missed", language="java"),
        fb("print(1)", "correct"),
    ])
    assert [r["label"] for r in batch.records] == [1, 0, 1, 0]
    first = batch.records[0]
    assert first == {"id": "a", "code": "q = 'SELECT ' + x", "label": 1, "language": "python",
                     "cwe": "CWE-89", "group": first["group"], "source": "feedback", "origin": "feedback"}
    assert first["group"].startswith("fb-")
    assert batch.records[1]["cwe"] == "CWE-89"
    assert batch.records[1]["id"].startswith("fb-")  # generated when the record has none
    assert batch.counts == {"confirmed": 1, "false_positive": 1, "missed": 1, "correct": 1}
    assert batch.quarantined == [] and batch.duplicates == 0


def test_bad_lines_are_quarantined_with_file_line_and_reason(tmp_path):
    path = write_jsonl(tmp_path / "fb.jsonl.gz", [
        fb("ok()", "confirmed"),
        b"{not json",
        b"\xff\xfe not utf8",
        {"code": "x()", "verdict": "confirmed", "model_version": "3", "timestamp": TS},  # no prediction
        fb("y()", "maybe"),
        fb("z()", "confirmed", ts="yesterday"),
        fb("w()", "confirmed", ts="2025-03-01T12:00:00"),  # naive
        fb("v()", "missed", pred=1),  # contradicts the verdict
        {"verdict": "confirmed", "prediction": 1, "model_version": "3", "timestamp": TS},
        fb("s()", "confirmed", pred=0.7, score=1.5),
        [1, 2],
    ])
    batch = ingest_feedback(path, keep_raw=True)
    assert len(batch.records) == 1
    reasons = {q["line"]: q["reason"] for q in batch.quarantined}
    assert all(q["file"] == path for q in batch.quarantined)
    assert sorted(reasons) == list(range(2, 12))
    assert "invalid JSON" in reasons[2]
    assert "UTF-8" in reasons[3]
    assert "prediction" in reasons[4]
    assert "verdict" in reasons[5]
    assert "ISO-8601" in reasons[6]
    assert "timezone" in reasons[7]
    assert "implies the model predicted 0" in reasons[8]
    assert "'code'" in reasons[9]
    assert "[0, 1]" in reasons[10]
    assert "not an object" in reasons[11]
    assert batch.quarantined[0]["raw"] == "{not json"  # the line text is kept for inspection
    assert json.loads(batch.quarantined[2]["raw"])["verdict"] == "confirmed"


def test_language_and_cwe_are_normalised_like_training_data(tmp_path):
    batch = ingest_feedback([
        fb("x = 1", "confirmed", language="py", cwe="cwe89"),
        fb("def f(a):\n    import os\n    return os.system(a)\n", "confirmed"),  # detected
        fb("y = 2", "confirmed", language="go"),
    ])
    assert [(r["language"], r["cwe"]) for r in batch.records] == [("python", "CWE-89"), ("python", None)]
    assert "field 'language'" in batch.quarantined[0]["reason"]


def test_reads_directories_of_jsonl_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [fb("a()", "confirmed")])
    write_jsonl(tmp_path / "b.jsonl.gz", [fb("b()", "missed")])
    batch = ingest_feedback(str(tmp_path))
    assert sorted(r["code"] for r in batch.records) == ["a()", "b()"]
    assert sorted({f.file.rsplit("/", 1)[-1] for f in batch.feedback}) == ["a.jsonl", "b.jsonl.gz"]


def test_float_prediction_is_a_score_and_score_field_is_accepted():
    batch = ingest_feedback([fb("a()", "confirmed", pred=0.93), {**fb("b()", "missed"), "score": 0.2}])
    assert [f.score for f in batch.feedback] == [0.93, 0.2]
    assert [f.pred for f in batch.feedback] == [None, 0]
    assert production_metrics(batch).scores == [0.93, 0.2]


def test_duplicates_by_id_and_by_normalised_code():
    batch = ingest_feedback([
        fb("a = 1\r\nb = 2  \n", "confirmed", id="x"),
        fb("a = 1\nb = 2", "confirmed"),              # same code after normalisation
        fb("c()", "confirmed", id="x"),                # same id
        fb("a = 1\nb = 2", "confirmed", version="4"),  # another model version: kept
        fb("a = 1\nb = 2", "missed"),                  # another verdict, same label: kept
    ])
    assert batch.duplicates == 2
    assert len(batch.records) == 3
    assert len({r["group"] for r in batch.records}) == 1  # one code, one group
    assert batch.summary()["kept"] == 3


def test_conflicting_labels_for_one_code_are_quarantined():
    batch = ingest_feedback([fb("f(x)", "confirmed"), fb("f(x) ", "false_positive"), fb("g()", "confirmed")])
    assert [r["code"] for r in batch.records] == ["g()"]
    assert len(batch.quarantined) == 2
    assert all("conflicting" in q["reason"] for q in batch.quarantined)


def test_since_skips_older_records_and_counts_them():
    since = datetime(2025, 3, 1, tzinfo=timezone.utc)
    batch = ingest_feedback([fb("a()", "confirmed", ts="2025-02-28T23:59:59+00:00"),
                             fb("b()", "confirmed", ts="2025-03-01T01:00:00+01:00"),  # 00:00 UTC
                             fb("c()", "confirmed", ts="2025-03-02T00:00:00Z")], since=since)
    assert batch.skipped_before_since == 1
    assert [r["code"] for r in batch.records] == ["b()", "c()"]
    with pytest.raises(ValueError, match="timezone"):
        ingest_feedback([], since=datetime(2025, 3, 1))


def test_accepts_parsed_tuples_from_a_line_reader():
    batch = ingest_feedback([("in.jsonl", 7, fb("a()", "confirmed")),
                             ("in.jsonl", 8, ValueError("bad line"))])
    assert len(batch.records) == 1
    assert batch.quarantined == [{"file": "in.jsonl", "line": 8, "reason": "bad line", "raw": ""}]


def test_production_metrics_from_verdicts():
    entries = ([fb(f"tp{i}()", "confirmed") for i in range(6)]
               + [fb(f"fp{i}()", "false_positive") for i in range(2)]
               + [fb(f"fn{i}()", "missed") for i in range(1)]
               + [fb(f"tn{i}()", "correct", version="4") for i in range(3)])
    m = production_metrics(ingest_feedback(entries))
    assert (m.n, m.tp, m.fp, m.fn, m.tn) == (12, 6, 2, 1, 3)
    assert m.accuracy == pytest.approx(9 / 12)
    assert m.fpr == pytest.approx(2 / 5)
    assert m.precision == pytest.approx(6 / 8)
    assert m.recall == pytest.approx(6 / 7)
    assert m.by_model_version["4"]["tn"] == 3 and m.by_model_version["3"]["n"] == 9
    only3 = production_metrics(ingest_feedback(entries), model_version="3")
    assert only3.n == 9 and only3.fpr == pytest.approx(1.0)  # v3 has no reviewed TNs, only FPs


def test_empty_batch_has_undefined_rates():
    m = production_metrics(FeedbackBatch())
    assert m.n == 0 and m.accuracy is None and m.fpr is None


def test_normalize_line_endings():
    assert normalize_line_endings("\n a = 1  \r\n\r\nb\n\n") == " a = 1\n\nb"
