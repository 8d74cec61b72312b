"""Preparing a run's data channels into the artifact store: in one step, or sharded in three.

Sharded (what the training DAG does): `plan_channels` (decisions over all records, graph shards
written) → `graph_shard` per shard on the workers, or `graph_processing` as one SageMaker Processing
job → `finish_channels`. Every step is idempotent for a run key: the ``_SUCCESS.json`` marker (the
`PreparedChannels` record) is written last and a retry reuses what it finds.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from streamguard import settings, storage
from streamguard.pipeline.params import TrainingConfig
from streamguard.pipeline.records import PreparedChannels, RunContext, SourcePackage, plain, run_uri

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def _marker(key: str) -> str:
    return storage.join_uri(run_uri(key, "data"), "_SUCCESS.json")


def _reuse(key: str) -> PreparedChannels | None:
    marker = _marker(key)
    if not storage.exists(marker):
        return None
    log.info("channels already prepared at %s (retry): reusing", marker)
    return PreparedChannels.from_dict(json.loads(storage.read_text(marker)))


def _finish(key: str, report: dict, source: str) -> PreparedChannels:
    data_root = run_uri(key, "data")
    prepared = PreparedChannels(
        channels={name: storage.join_uri(data_root, name) for name in SPLITS},
        data_hash=report.get("data_hash"), source=source, report=report,
        quarantine_uri=storage.join_uri(data_root, "quarantine.jsonl"))
    storage.write_text(_marker(key), json.dumps(prepared.to_dict(), sort_keys=True, default=str))
    return prepared


def _ratios(config: TrainingConfig) -> tuple[float, float, float]:
    return (1.0 - config.val_ratio - config.test_ratio, config.val_ratio, config.test_ratio)


def _prepare_inputs(config: TrainingConfig, tmp_path: Path) -> tuple[list[str], str]:
    """(input files or URIs, a description of the source): `data_uri`, or generated sample data."""
    if config.data_uri:
        return [config.data_uri], config.data_uri
    from streamguard.data.synthetic import generate_samples, write_samples

    sample = tmp_path / "sample.jsonl.gz"
    write_samples(sample, generate_samples(n_pairs=config.sample_pairs, seed=config.seed))
    return [str(sample)], f"generated:{config.sample_pairs}-pairs-seed-{config.seed}"


def prepare_channels(config: TrainingConfig, key: str) -> PreparedChannels:
    """Prepare train/validation/test channels (with graphs) into the artifact store in one step.

    A retry finds the `_SUCCESS` marker and reuses the prepared data instead of preparing (and
    hashing) it again.
    """
    from streamguard.data.prepare import prepare

    reused = _reuse(key)
    if reused is not None:
        return reused
    data_root = run_uri(key, "data")
    with tempfile.TemporaryDirectory(prefix="sg-prepare-") as tmp:
        tmp_path = Path(tmp)
        inputs, source = _prepare_inputs(config, tmp_path)
        out = tmp_path / "prepared"
        report = plain(prepare(inputs, str(out), seed=config.seed, ratios=_ratios(config),
                               transforms=config.transform_variants))
        for path in sorted(out.rglob("*")):
            if path.is_file():
                storage.upload_file(str(path), storage.join_uri(data_root, str(path.relative_to(out))))
    return _finish(key, report, source)


def plan_channels(config: TrainingConfig, key: str) -> list[str]:
    """Stage 1 of sharded preparation (`streamguard.data.prepare.prepare_plan`) for a run.

    Writes the plan and its shards under ``<run>/prepare/`` in the artifact store (with
    ``plan.json``: ``{"work_uri", "shards", "source", "records"}``) and returns the shard URIs.
    When the channels of this run are already prepared (a cleared run), returns no shards:
    `finish_channels` reuses them.
    """
    from streamguard.data.prepare import prepare_plan

    work_uri = run_uri(key, "prepare")
    if storage.exists(_marker(key)):
        log.info("channels already prepared at %s: reusing", _marker(key))
        return []
    with tempfile.TemporaryDirectory(prefix="sg-plan-") as tmp:
        tmp_path = Path(tmp)
        inputs, source = _prepare_inputs(config, tmp_path)
        plan = prepare_plan(inputs, run_uri(key, "data"), str(tmp_path / "work"), shards=config.prepare_shards,
                            seed=config.seed, ratios=_ratios(config), progress=log.info,
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


def graph_processing(run: RunContext, shards: list[str], source: SourcePackage, *, client=None,
                     instances: int | None = None, poll_s: float = 30.0) -> list[dict]:
    """Stage 2 as one SageMaker Processing job over all shards (`streamguard.jobs.processing`).

    ``instances``: processing instances (default ``$STREAMGUARD_PREPARE_INSTANCES``, else 2; never
    more than there are shards). Returns one timing record per shard, as the mapped tasks do.

    Raises:
        RuntimeError: the job failed, or it completed without the graphs of every shard.
    """
    from streamguard.jobs.names import make_job_name
    from streamguard.jobs.processing import build_graph_processing_request, run_graph_processing

    if not shards:
        return []
    sm = settings.resolve_sagemaker_settings()
    work_uri = run.uri("prepare")
    count = instances or int(os.environ.get("STREAMGUARD_PREPARE_INSTANCES") or 2)
    request = build_graph_processing_request(
        job_name=make_job_name("sg", "graphs", run.dag_run_id, {"shards": shards, "src": source.sha256}),
        shards_uri=storage.join_uri(work_uri, "shards"), graphs_uri=storage.join_uri(work_uri, "graphs"),
        source_dir_uri=source.uri, role_arn=sm.role_arn, region=sm.region, image_uri=sm.image_uri,
        instance_count=max(1, min(count, len(shards))), tags={"dag_id": run.dag_id})
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


def finish_channels(key: str, results: list[dict]) -> PreparedChannels:
    """Stage 3: attach the shards' graphs and write channels, quarantine and report (`prepare_finish`).

    Returns what `prepare_channels` returns; the `_SUCCESS.json` marker is written last.
    """
    from streamguard.data.prepare import prepare_finish

    reused = _reuse(key)
    if reused is not None:
        return reused
    plan = json.loads(storage.read_text(storage.join_uri(run_uri(key, "prepare"), "plan.json")))
    with tempfile.TemporaryDirectory(prefix="sg-finish-") as tmp:
        work = Path(tmp) / "work"
        storage.download(plan["work_uri"], str(work))
        report = plain(prepare_finish(str(work), list(results), progress=log.info))
    return _finish(key, report, plan["source"])
