"""The training DAG's task bodies as plain functions (no Airflow import at module level).

Each public function is what one task does; the DAG file only wires them. Everything passed
between tasks is small JSON (URIs, names, metrics), never a provider's full describe output.
Every step is idempotent for a given run key so that task retries neither redo finished work
nor start a second billable job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tarfile
import tempfile
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from streamguard import settings, storage
from streamguard.pipeline.params import MODEL_NAMES, TrainingConfig

log = logging.getLogger(__name__)


def run_key(dag_id: str, run_id: str) -> str:
    """A filesystem/S3-safe, deterministic key for one DAG run."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-")[:60]
    digest = hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:10]
    return f"{dag_id}/{slug}-{digest}"


def run_uri(key: str, *parts: str) -> str:
    return storage.join_uri(settings.artifact_root(), "runs", key, *parts)


def _as_dict(obj: Any) -> Any:
    if is_dataclass(obj):
        return asdict(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return obj


# --------------------------------------------------------------------------------------------- data
def prepare_channels(config: TrainingConfig, key: str) -> dict:
    """Prepare train/validation/test channels (with graphs) into the artifact store.

    Returns {"channels": {name: uri}, "data_hash", "report"}. A retry finds the `_SUCCESS`
    marker and reuses the prepared data instead of preparing (and hashing) it again.
    """
    from streamguard.data.prepare import prepare

    data_root = run_uri(key, "data")
    marker = storage.join_uri(data_root, "_SUCCESS.json")
    if storage.exists(marker):
        log.info("channels already prepared at %s (retry): reusing", data_root)
        return json.loads(storage.read_text(marker))

    with tempfile.TemporaryDirectory(prefix="sg-prepare-") as tmp:
        tmp_path = Path(tmp)
        if config.data_uri:
            inputs = [config.data_uri]
            source = config.data_uri
        else:
            from streamguard.data.synthetic import generate_samples, write_samples

            sample = tmp_path / "sample.jsonl.gz"
            write_samples(sample, generate_samples(n_pairs=config.sample_pairs, seed=config.seed))
            inputs = [str(sample)]
            source = f"generated:{config.sample_pairs}-pairs-seed-{config.seed}"
        out = tmp_path / "prepared"
        ratios = (1.0 - config.val_ratio - config.test_ratio, config.val_ratio, config.test_ratio)
        report = _as_dict(prepare(inputs, str(out), seed=config.seed, ratios=ratios,
                                  transforms=config.transform_variants))
        for path in sorted(out.rglob("*")):
            if path.is_file():
                storage.upload_file(str(path), storage.join_uri(data_root, str(path.relative_to(out))))
    result = {
        "channels": {name: storage.join_uri(data_root, name) for name in ("train", "validation", "test")},
        "data_hash": report.get("data_hash"),
        "source": source,
        "report": report,
        "quarantine_uri": storage.join_uri(data_root, "quarantine.jsonl"),
    }
    storage.write_text(marker, json.dumps(result, sort_keys=True, default=str))
    return result


def _prepare_inputs(config: TrainingConfig, tmp_path: Path) -> tuple[list[str], str]:
    """(input files or URIs, a description of the source): `data_uri`, or generated sample data."""
    if config.data_uri:
        return [config.data_uri], config.data_uri
    from streamguard.data.synthetic import generate_samples, write_samples

    sample = tmp_path / "sample.jsonl.gz"
    write_samples(sample, generate_samples(n_pairs=config.sample_pairs, seed=config.seed))
    return [str(sample)], f"generated:{config.sample_pairs}-pairs-seed-{config.seed}"


def plan_channels(config: TrainingConfig, key: str) -> dict:
    """Stage 1 of sharded preparation (`streamguard.data.prepare.prepare_plan`) for a run.

    Writes the plan and its shards under ``<run>/prepare/`` in the artifact store (with
    ``plan.json``: ``{"work_uri", "shards", "source", "records"}``) and returns the shard URIs.
    When the channels of this run are already prepared (a cleared run), returns no shards:
    `finish_channels` reuses them.
    """
    from streamguard.data.prepare import prepare_plan

    marker = storage.join_uri(run_uri(key, "data"), "_SUCCESS.json")
    work_uri = run_uri(key, "prepare")
    if storage.exists(marker):
        log.info("channels already prepared at %s: reusing", marker)
        return []
    with tempfile.TemporaryDirectory(prefix="sg-plan-") as tmp:
        tmp_path = Path(tmp)
        inputs, source = _prepare_inputs(config, tmp_path)
        ratios = (1.0 - config.val_ratio - config.test_ratio, config.val_ratio, config.test_ratio)
        plan = prepare_plan(inputs, run_uri(key, "data"), str(tmp_path / "work"), shards=config.prepare_shards,
                            seed=config.seed, ratios=ratios, progress=log.info,
                            transforms=config.transform_variants)
        storage.upload_dir(str(tmp_path / "work"), work_uri)
    shards = [storage.join_uri(work_uri, "shards", Path(p).name) for p in plan["shards"]]
    storage.write_text(storage.join_uri(work_uri, "plan.json"), json.dumps(
        {"work_uri": work_uri, "shards": shards, "source": source, "records": plan["records"]}, sort_keys=True))
    return shards


def graph_shard(shard_uri: str) -> dict:
    """Stage 2: build one shard's graphs (`build_graph_shard`) into ``<run>/prepare/graphs/``."""
    from streamguard.data.prepare import build_graph_shard, graphs_name

    name = shard_uri.rstrip("/").rsplit("/", 1)[-1]
    work_uri = shard_uri.rstrip("/").rsplit("/", 2)[0]
    with tempfile.TemporaryDirectory(prefix="sg-shard-") as tmp:
        local = Path(tmp) / "shards" / name
        storage.download(shard_uri, str(local))
        result = build_graph_shard(str(local))
        target = storage.join_uri(work_uri, "graphs", graphs_name(name))
        storage.upload_file(result["graphs"], target)
    return dict(result, graphs=target, shard=shard_uri)


def graph_processing(key: str, shards: list[str], source: dict, dag_id: str, run_id: str, *,
                     client=None, instances: int | None = None, poll_s: float = 30.0) -> list[dict]:
    """Stage 2 as one SageMaker Processing job over all shards (`streamguard.sagemaker_processing`).

    ``instances``: processing instances (default ``$STREAMGUARD_PREPARE_INSTANCES``, else 2; never
    more than there are shards). Returns one timing record per shard, as the mapped tasks do.

    Raises:
        RuntimeError: the job failed, or it completed without the graphs of every shard.
    """
    import os

    from streamguard.sagemaker_jobs import make_job_name, pytorch_training_image
    from streamguard.sagemaker_processing import build_graph_processing_request, run_graph_processing

    if not shards:
        return []
    sm = settings.resolve_sagemaker_settings()
    work_uri = run_uri(key, "prepare")
    count = instances or int(os.environ.get("STREAMGUARD_PREPARE_INSTANCES") or 2)
    request = build_graph_processing_request(
        job_name=make_job_name("sg", "graphs", f"{dag_id}/{run_id}", {"shards": shards, "src": source["sha256"]}),
        shards_uri=storage.join_uri(work_uri, "shards"), graphs_uri=storage.join_uri(work_uri, "graphs"),
        source_dir_uri=source["uri"], role_arn=sm.role_arn,
        image_uri=sm.image_uri or pytorch_training_image(sm.region, gpu=False),
        instance_count=max(1, min(count, len(shards))), tags={"dag_id": dag_id})
    if client is None:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        client = SageMakerHook(aws_conn_id=sm.aws_conn_id).get_conn()
    described = run_graph_processing(client, request, poll_s=poll_s)
    results, missing = [], []
    for shard in shards:
        number = shard.rstrip("/").rsplit("/", 1)[-1][len("shard-"):-len(".jsonl")]
        graphs = storage.join_uri(work_uri, "graphs", f"graphs-{number}.jsonl")
        timing = storage.join_uri(work_uri, "graphs", f"timing-{number}.json")
        if not storage.exists(graphs):
            missing.append(shard)
            continue
        record = json.loads(storage.read_text(timing)) if storage.exists(timing) else {}
        results.append(dict(record, graphs=graphs, shard=shard))
    if missing:
        raise RuntimeError(f"processing job {described['ProcessingJobName']} completed without the graphs of "
                           f"{len(missing)} shard(s): {missing[:5]}")
    return results


def finish_channels(key: str, results: list[dict]) -> dict:
    """Stage 3: attach the shards' graphs and write channels, quarantine and report (`prepare_finish`).

    Returns what `prepare_channels` returns; the `_SUCCESS.json` marker is written last.
    """
    from streamguard.data.prepare import prepare_finish

    data_root = run_uri(key, "data")
    marker = storage.join_uri(data_root, "_SUCCESS.json")
    if storage.exists(marker):
        log.info("channels already prepared at %s: reusing", data_root)
        return json.loads(storage.read_text(marker))
    plan = json.loads(storage.read_text(storage.join_uri(run_uri(key, "prepare"), "plan.json")))
    with tempfile.TemporaryDirectory(prefix="sg-finish-") as tmp:
        work = Path(tmp) / "work"
        storage.download(plan["work_uri"], str(work))
        report = _as_dict(prepare_finish(str(work), list(results), progress=log.info))
    result = {
        "channels": {name: storage.join_uri(data_root, name) for name in ("train", "validation", "test")},
        "data_hash": report.get("data_hash"),
        "source": plan["source"],
        "report": report,
        "quarantine_uri": storage.join_uri(data_root, "quarantine.jsonl"),
    }
    storage.write_text(marker, json.dumps(result, sort_keys=True, default=str))
    return result


def package_source(key: str) -> dict:
    """Build the deterministic source-dir tarball and upload it; returns {"uri", "sha256"}."""
    from streamguard.sourcedir import build_sourcedir_tarball

    with tempfile.TemporaryDirectory(prefix="sg-src-") as tmp:
        path, sha = build_sourcedir_tarball(Path(tmp) / "sourcedir.tar.gz")
        uri = run_uri(key, "code", sha[:12], "sourcedir.tar.gz")
        if not storage.exists(uri):
            storage.upload_file(str(path), uri)
    return {"uri": uri, "sha256": sha}


# ---------------------------------------------------------------------------------------- job specs
def _hyperparameters(config: TrainingConfig, model_type: str) -> dict[str, Any]:
    m = config.per_model[model_type]
    return {
        "model-type": model_type,
        "epochs": m.epochs,
        "batch-size": m.batch_size,
        "learning-rate": m.learning_rate,
        "seed": config.seed,
        "threshold": config.decision_threshold,
    }


def _account(instance_type: str, backend: str) -> tuple[str, str, str]:
    """(role, region, training image) of a job request for ``backend``."""
    from streamguard.sagemaker_jobs import LOCAL_IMAGE, LOCAL_REGION, is_gpu_instance, pytorch_training_image

    if backend == "sagemaker":
        sm = settings.resolve_sagemaker_settings()
        return sm.role_arn, sm.region, sm.image_uri or pytorch_training_image(
            sm.region, gpu=is_gpu_instance(instance_type))
    # The local backend ignores role and image but the request keeps the same shape.
    return "arn:aws:iam::000000000000:role/streamguard-local", LOCAL_REGION, LOCAL_IMAGE


def build_training_job(config: TrainingConfig, model_type: str, data: dict, source: dict,
                       dag_id: str, run_id: str, backend: str, *,
                       extra_hyperparameters: dict | None = None, model_channel_uri: str | None = None,
                       channels: dict | None = None, name_suffix: str = "") -> dict:
    """The CreateTrainingJob request for one model: the same dict for both backends."""
    from streamguard.sagemaker_jobs import build_training_request, make_job_name

    hps = _hyperparameters(config, model_type)
    hps.update(extra_hyperparameters or {})
    key = run_key(dag_id, run_id)
    job_name = make_job_name("sg", model_type + name_suffix, f"{dag_id}/{run_id}",
                             {"hps": hps, "data": data.get("data_hash"), "src": source["sha256"]})
    role, region, image = _account(config.instance_type, backend)
    return build_training_request(
        job_name=job_name,
        model_type=model_type,
        channels=channels if channels is not None else data["channels"],
        output_uri=run_uri(key, "jobs"),
        source_dir_uri=source["uri"],
        hyperparameters=hps,
        role_arn=role,
        region=region,
        image_uri=image,
        instance_type=config.instance_type,
        instance_count=config.instance_count,
        max_runtime_s=config.max_runtime_s,
        spot=config.use_spot,
        # Per run and model, not per job: a retry's new job (`<name>-a<try>`) resumes from the
        # last epoch the failed attempt saved. Evaluate jobs have none (`build_evaluate_job`).
        checkpoint_uri=run_uri(key, "checkpoints", model_type + name_suffix),
        model_channel_uri=model_channel_uri,
        tags={"dag_id": dag_id, "model_type": model_type},
    )


def build_evaluate_job(config: TrainingConfig, model_type: str, data: dict, source: dict, dag_id: str,
                       run_id: str, backend: str, *, model_channel_uri: str, name_suffix: str = "-eval",
                       expected_sha256: str | None = None) -> dict:
    """The CreateTrainingJob request of the evaluate job of one trained model (see
    `streamguard.sagemaker_jobs.build_evaluate_request`): one on-demand instance, no checkpoints.

    It scores at the model's own decision threshold (saved in its config), not at this run's default.
    """
    from streamguard.sagemaker_jobs import build_evaluate_request, make_job_name

    m = config.per_model[model_type]
    hps: dict[str, Any] = {"model-type": model_type, "batch-size": m.batch_size, "seed": config.seed}
    if expected_sha256:
        hps["model-sha256"] = expected_sha256
    job_name = make_job_name("sg", model_type + name_suffix, f"{dag_id}/{run_id}",
                             {"hps": hps, "model": model_channel_uri, "data": data.get("data_hash"),
                              "src": source["sha256"]})
    role, region, image = _account(config.instance_type, backend)
    return build_evaluate_request(
        job_name=job_name, model_type=model_type, test_uri=data["channels"]["test"],
        model_uri=model_channel_uri, output_uri=run_uri(run_key(dag_id, run_id), "jobs"),
        source_dir_uri=source["uri"], hyperparameters=hps, role_arn=role, region=region,
        image_uri=image, instance_type=config.instance_type, max_runtime_s=config.max_runtime_s,
        tags={"dag_id": dag_id, "model_type": model_type, "job_kind": "evaluate"},
    )


# ---------------------------------------------------------------------------------- running a job
def _local_backend():
    from streamguard.backends.local import LocalTrainingBackend

    return LocalTrainingBackend(settings.local_jobs_dir())


def _job_ops(backend: str):
    """(describe-or-None, describe, create) of ``backend``'s training jobs."""
    if backend == "local":
        from streamguard.backends.local import JobNotFoundError

        be = _local_backend()

        def describe_or_none(name: str) -> dict | None:
            try:
                return be.describe_training_job(name)
            except JobNotFoundError:
                return None

        return describe_or_none, be.describe_training_job, be.create_training_job
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.exceptions import ClientError

    hook = SageMakerHook(aws_conn_id="aws_default")

    def describe_or_none(name: str) -> dict | None:
        try:
            return hook.describe_training_job(name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
            return None

    def create(request: dict) -> None:
        # print_log=False: with it the provider sleeps check_interval (30 s) after creating.
        hook.create_training_job(request, wait_for_completion=False, print_log=False)

    return describe_or_none, hook.describe_training_job, create


def poke_seconds(backend: str) -> float:
    """Seconds between looks at a running job: ``STREAMGUARD_SAGEMAKER_POKE_SECONDS`` (60; a task that
    reschedules) or ``STREAMGUARD_LOCAL_POKE_SECONDS`` (3; a task that waits in its slot)."""
    import os

    if backend == "sagemaker":
        return float(os.environ.get("STREAMGUARD_SAGEMAKER_POKE_SECONDS", "60"))
    return float(os.environ.get("STREAMGUARD_LOCAL_POKE_SECONDS", "3"))


def _current_context():
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # noqa: BLE001 - called outside a task (tests, scripts): no retries to count
        return None


def run_evaluation_job(request: dict, backend: str, *, context=None, before_create=None,
                       poll_s: float | None = None, timeout_s: float | None = None) -> dict:
    """Run an evaluation job with the training jobs' lifecycle (`streamguard.lifecycle`).

    The task creates the job, or reconnects to the request's newest attempt (a retry, a reschedule);
    a retry after a failure that a new attempt may fix starts ``<name>-a<n>``; a failure that would
    recur fails the task for good (`AirflowFailException`), any other failure fails this try
    (`AirflowException`) so that its retry starts the next attempt. While the job runs, a SageMaker
    task gives its worker slot back (`AirflowRescheduleException`, every `poke_seconds`); a local one
    waits in its slot, as the local sensor does.

    Args:
        context: the task context (default: the current one; None outside a task).
        before_create: called before any job is created (an integrity check of the inputs).
        timeout_s: a local wait's limit (default ``MaxRuntimeInSeconds`` + 600).

    Returns:
        the Completed job's describe dict.
    """
    from datetime import datetime, timedelta, timezone

    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowRescheduleException

    from streamguard.lifecycle import AUTOMATIC, FAIL, ensure_job, watch_outcome
    from streamguard.sagemaker_jobs import validate_request

    validate_request(request)  # before any create, on both backends: the service would refuse it anyway
    context = context if context is not None else _current_context()
    ti = context.get("ti") if context is not None else None
    try_number = getattr(ti, "try_number", None)
    first_execution = not (context.get("task_reschedule_count", 0) if context is not None else 0)
    retry = isinstance(try_number, int) and try_number >= 2 and first_execution
    max_tries = getattr(ti, "max_tries", None)
    # Outside a task nothing retries, but the failure still says whether a new attempt could help.
    will_retry = not (isinstance(try_number, int) and isinstance(max_tries, int)) or try_number <= max_tries
    describe_or_none, describe, create = _job_ops(backend)

    def checked_create(job_request: dict) -> None:
        validate_request(job_request)
        if before_create is not None:
            before_create()
        log.info("starting evaluation job %s", job_request["TrainingJobName"])
        create(job_request)

    action = ensure_job(request, describe_or_none, checked_create, retry=retry, who=AUTOMATIC)
    if action.kind == FAIL:
        raise AirflowFailException(f"evaluation job {action.name} {action.describe.get('TrainingJobStatus')}: "
                                   f"{action.describe.get('FailureReason') or 'no reason given'} ({action.reason})")
    name = action.name
    poll_s = poll_s if poll_s is not None else poke_seconds(backend)
    timeout_s = timeout_s or request["StoppingCondition"]["MaxRuntimeInSeconds"] + 600
    deadline = time.monotonic() + timeout_s
    while True:
        desc = describe(name)
        outcome, message = watch_outcome(desc, will_retry=will_retry)
        if outcome == "done":
            return desc
        if outcome == "retry":
            raise AirflowException(f"evaluation {message}")
        if outcome == "fail":
            raise AirflowFailException(f"evaluation {message}")
        if backend == "sagemaker" and context is not None:
            log.info("%s; looking again in %.0f s (the worker slot is free meanwhile)", message, poll_s)
            raise AirflowRescheduleException(datetime.now(timezone.utc) + timedelta(seconds=poll_s))
        if time.monotonic() > deadline:
            raise AirflowException(f"evaluation job {name} still {desc['TrainingJobStatus']} after {timeout_s:.0f}s")
        time.sleep(poll_s)


def describe_job_record(job_name: str, backend: str, model_type: str) -> dict:
    """The small typed record downstream tasks read, from the backend's describe output."""
    from streamguard.jobs import job_record_from_describe

    if backend == "local":
        desc = _local_backend().describe_training_job(job_name)
    else:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        desc = SageMakerHook(aws_conn_id="aws_default").describe_training_job(job_name)
    record = job_record_from_describe(desc, backend, model_type)
    if record.status != "Completed":
        raise RuntimeError(f"job {job_name} is {record.status}: {record.failure_reason or 'no reason given'}")
    return record.to_dict()


def _fetch_tar(uri: str, dest: Path) -> Path:
    from streamguard.sourcedir import safe_extract

    dest.mkdir(parents=True, exist_ok=True)
    local = dest / "archive.tar.gz"
    storage.download(uri, str(local))
    out = dest / "x"
    safe_extract(str(local), str(out))
    return out


def output_uri_of(describe: dict) -> str:
    """`output.tar.gz` sits next to `model.tar.gz` under `<S3OutputPath>/<job>/output/`."""
    return describe["ModelArtifacts"]["S3ModelArtifacts"].rsplit("/", 1)[0] + "/output.tar.gz"


# ---------------------------------------------------------------------------------- evaluation
class ArtifactIntegrityError(RuntimeError):
    """A registered artifact no longer matches the sha256 recorded in the registry."""


def check_sha256(path: Path, expected: str | None, uri: str) -> str:
    """The file's sha256; raises ArtifactIntegrityError when ``expected`` is given and differs."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if expected and actual != expected:
        raise ArtifactIntegrityError(
            f"{uri}: sha256 {actual} differs from the registry's {expected}; "
            "the artifact was changed after registration: refusing to use it")
    return actual


def evaluation_metrics_uri(predictions_uri: str) -> str:
    """Where `evaluate_model` stores the evaluate job's `metrics.json` (beside `predictions.jsonl`)."""
    return predictions_uri.rsplit("/", 1)[0] + "/metrics.json"


def evaluate_model(config: TrainingConfig, model_type: str, job: dict, data: dict, source: dict,
                   dag_id: str, run_id: str, backend: str, *, name_suffix: str = "-eval",
                   expected_sha256: str | None = None) -> dict:
    """Real inference of the trained model on the test channel, through the entry's evaluate mode.

    Runs as its own job (local runner or SageMaker) with channels `test` and `model`, then reads
    `metrics.json` and `predictions.jsonl` from its output and the training-time validation metrics
    from the model artifact. Returns a small dict for the gate and the registry.

    With ``expected_sha256`` (a registered model) the archive is checked before the job starts,
    by the job itself before it loads the model (`--model-sha256`), and again when read here.
    """
    artifact_uri = job["artifact_uri"]

    def verify() -> None:
        with tempfile.TemporaryDirectory(prefix="sg-verify-") as tmp:
            local = Path(tmp) / "model.tar.gz"
            storage.download(artifact_uri, str(local))
            check_sha256(local, expected_sha256, artifact_uri)

    request = build_evaluate_job(config, model_type, data, source, dag_id, run_id, backend,
                                 model_channel_uri=artifact_uri.rsplit("/", 1)[0] + "/",
                                 name_suffix=name_suffix, expected_sha256=expected_sha256)
    desc = run_evaluation_job(request, backend, before_create=verify if expected_sha256 else None)
    key = run_key(dag_id, run_id)
    with tempfile.TemporaryDirectory(prefix="sg-eval-") as tmp:
        tmp_path = Path(tmp)
        out = _fetch_tar(output_uri_of(desc), tmp_path / "out")
        test_metrics = json.loads((out / "metrics.json").read_text())
        predictions_uri = run_uri(key, "eval", model_type, desc["TrainingJobName"], "predictions.jsonl")
        storage.upload_file(str(out / "predictions.jsonl"), predictions_uri)
        # The evaluate job's own metrics.json, next to its predictions: model packages reference it.
        storage.upload_file(str(out / "metrics.json"), evaluation_metrics_uri(predictions_uri))
        model_tar = tmp_path / "model.tar.gz"
        storage.download(artifact_uri, str(model_tar))
        sha = check_sha256(model_tar, expected_sha256, artifact_uri)
        size = model_tar.stat().st_size
        with tarfile.open(model_tar) as tf:
            member = tf.getmember("metrics.json") if "metrics.json" in tf.getnames() else None
            trained_metrics = json.load(tf.extractfile(member)) if member else {}
            weights = [m for m in tf.getmembers() if m.name.endswith(".safetensors")]
            weights_bytes = sum(m.size for m in weights)
    test = test_metrics.get("test", test_metrics)
    return {
        "model_type": model_type,
        "evaluation_job": desc["TrainingJobName"],
        "metrics": {"validation": trained_metrics.get("validation", {}), "test": test},
        "predictions_uri": predictions_uri,
        "artifact_uri": artifact_uri,
        "artifact_sha256": sha,
        "artifact_bytes": size,
        "weights_bytes": weights_bytes,
    }


# ------------------------------------------------------------------------------- gate + registry
def gate_model(config: TrainingConfig, evaluation: dict) -> dict:
    """Apply the metric gate; the decision and its reasons are returned either way."""
    from streamguard.gate import evaluate_gate, thresholds_for

    model_type = evaluation["model_type"]
    thresholds = thresholds_for(model_type, config.gate_overrides.get(model_type))
    decision = evaluate_gate(model_type, evaluation["metrics"], evaluation["artifact_bytes"], thresholds)
    # The registry record says which thresholds applied and where each came from.
    return {**_as_dict(decision), "threshold_sources": config.gate_sources.get(model_type, {})}


def register_model(config: TrainingConfig, job: dict, evaluation: dict, gate: dict, data: dict,
                   backend: str) -> dict:
    """Write the registry record (status `registered` or `rejected`), idempotent by job name."""
    from streamguard.registry import AliasConflict, RegistryClient

    model_type = evaluation["model_type"]
    client = RegistryClient(settings.registry_uri())
    version, result = record_version(
        client, model_type, evaluation=evaluation, job_name=job["job_name"], backend=backend, data=data,
        hyperparameters=_hyperparameters(config, model_type), gate=gate, approved=bool(gate["passed"]),
        extra={
            "predictions_uri": evaluation["predictions_uri"],
            "evaluation_job": evaluation["evaluation_job"],
            "job_metrics": job.get("metrics", {}),
            "data_source": data.get("source"),
            "channels": data["channels"],
        },
    )
    if gate["passed"] and client.get_alias(MODEL_NAMES[model_type], "champion") is None:
        # The first version that passes the gate becomes champion; later ones must beat it
        # in the retraining DAG's champion/challenger comparison.
        try:
            client.promote(MODEL_NAMES[model_type], version.version, expected_version=0,
                           reason="first version to pass the gate")
        except AliasConflict as exc:  # a concurrent run promoted first; its champion stands
            log.info("champion alias not set by this run: %s", exc)
    return result


def record_version(client, model_type: str, *, evaluation: dict, job_name: str, backend: str, data: dict,
                   hyperparameters: dict, gate: dict, approved: bool, extra: dict):
    """Register one evaluated model (``registered`` if ``approved``, else ``rejected``); in SageMaker
    mode also mirror it into the model package group. Idempotent by ``job_name``.

    The one way both DAGs record a trained model: the training DAG's `register_model` and the
    retraining DAG's challengers (`pipeline.retraining.compare_and_decide`).

    Returns:
        ``(ModelVersion, its dict)``; the dict has ``model_package_arn`` in SageMaker mode.
    """
    from streamguard.registry import code_version

    version = client.register(
        MODEL_NAMES[model_type],
        model_type=model_type,
        artifact_uri=evaluation["artifact_uri"],
        artifact_sha256=evaluation["artifact_sha256"],
        metrics=evaluation["metrics"],
        training_job_name=job_name,
        backend=backend,
        data_hash=data.get("data_hash"),
        code_version=code_version(),
        hyperparameters=hyperparameters,
        gate=gate,
        status="registered" if approved else "rejected",
        extra=extra,
    )
    result = _as_dict(version)
    if backend == "sagemaker":
        result["model_package_arn"] = register_model_package(result, approved=approved)
    return version, result


# ------------------------------------------------------------------------ SageMaker Model Registry
def model_package_group_name(model_type: str) -> str:
    """The SageMaker model package group of a model type (hyphens only: the API rejects `_`)."""
    return "streamguard-" + MODEL_NAMES[model_type].replace("_", "-")


def register_model_package(version: dict, *, approved: bool) -> str:
    """Mirror one registry version into the SageMaker Model Registry; returns the package ARN.

    The package group is created on first use. The package is `Approved` when ``approved`` (the
    gate passed; for a retraining challenger, it was promoted) and `Rejected` otherwise, serves `ModelDataUrl` = the registered artifact with the PyTorch inference
    image, and carries the registry version and training job in `CustomerMetadataProperties`.
    Idempotent by training job name: a task retry finds the package it created before.

    Args:
        version: the registry record (`ModelVersion.to_dict()`).
    """
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.exceptions import ClientError

    from streamguard.sagemaker_jobs import inference_container

    sm = SageMakerHook(aws_conn_id="aws_default").conn
    group = model_package_group_name(version["model_type"])
    job_name = version["training_job_name"]
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        try:
            sm.create_model_package_group(
                ModelPackageGroupName=group,
                ModelPackageGroupDescription=f"StreamGuard {version['model_name']} ({version['model_type']})",
            )
        except ClientError as create_exc:  # another run created it between describe and create
            if "already exists" not in str(create_exc):
                raise
    existing = _find_model_package(sm, group, job_name)
    if existing:
        log.info("model package for job %s already registered (retry): %s", job_name, existing)
        return existing
    response = sm.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=(f"{version['model_name']} registry version {version['version']} "
                                 f"({version['status']}) from training job {job_name}")[:1024],
        InferenceSpecification={
            "Containers": [inference_container(
                sm.meta.region_name, version["artifact_uri"],
                model_version=f"{version['model_name']}@{version['version']}",
                image_uri=settings.inference_image_override())],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="Approved" if approved else "Rejected",
        **_model_metrics(version),
        CustomerMetadataProperties={
            "registry_model_name": version["model_name"],
            "registry_version": str(version["version"]),
            "registry_status": version["status"],
            "training_job_name": job_name,
            "artifact_sha256": version["artifact_sha256"],
        },
    )
    return response["ModelPackageArn"]


def _model_metrics(version: dict) -> dict:
    """``ModelMetrics`` of a package: the evaluate job's metrics.json on S3 (shown in the SageMaker
    registry as model quality statistics); empty when the evaluation left none there."""
    predictions = (version.get("extra") or {}).get("predictions_uri")
    if not predictions:
        return {}
    uri = evaluation_metrics_uri(predictions)
    if not uri.startswith("s3://") or not storage.exists(uri):
        return {}
    return {"ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}}}


def _find_model_package(sm, group: str, job_name: str) -> str | None:
    """ARN of the package in ``group`` made from training job ``job_name``, if any."""
    for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        for summary in page.get("ModelPackageSummaryList", []):
            arn = summary["ModelPackageArn"]
            props = sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties") or {}
            if props.get("training_job_name") == job_name:
                return arn
    return None


def summarize(key: str, results: list[dict]) -> dict:
    """Markdown summary for the task log plus a JSON artifact in the run folder."""
    lines = ["| model | version | status | val acc | test acc | test F1 | test FPR | gate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r:
            continue
        m = r.get("metrics", {})
        val, test = m.get("validation", {}), m.get("test", {})
        gate = r.get("gate", {})

        def f(x):
            return "-" if x is None else f"{x:.4f}"

        lines.append(
            f"| {r.get('model_name')} | {r.get('version')} | {r.get('status')} | {f(val.get('accuracy'))} | "
            f"{f(test.get('accuracy'))} | {f(test.get('f1'))} | {f(test.get('fpr'))} | "
            f"{'pass' if gate.get('passed') else 'fail: ' + '; '.join(gate.get('reasons', []))} |"
        )
    markdown = "\n".join(lines)
    uri = run_uri(key, "summary.json")
    storage.write_text(uri, json.dumps({"results": results, "markdown": markdown}, indent=2, default=str))
    return {"summary_uri": uri, "markdown": markdown}


