"""Bad input to `streamguard registry ...`: one clear line (and a hint), exit status 2, no traceback."""

from __future__ import annotations

import pytest

from streamguard.cli import main
from streamguard.registry import RegistryClient

GATE_OK = {"passed": True, "reasons": [], "thresholds": {"min_val_accuracy": 0.5}}
GATE_FAIL = {"passed": False, "reasons": ["validation accuracy 0.4 is below the minimum 0.5"],
             "thresholds": {"min_val_accuracy": 0.5}}


@pytest.fixture()
def registry(tmp_path):
    uri = (tmp_path / "registry").as_uri()
    client = RegistryClient(uri)
    for job, gate, status in (("job-a", GATE_OK, "registered"), ("job-b", GATE_FAIL, "rejected")):
        client.register("taint_flow_gnn", model_type="gnn", artifact_uri=f"file:///tmp/{job}/model.tar.gz",
                        artifact_sha256="0" * 64, metrics={"validation": {"accuracy": 0.9}},
                        training_job_name=job, backend="local", data_hash="d" * 64, code_version="test",
                        hyperparameters={"epochs": 1}, gate=gate, status=status)
    return uri, tmp_path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["show", "no_such_model"], "no versions"),
        (["show", "taint_flow_gnn", "99"], "99"),
        (["compare", "taint_flow_gnn", "1", "42"], "42"),
        (["promote", "taint_flow_gnn", "2"], "rejected"),
        (["promote", "taint_flow_gnn", "1", "--expected-version", "7"], "champion"),
        (["best", "taint_flow_gnn", "--metric", "test.nonexistent"], "nonexistent"),
    ],
)
def test_bad_input_gets_one_clear_line(registry, capsys, args, fragment):
    uri, _ = registry
    rc = main(["registry", *args[:1], "--uri", uri, *args[1:]])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and fragment in err
    assert "Traceback" not in err


def test_unknown_alias_in_place_of_a_version(registry, capsys):
    uri, _ = registry
    rc = main(["registry", "show", "--uri", uri, "taint_flow_gnn", "latest-ish"])
    err = capsys.readouterr().err
    assert rc == 2 and "no alias 'latest-ish'" in err and err.count("\n") <= 2


def test_corrupt_record_names_the_file(registry, capsys):
    uri, root = registry
    record = root / "registry" / "models" / "taint_flow_gnn" / "versions" / "000001.json"
    record.chmod(0o644)
    record.write_text("{not json")
    rc = main(["registry", "show", "--uri", uri, "taint_flow_gnn", "1"])
    err = capsys.readouterr().err
    assert rc != 0 and "000001.json" in err and "Traceback" not in err


def test_good_input_still_works(registry, capsys):
    uri, _ = registry
    assert main(["registry", "list", "--uri", uri, "--json"]) == 0
    assert "taint_flow_gnn" in capsys.readouterr().out


def test_summary_prints_each_models_gate_decision_reasons_and_metrics(registry, capsys):
    uri, _ = registry
    client = RegistryClient(uri)
    client.register("sql_intent_transformer", model_type="transformer", artifact_uri="file:///tmp/t/model.tar.gz",
                    artifact_sha256="0" * 64,
                    metrics={"validation": {"accuracy": 0.97, "fpr": 0.02}, "test": {"accuracy": 0.96, "fpr": 0.01}},
                    training_job_name="job-t", backend="local", data_hash="d" * 64, code_version="test",
                    hyperparameters={"epochs": 1}, gate=GATE_OK, status="registered")
    assert main(["registry", "summary", "--uri", uri]) == 0
    out = capsys.readouterr().out
    blocks = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            name = line.split(" ")[0]
        blocks[name] = blocks.get(name, "") + line + "\n"
    gnn = blocks["taint_flow_gnn"]
    assert "taint_flow_gnn v2: REJECTED by the gate (rejected); champion: none" in gnn
    assert "reason: validation accuracy 0.4 is below the minimum 0.5" in gnn
    assert "gate: min_val_accuracy=0.5" in gnn
    tr = blocks["sql_intent_transformer"]
    assert "sql_intent_transformer v1: PASSED the gate, registered" in tr and "reason:" not in tr
    assert "test.accuracy 0.9600" in tr and "test.fpr 0.0100" in tr and "test.f1 -" in tr
    assert main(["registry", "summary", "--uri", uri, "--json", "taint_flow_gnn"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in rows] == [2] and rows[0]["passed_gate"] is False
    assert main(["registry", "summary", "--uri", uri, "no_such_model"]) == 2
    assert "no versions" in capsys.readouterr().err
