"""A/B that routes real traffic: `streamguard serve --ab`, shadow mirroring, and the loop
serve -> verdict log -> reviewers' confirmations -> `feedback join` -> `feedback push` -> retraining."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.support.serving_fixtures import GNN_NAME, TRANSFORMER_NAME

pytestmark = pytest.mark.slow


def post(base: str, payload: dict) -> tuple[dict, dict]:
    body = json.dumps(payload).encode()
    req = urllib.request.Request(base + "/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read()), dict(resp.headers)


@pytest.fixture
def serve_plan(trained_models, tmp_path):
    from streamguard.serving.server import VerdictLog, make_server, router_from_plan

    started = []

    def start(plan: dict):
        log = VerdictLog(tmp_path / "verdicts.jsonl")
        router = router_from_plan(plan, trained_models["registry"], log=log, workdir=tmp_path / "cache")
        server = make_server(router, "127.0.0.1", 0, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", router, log.path

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_weighted_sticky_routing_then_feedback_closes_the_loop(trained_models, serve_plan, tmp_path, monkeypatch,
                                                                capsys):
    from streamguard.ab import analyze_ab, assign_variant, endpoint_plan
    from streamguard.cli import main
    from streamguard.data.synthetic import generate_samples

    champion, challenger = trained_models["gnn"]["versions"]
    plan = endpoint_plan(champion, challenger, challenger_weight=0.4)
    base, router, log_path = serve_plan(plan)
    weights = {v["VariantName"]: v["InitialVariantWeight"] for v in plan["ProductionVariants"]}

    samples = generate_samples(24, seed=5)
    served = {}
    for rec in samples:
        payload = {"instances": [{"id": rec["id"], "code": rec["code"], "language": rec["language"]}]}
        body, headers = post(base, payload)
        request_id = headers["X-StreamGuard-Request-Id"]
        assert request_id == hashlib.sha256(json.dumps(payload).encode()).hexdigest()
        # The variant is the one ab.py assigns to the request's sha256, and it serves the request.
        assert headers["X-StreamGuard-Variant"] == assign_variant(request_id, weights)
        (pred,) = body["predictions"]
        expected_version = {"champion": f"{GNN_NAME}@{champion.version}",
                            "challenger": f"{GNN_NAME}@{challenger.version}"}[headers["X-StreamGuard-Variant"]]
        assert pred["model_version"] == expected_version
        served[rec["id"]] = (request_id, headers["X-StreamGuard-Variant"], rec)
    # Sticky: the same request again meets the same variant.
    rec = samples[0]
    _, again = post(base, {"instances": [{"id": rec["id"], "code": rec["code"], "language": rec["language"]}]})
    assert again["X-StreamGuard-Variant"] == served[rec["id"]][1]
    share = sum(v == "challenger" for _, v, _ in served.values()) / len(served)
    assert 0.15 < share < 0.65, share  # 40 % of the traffic, within sampling noise of ~40 requests
    log = rows(log_path)
    assert len(log) == len(served) + 1 and all(not r["shadow"] for r in log)
    assert {r["variant"] for r in log} == {"champion", "challenger"}

    # Reviewers confirm the generated labels; the join gives feedback the retraining DAG accepts.
    confirmations = tmp_path / "reviewed.jsonl"
    confirmations.write_text("".join(json.dumps({"id": rid, "request_id": req, "vulnerable": bool(r["label"]),
                                                 "timestamp": "2026-11-30T12:00:00Z", "cwe": r["cwe"]}) + "\n"
                                     for rid, (req, _, r) in served.items())
                             + json.dumps({"id": "never-served", "vulnerable": True}) + "\n")
    feedback = tmp_path / "feedback.jsonl"
    rc = main(["feedback", "join", "--verdicts", str(log_path), "--confirmations", str(confirmations),
               "--out", str(feedback)])
    out = capsys.readouterr()
    assert rc == 1 and "no served prediction with id 'never-served'" in out.err  # reported, the rest written
    fb = rows(feedback)
    assert len(fb) == len(served) + 1  # the repeated request was served twice
    labels = {rid: r["label"] for rid, (_, _, r) in served.items()}
    for r in fb:
        item = next(rid for rid in labels if r["id"].endswith(f"-{rid}-{r['variant']}"))
        expected = {(1, 1): "confirmed", (1, 0): "false_positive", (0, 1): "missed", (0, 0): "correct"}
        assert r["verdict"] == expected[(r["prediction"], labels[item])]
    assert main(["feedback", "check", str(feedback)]) == 0
    capsys.readouterr()

    # Push where the retraining DAG reads, then run its ingest step and fine-tune a challenger on it.
    artifacts = tmp_path / "artifacts"
    monkeypatch.setenv("STREAMGUARD_ARTIFACT_ROOT", artifacts.as_uri())
    monkeypatch.setenv("STREAMGUARD_REGISTRY_URI", trained_models["registry"])
    assert main(["feedback", "push", str(feedback)]) == 0
    assert "pushed" in capsys.readouterr().out
    from streamguard.feedback import ingest_feedback
    from streamguard.pipeline.feedback_ingest import ingest
    from streamguard.pipeline.params import resolve_retraining_config

    ingested = ingest(resolve_retraining_config({}), "retraining-test")
    # The repeated request is one duplicate; every other record is labelled, none quarantined.
    assert ingested["n_labelled"] == len(served) and ingested["n_quarantined"] == 0
    assert ingested["duplicates"] == 1 and ingested["per_model"]["gnn"]["n"] == len(served)
    ab = analyze_ab(ingest_feedback([str(feedback)]).feedback)
    assert set(ab.variants) == {"champion", "challenger"}
    assert sum(v["n"] for v in ab.variants.values()) == len(served)

    labelled = Path(ingested["labelled_uri"].removeprefix("file://"))
    train_dir = tmp_path / "retrain" / "train"
    train_dir.mkdir(parents=True)
    for f in Path(trained_models["channels"]["train"]).iterdir():
        (train_dir / f.name).write_bytes(f.read_bytes())
    (train_dir / "feedback.jsonl").write_text(labelled.read_text())
    import io
    from contextlib import redirect_stdout

    import train_enhanced_models as entry

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = entry.main(["--model-type", "gnn", "--fine-tune", "--model", str(trained_models["gnn"]["archive"]),
                         "--epochs", "1", "--batch-size", "8", "--learning-rate", "0.001", "--checkpoint-dir", "none",
                         "--progress-interval-s", "0", "--train", str(train_dir),
                         "--validation", str(trained_models["channels"]["validation"]),
                         "--model-dir", str(tmp_path / "retrain" / "model")])
    assert rc == 0, buf.getvalue()[-2000:]
    assert f"train={trained_models['n_train'] + len(served)}" in buf.getvalue()  # the champion's data plus every feedback record
    cfg = json.loads((tmp_path / "retrain" / "model" / "config.json").read_text())
    assert cfg["fine_tuned_from"] == str(trained_models["gnn"]["archive"])
    assert (tmp_path / "retrain" / "model" / "code" / "inference.py").is_file()  # the challenger serves too


def test_shadow_variant_sees_a_copy_and_never_answers(trained_models, serve_plan):
    from streamguard.ab import endpoint_plan

    champion, challenger = trained_models["transformer"]["versions"]
    plan = endpoint_plan(champion, challenger, challenger_weight=0.5, shadow=True)
    base, router, log_path = serve_plan(plan)
    for i in range(12):
        body, headers = post(base, {"instances": [{"id": f"s{i}", "code": f"def f{i}(c, x):\n    c.execute('SELECT ' + x)\n",
                                                   "language": "python"}]})
        assert headers["X-StreamGuard-Variant"] == "champion"
        assert body["predictions"][0]["model_version"] == f"{TRANSFORMER_NAME}@{champion.version}"
    router.drain()
    log = rows(log_path)
    shadow = [r for r in log if r["shadow"]]
    assert len(log) - len(shadow) == 12
    assert 1 <= len(shadow) <= 11 and all(r["variant"] == "challenger" for r in shadow)
    assert {r["model_version"] for r in shadow} == {f"{TRANSFORMER_NAME}@{challenger.version}"}
    served_ids = {r["request_id"] for r in log if not r["shadow"]}
    assert {r["request_id"] for r in shadow} <= served_ids  # copies of served requests


def test_rejected_model_may_only_shadow(trained_models, tmp_path):
    from streamguard.ab import endpoint_plan
    from streamguard.registry import RegistryClient
    from streamguard.serving.models import ModelLoadError
    from streamguard.serving.server import router_from_plan
    from tests.support.serving_fixtures import register

    client = RegistryClient((tmp_path / "registry").as_uri())
    ok = register(client, GNN_NAME, "gnn", trained_models["gnn"]["archive"], "job-a")
    second_archive = trained_models["root"] / "gnn" / "v2" / "model.tar.gz"
    bad = register(client, GNN_NAME, "gnn", second_archive, "job-b", status="rejected")
    with pytest.raises(ModelLoadError, match="rejected by the gate; only a shadow variant"):
        router_from_plan(endpoint_plan(ok, bad, challenger_weight=0.2), client.uri, workdir=tmp_path / "c")
    router = router_from_plan(endpoint_plan(ok, bad, challenger_weight=0.2, shadow=True), client.uri,
                              workdir=tmp_path / "c")
    assert [v["shadow"] for v in router.describe()] == [False, True]


def test_endpoint_config_with_data_capture_in_moto_and_capture_to_verdicts(moto_server, tmp_path, capsys):
    """SageMaker mode, as far as moto goes: the models and endpoint config are created with the
    inference container and DataCaptureConfig; a capture file in S3 becomes verdict-log lines."""
    import boto3

    from streamguard.ab import endpoint_plan
    from streamguard.cli import main
    from streamguard.jobs.images import inference_container

    champion = {"model_name": GNN_NAME, "version": 1}
    challenger = {"model_name": GNN_NAME, "version": 2}
    plan = endpoint_plan(champion, challenger, challenger_weight=0.1,
                         data_capture_uri="s3://bkt/streamguard/artifacts/datacapture/gnn")
    sm = boto3.client("sagemaker", region_name="us-east-1")
    for rec in (champion, challenger):
        sm.create_model(ModelName=f"taint-flow-gnn-v{rec['version']}",
                        ExecutionRoleArn="arn:aws:iam::000000000000:role/streamguard-test",
                        PrimaryContainer=inference_container("us-east-1", "s3://bkt/m/model.tar.gz",
                                                             model_version=f"{GNN_NAME}@{rec['version']}"))
    sm.create_endpoint_config(**plan)
    described = sm.describe_endpoint_config(EndpointConfigName=plan["EndpointConfigName"])
    assert described["DataCaptureConfig"]["DestinationS3Uri"] == "s3://bkt/streamguard/artifacts/datacapture/gnn"
    assert described["DataCaptureConfig"]["InitialSamplingPercentage"] == 100
    assert {o["CaptureMode"] for o in described["DataCaptureConfig"]["CaptureOptions"]} == {"Input", "Output"}
    model = sm.describe_model(ModelName="taint-flow-gnn-v1")
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"

    # What the endpoint writes: <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
    request = {"instances": [{"id": "a", "code": "def f(c, x):\n    c.execute('SELECT ' + x)\n"}]}
    response = {"predictions": [{"id": "a", "score": 0.93, "pred": 1, "model_version": f"{GNN_NAME}@1",
                                 "model_type": "gnn", "language": "python"}]}
    capture = {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                                 "data": json.dumps(request), "encoding": "JSON"},
                               "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                                  "data": json.dumps(response), "encoding": "JSON"}},
               "eventMetadata": {"eventId": "e1", "inferenceTime": "2026-11-30T10:00:00Z"}, "eventVersion": "0"}
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bkt")
    key = "streamguard/artifacts/datacapture/gnn/streamguard-ab/champion/2026/11/30/10/part.jsonl"
    s3.put_object(Bucket="bkt", Key=key, Body=(json.dumps(capture) + "\n" + "{broken\n").encode())
    out = tmp_path / "verdicts.jsonl"
    rc = main(["feedback", "from-capture", "s3://bkt/streamguard/artifacts/datacapture/gnn", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and ":2: " in err  # the broken line is named, the good one converted
    (row,) = rows(out)
    assert row["variant"] == "champion" and row["prediction"] == 1 and row["model_version"] == f"{GNN_NAME}@1"
    assert row["code"] == request["instances"][0]["code"] and row["timestamp"] == "2026-11-30T10:00:00Z"
