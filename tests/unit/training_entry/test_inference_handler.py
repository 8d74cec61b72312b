"""The serving handler (`training_entry/inference.py`) through the real SageMaker inference toolkits.

`sagemaker-pytorch-inference`'s `HandlerService` (what the PyTorch inference container's model
server calls) loads a trained model.tar.gz in a fresh process with only the archive's `code/` on
PYTHONPATH, exactly as the container sets it up. What cannot run here is the model server
around it (TorchServe: Java, ports, workers); its part is a small stand-in for the context object
it passes (`system_properties`, `request_processor`, response status/content type).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamguard.core.archive import safe_extract
from tests.support.serving_fixtures import SAFE_PY, VULN_JAVA, VULN_PY

REPO = Path(__file__).resolve().parents[3]

# Drives the toolkit like the model server: initialize once, then handle() per request.
TOOLKIT_DRIVER = textwrap.dedent('''\
    import json, sys
    from sagemaker_pytorch_serving_container.handler_service import HandlerService

    class RequestProcessor:
        def __init__(self, headers): self.headers = headers
        def get_request_properties(self): return self.headers

    class Context:
        """The attributes of the model server's context that the toolkit uses."""
        def __init__(self, model_dir, headers):
            self.system_properties = {"model_dir": model_dir, "gpu_id": None}
            self.request_processor = [RequestProcessor(headers)]
            self.status = (200, "OK"); self.content_types = {}
        def set_response_status(self, code, phrase): self.status = (code, phrase)
        def set_response_content_type(self, idx, value): self.content_types[idx] = value

    model_dir, requests = sys.argv[1], json.loads(sys.stdin.read())
    service = HandlerService()
    results = []
    for req in requests:
        ctx = Context(model_dir, req["headers"])
        if not results:
            try:
                service.initialize(ctx)
            except Exception as exc:
                print(json.dumps({"initialize_error": f"{type(exc).__name__}: {exc}"})); sys.exit(0)
        out = service.handle([{"body": req["body"].encode("utf-8")}], ctx)
        body = out[0]
        results.append({"status": ctx.status[0], "content_type": ctx.content_types.get(0),
                        "body": body if isinstance(body, str) else body.decode("utf-8")})
    import inference, streamguard.core
    print(json.dumps({"results": results, "inference_file": inference.__file__,
                      "core_file": streamguard.core.__file__}))
''')


def run_toolkit(model_dir: Path, requests: list[dict], tmp_path: Path, *, program: str = "inference.py") -> dict:
    driver = tmp_path / "driver.py"
    driver.write_text(TOOLKIT_DRIVER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # As the container: the archive's code dir first on the path, the program named by env.
    env.update(PYTHONPATH=str(model_dir / "code"), SAGEMAKER_PROGRAM=program,
               SAGEMAKER_BASE_DIR=str(tmp_path / "opt-ml"))
    proc = subprocess.run([sys.executable, str(driver), str(model_dir)], input=json.dumps(requests), env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def json_request(instances, **headers) -> dict:
    return {"body": json.dumps({"instances": instances}),
            "headers": {"Content-Type": "application/json", "Accept": "application/json", **headers}}


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["gnn", "transformer"])
def test_trained_archive_serves_through_the_sagemaker_pytorch_toolkit(trained_models, tmp_path, model_type):
    archive = trained_models[model_type]["archive"]
    model_dir = safe_extract(archive, tmp_path / "opt-ml" / "model")
    assert (model_dir / "code" / "inference.py").is_file() and (model_dir / "code" / "requirements.txt").is_file()
    requests = [
        json_request([{"id": "v", "code": VULN_PY}, {"id": "s", "code": SAFE_PY, "language": "python"},
                      {"id": "j", "code": VULN_JAVA, "language": "java"}, {"id": "bad", "code": ""},
                      {"id": "lang", "code": "x = 1", "language": "cobol"}]),
        {"body": "{not json", "headers": {"Content-Type": "application/json"}},
        {"body": "code,label", "headers": {"Content-Type": "text/csv"}},
    ]
    got = run_toolkit(model_dir, requests, tmp_path)
    # Self-contained: the handler and the featurizer came from the archive, not from this checkout.
    assert Path(got["inference_file"]).resolve().is_relative_to(model_dir.resolve())
    assert Path(got["core_file"]).resolve().is_relative_to(model_dir.resolve())
    ok, bad_json, bad_type = got["results"]
    assert ok["status"] == 200 and ok["content_type"] == "application/json"
    preds = json.loads(ok["body"])["predictions"]
    assert [p["id"] for p in preds] == ["v", "s", "j", "bad", "lang"]
    for p in preds[:3]:
        assert 0.0 <= p["score"] <= 1.0 and p["pred"] == int(p["score"] >= p["threshold"])
        assert p["model_type"] == model_type and p["model_version"].startswith(model_type + "-")
        assert "error" not in p
    assert [p["language"] for p in preds[:3]] == ["python", "python", "java"]  # the first one detected
    assert "'code' must be a non-empty string" in preds[3]["error"] and preds[3]["score"] is None
    assert "unknown language 'cobol'" in preds[4]["error"] and preds[4]["pred"] is None
    if model_type == "transformer":
        assert all(isinstance(p["anomaly_score"], float) for p in preds[:3])
    else:
        vuln, safe, java = preds[:3]
        assert vuln["taint_reaches_sink"] and java["taint_reaches_sink"] and not safe["taint_reaches_sink"]
        assert vuln["sink_line"] == 6 and java["sink_line"] == 4  # cur.execute(...) / st.executeQuery(...)
        path = vuln["taint_paths"][0]
        assert path[0]["role"] == "source" and path[0]["line"] == 4  # request.args.get
        assert path[-1]["role"] == "sink" and path[-1]["kind"].startswith("py.Call")
        assert [s["line"] for s in path] == sorted(s["line"] for s in path)
        assert len(vuln["top_nodes"]) == 5 and all(n["line"] is not None for n in vuln["top_nodes"])
        weights = [n["importance"] for n in vuln["top_nodes"]]
        assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1.0 + 1e-6
    assert bad_json["status"] == 400 and "not valid JSON" in bad_json["body"]
    assert bad_type["status"] == 415 and "unsupported content type" in bad_type["body"]


@pytest.mark.slow
def test_archive_without_handler_code_fails_the_way_the_issue_describes(trained_models, tmp_path):
    """Control: without code/inference.py the toolkit's default handler wants a TorchScript model.pt(h)."""
    model_dir = safe_extract(trained_models["gnn"]["archive"], tmp_path / "opt-ml" / "model")
    import shutil

    shutil.rmtree(model_dir / "code")
    got = run_toolkit(model_dir, [json_request([{"code": SAFE_PY}])], tmp_path)
    # The container's start-up fails here, so /ping never answers 200.
    assert ".pt file is required" in got["initialize_error"], got


def test_every_inference_image_satisfies_the_pinned_torch_requirements():
    """The image table against the pins: transformers' own torch requirement, and the entry's code."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement
    from packaging.version import Version

    from streamguard.jobs.images import DEFAULT_INFERENCE_TAGS, INFERENCE_IMAGES, pytorch_inference_image

    torch_specs = [Requirement(r).specifier for r in requires("transformers") or []
                   if Requirement(r).name == "torch"]
    assert torch_specs, "transformers declares no torch requirement to check against"
    for tag, (torch_version, python) in INFERENCE_IMAGES.items():
        assert tag.startswith(torch_version + "-") and f"py{python.replace('.', '')}" in tag
        assert Version(torch_version) >= Version("2.6"), tag  # transformers 5 refuses older torch
        for spec in torch_specs:
            assert spec.contains(torch_version, prereleases=True), (tag, str(spec))
        assert Version(python) >= Version("3.10")
    assert set(DEFAULT_INFERENCE_TAGS.values()) <= set(INFERENCE_IMAGES)
    assert version("transformers").startswith("5.")
    uri = pytorch_inference_image("us-east-1")
    assert uri == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker"
    with pytest.raises(ValueError, match="not one of"):
        pytorch_inference_image("us-east-1", tag="2.5.1-cpu-py311")


def test_inference_container_names_the_program_and_the_version():
    import botocore.session

    from streamguard.jobs.images import inference_container

    container = inference_container("eu-west-1", "s3://b/m/model.tar.gz", model_version="taint_flow_gnn@3")
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py", "STREAMGUARD_MODEL_VERSION": "taint_flow_gnn@3"}
    assert (REPO / "training_entry" / container["Environment"]["SAGEMAKER_PROGRAM"]).is_file()
    # Valid as a CreateModel request's PrimaryContainer (botocore's service model, offline).
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateModel").input_shape
    report = ParamValidator().validate({"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::000000000000:role/r",
                                        "PrimaryContainer": container}, shape)
    assert not report.has_errors(), report.generate_report()
