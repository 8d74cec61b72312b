"""Evaluating a trained or registered model by real inference, and the metric gate.

`evaluate_model` runs the entry's evaluate mode as its own job on the test channel and reads its
``metrics.json`` and ``predictions.jsonl``; with a registered model's sha256 the archive is checked
before the job starts, by the job itself, and again when read here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from streamguard import storage
from streamguard.core import archive
from streamguard.pipeline.params import TrainingConfig
from streamguard.pipeline.records import Evaluation, PreparedChannels, RunContext, SourcePackage, plain


def _fetch_tar(uri: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    local = dest / "archive.tar.gz"
    storage.download(uri, str(local))
    out = dest / "x"
    archive.safe_extract(str(local), str(out))
    return out


def output_uri_of(describe: dict) -> str:
    """`output.tar.gz` sits next to `model.tar.gz` under `<S3OutputPath>/<job>/output/`."""
    return describe["ModelArtifacts"]["S3ModelArtifacts"].rsplit("/", 1)[0] + "/output.tar.gz"


def evaluation_metrics_uri(predictions_uri: str) -> str:
    """Where `evaluate_model` stores the evaluate job's `metrics.json` (beside `predictions.jsonl`)."""
    return predictions_uri.rsplit("/", 1)[0] + "/metrics.json"


def evaluate_model(run: RunContext, config: TrainingConfig, model_type: str, artifact_uri: str,
                   data: PreparedChannels, source: SourcePackage, *, name_suffix: str = "-eval",
                   expected_sha256: str | None = None) -> Evaluation:
    """Real inference of the model at ``artifact_uri`` on the test channel, through the entry's evaluate mode.

    Runs as its own job (local runner or SageMaker) with channels `test` and `model`, then reads
    `metrics.json` and `predictions.jsonl` from its output and the training-time validation metrics
    from the model artifact.

    With ``expected_sha256`` (a registered model) the archive is checked before the job starts,
    by the job itself before it loads the model (`--model-sha256`), and again when read here.
    """
    from streamguard.pipeline.job_running import run_evaluation_job
    from streamguard.pipeline.job_specs import build_evaluate_job

    def verify() -> None:
        with tempfile.TemporaryDirectory(prefix="sg-verify-") as tmp:
            local = Path(tmp) / "model.tar.gz"
            storage.download(artifact_uri, str(local))
            archive.check_sha256(local, expected_sha256, artifact_uri)

    request = build_evaluate_job(run, config, model_type, data, source,
                                 model_channel_uri=artifact_uri.rsplit("/", 1)[0] + "/",
                                 name_suffix=name_suffix, expected_sha256=expected_sha256)
    desc = run_evaluation_job(request, run.backend, before_create=verify if expected_sha256 else None)
    with tempfile.TemporaryDirectory(prefix="sg-eval-") as tmp:
        tmp_path = Path(tmp)
        out = _fetch_tar(output_uri_of(desc), tmp_path / "out")
        test_metrics = json.loads((out / "metrics.json").read_text())
        predictions_uri = run.uri("eval", model_type, desc["TrainingJobName"], "predictions.jsonl")
        storage.upload_file(str(out / "predictions.jsonl"), predictions_uri)
        # The evaluate job's own metrics.json, next to its predictions: model packages reference it.
        storage.upload_file(str(out / "metrics.json"), evaluation_metrics_uri(predictions_uri))
        model_tar = tmp_path / "model.tar.gz"
        storage.download(artifact_uri, str(model_tar))
        contents = archive.read_members(model_tar, ["metrics.json"], expected_sha256=expected_sha256,
                                        where=artifact_uri)
        sha = contents.sha256
        size = model_tar.stat().st_size
        trained_metrics = json.loads(contents.files["metrics.json"]) if "metrics.json" in contents.files else {}
        weights_bytes = sum(n for name, n in contents.sizes.items() if name.endswith(".safetensors"))
    test = test_metrics.get("test", test_metrics)
    return Evaluation(
        model_type=model_type,
        evaluation_job=desc["TrainingJobName"],
        metrics={"validation": trained_metrics.get("validation", {}), "test": test},
        predictions_uri=predictions_uri,
        artifact_uri=artifact_uri,
        artifact_sha256=sha,
        artifact_bytes=size,
        weights_bytes=weights_bytes,
    )


def gate_model(config: TrainingConfig, evaluation: Evaluation) -> dict:
    """Apply the metric gate; the decision and its reasons are returned either way."""
    from streamguard.gate import evaluate_gate, thresholds_for

    model_type = evaluation.model_type
    thresholds = thresholds_for(model_type, config.gate_overrides.get(model_type))
    decision = evaluate_gate(model_type, evaluation.metrics, evaluation.artifact_bytes, thresholds)
    # The registry record says which thresholds applied and where each came from.
    return {**plain(decision), "threshold_sources": config.gate_sources.get(model_type, {})}
