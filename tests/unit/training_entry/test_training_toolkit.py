"""The entry run by the real SageMaker training toolkit (PyPI `sagemaker-training`), as in the container.

The toolkit is the code that starts the script inside the PyTorch training images: it reads
`input/config/*.json`, unpacks `sagemaker_submit_directory`, pip-installs its `requirements.txt`,
JSON-decodes the hyperparameters into `--name value` flags, sets `SM_*`, runs the script and, when
it fails, reports `ExecuteUserScriptError ... ExitCode N` (in the failure file unless the script
wrote one).
Outside SageMaker it runs under `SAGEMAKER_BASE_DIR`. Each test lays out that directory as the
service does (channels under `input/data/<name>`, the request's hyperparameters, a real
`sourcedir.tar.gz`) and runs the toolkit's `train` command in a fresh process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from streamguard.core.job_errors import DETERMINISTIC_EXIT_CODE, is_deterministic_failure
from streamguard.jobs.metrics import parse_metrics
from streamguard.jobs.request import build_evaluate_request, build_training_request
from streamguard.sourcedir import build_sourcedir_tarball
from tests.support.entry_data import make_channels

pytestmark = pytest.mark.slow
TINY = {"hidden-size": 16, "num-layers": 1, "batch-size": 8, "learning-rate": 0.005, "seed": 3}


@pytest.fixture(scope="module")
def sourcedir(tmp_path_factory) -> Path:
    path, _sha = build_sourcedir_tarball(tmp_path_factory.mktemp("src") / "sourcedir.tar.gz")
    return path


def run_toolkit(root: Path, request: dict, channels: dict[str, Path], sourcedir: Path) -> dict:
    """Lay out `<root>/opt_ml` for ``request`` and run the toolkit there; returns rc, log and paths."""
    base = root / "opt_ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    hps = dict(request["HyperParameters"])
    # The service hands the toolkit the s3:// URI; the toolkit also takes a local tarball path.
    hps["sagemaker_submit_directory"] = json.dumps(str(sourcedir))
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    (config / "inputdataconfig.json").write_text(json.dumps({
        c["ChannelName"]: {"ContentType": c["ContentType"], "TrainingInputMode": c["InputMode"],
                           "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                           "RecordWrapperType": "None"}
        for c in request["InputDataConfig"]}))
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0",
        "current_instance_type": request["ResourceConfig"]["InstanceType"],
        "current_group_name": "homogeneousCluster",
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "hosts": ["algo-1"],
                             "instance_type": request["ResourceConfig"]["InstanceType"]}]}))
    for name, src in channels.items():
        dest = base / "input" / "data" / name
        shutil.copytree(src, dest) if src.is_dir() else (dest.mkdir(parents=True), shutil.copy(src, dest))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env.update({"SAGEMAKER_BASE_DIR": str(base), "TRAINING_JOB_NAME": request["TrainingJobName"],
                # The pins are installed here: the toolkit's `pip install -r requirements.txt` must find
                # them satisfied and may not download anything (nor touch the torch pin).
                "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                # `algo-1` resolves only on the service's network: the toolkit's own switch for running
                # outside it skips the wait for host names (nothing else changes for one host).
                "SM_STUDIO_LOCAL_MODE": "True"})
    proc = subprocess.run([sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"],
                          env=env, cwd=root, capture_output=True, text=True, timeout=300)
    failure = base / "output" / "failure"
    return {"rc": proc.returncode, "log": proc.stdout + proc.stderr, "base": base,
            "failure": failure.read_text() if failure.is_file() else None}


def _request(root: Path, hyperparameters: dict, channels: dict, sourcedir: Path, *, evaluate: bool = False):
    common = dict(job_name="sg-gnn-toolkit-" + ("eval" if evaluate else "train"), model_type="gnn",
                  output_uri=(root / "out").as_uri(), source_dir_uri=sourcedir.as_uri(),
                  hyperparameters=hyperparameters, role_arn="", region="local")
    if evaluate:
        return build_evaluate_request(test_uri=channels["test"].as_uri(), model_uri=channels["model"].as_uri(),
                                      **common)
    return build_training_request(channels={k: v.as_uri() for k, v in channels.items()}, **common)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sourcedir):
    root = tmp_path_factory.mktemp("toolkit-train")
    ch = make_channels(root / "data", with_graphs=True)
    request = _request(root, {"model-type": "gnn", "epochs": 2, **TINY}, ch, sourcedir)
    return run_toolkit(root, request, ch, sourcedir), ch


def test_toolkit_runs_training(trained):
    job, _ = trained
    assert job["rc"] == 0, job["log"][-4000:]
    # The toolkit's own steps: requirements installed from the source dir, the script run with flags.
    assert "requirements.txt" in job["log"] and "train_enhanced_models.py" in job["log"]
    assert "--model-type gnn" in job["log"] and "--epochs 2" in job["log"]
    model = job["base"] / "model"
    assert (model / "config.json").is_file() and list(model.glob("*.safetensors"))
    metrics = parse_metrics(job["log"].splitlines())
    assert {"train:loss", "validation:accuracy", "validation:f1"} <= set(metrics)
    # FinalMetricDataList would hold the last epoch under validation:*, the kept model under best:*.
    kept = json.loads((model / "metrics.json").read_text())
    config = json.loads((model / "config.json").read_text())
    assert metrics["best:epoch"] == config["best_epoch"]
    for name in ("accuracy", "f1", "fpr"):
        assert metrics[f"best:validation:{name}"] == pytest.approx(kept["validation"][name], abs=1e-4)
        assert metrics[f"best:test:{name}"] == pytest.approx(kept["test"][name], abs=1e-4)
    assert (job["base"] / "output" / "success").is_file() and job["failure"] is None


def test_toolkit_runs_evaluation_of_the_trained_model(trained, sourcedir, tmp_path):
    job, ch = trained
    assert job["rc"] == 0, job["log"][-4000:]
    archive = tmp_path / "model-channel" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tf:
        for f in sorted((job["base"] / "model").rglob("*")):
            tf.add(f, arcname=str(f.relative_to(job["base"] / "model")), recursive=False)
    channels = {"test": ch["test"], "model": archive.parent}
    request = _request(tmp_path, {"model-type": "gnn", "batch-size": 8}, channels, sourcedir, evaluate=True)
    ev = run_toolkit(tmp_path, request, channels, sourcedir)
    assert ev["rc"] == 0, ev["log"][-4000:]
    assert "--mode evaluate" in ev["log"]
    out = ev["base"] / "output" / "data"
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics.get("test", metrics)
    assert test["n"] == 12 and 0.0 <= test["accuracy"] <= 1.0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 12
    # The evaluate request's own metric definitions read the job's figures from its log.
    parsed = parse_metrics(ev["log"].splitlines(), request["AlgorithmSpecification"]["MetricDefinitions"])
    for name in ("accuracy", "f1", "fpr"):
        assert parsed[f"test:{name}"] == pytest.approx(test[name], abs=1e-4)


def test_a_deterministic_failure_reaches_the_orchestrator_as_do_not_retry(tmp_path, sourcedir):
    from sagemaker_training import errors
    from streamguard.lifecycle import FINAL, RETRY, failure_class

    ch = make_channels(tmp_path / "data", n_train=8, n_val=4, n_test=4)
    # Bad input: every training record of one class.
    train = ch["train"] / "data.jsonl.gz"
    import gzip

    rows = [json.loads(line) for line in gzip.open(train, "rt")]
    with gzip.open(train, "wt") as fh:
        fh.writelines(json.dumps(dict(r, label=1)) + "\n" for r in rows)
    request = _request(tmp_path, {"model-type": "gnn", "epochs": 1, **TINY}, ch, sourcedir)
    job = run_toolkit(tmp_path, request, ch, sourcedir)
    assert job["rc"] != 0
    failure = job["failure"]
    # This toolkit release keeps a failure file the script wrote ("Failure file exists. Skipping
    # creation"), so FailureReason carries the entry's own message; its report, with the script's exit
    # code, goes to the log. Older releases replaced the file with that report: both forms are read.
    assert failure.startswith("StreamGuardInputError: EntryError:") and "only one class" in failure, failure
    assert f"ExitCode {DETERMINISTIC_EXIT_CODE}" in job["log"] and "ExecuteUserScriptError" in job["log"]
    reason = "AlgorithmError: " + failure  # what DescribeTrainingJob shows
    assert is_deterministic_failure(reason)
    assert failure_class({"TrainingJobStatus": "Failed", "FailureReason": reason}) == FINAL
    toolkit_form = "AlgorithmError: " + str(errors.ExecuteUserScriptError(
        cmd="python train_enhanced_models.py", return_code=DETERMINISTIC_EXIT_CODE, output="EntryError: x"))
    assert is_deterministic_failure(toolkit_form)
    assert failure_class({"TrainingJobStatus": "Failed", "FailureReason": toolkit_form}) == FINAL
    # Any other script failure, in the toolkit's own format, stays retryable (resumes from checkpoints).
    other = "AlgorithmError: " + str(errors.ExecuteUserScriptError(cmd="python x.py", return_code=1,
                                                                   output="RuntimeError: CUDA error"))
    assert not is_deterministic_failure(other)
    assert failure_class({"TrainingJobStatus": "Failed", "FailureReason": other}) == RETRY
