"""Graph shards as a SageMaker Processing job: the request (botocore's shape, moto), the entry run
from the packaged source dir on the shares `ShardedByS3Key` hands to each instance, and the
pipeline step that starts the job and collects its output (moto: the job is accepted and
"completes" without running, so the missing graphs are reported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from streamguard.data.prepare import prepare, prepare_finish, prepare_plan
from streamguard.data.synthetic import generate_samples, write_samples
from streamguard.core.archive import safe_extract
from streamguard.jobs.processing import (build_graph_processing_request, run_graph_processing,
                                         validate_processing_request)
from streamguard.sourcedir import build_sourcedir_tarball

ROLE = "arn:aws:iam::123456789012:role/streamguard-sagemaker"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.9.0-cpu-py312-ubuntu22.04-sagemaker"


def request(**kw) -> dict:
    args = dict(job_name="sg-graphs-run-1-0123456789", shards_uri="s3://bkt/runs/r/prepare/shards",
                graphs_uri="s3://bkt/runs/r/prepare/graphs", source_dir_uri="s3://bkt/runs/r/code/sourcedir.tar.gz",
                role_arn=ROLE, image_uri=IMAGE, instance_count=3)
    args.update(kw)
    return build_graph_processing_request(**args)


def test_request_is_valid_and_shards_the_shards_only():
    req = request()
    validate_processing_request(req)
    inputs = {i["InputName"]: i["S3Input"] for i in req["ProcessingInputs"]}
    assert inputs["shards"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert inputs["code"]["S3DataDistributionType"] == "FullyReplicated"
    assert req["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    assert req["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == "s3://bkt/runs/r/prepare/graphs/"
    script = req["AppSpecification"]["ContainerEntrypoint"][-1]
    assert "graph_shards.py --input /opt/ml/processing/input/shards --output /opt/ml/processing/output/graphs" in script
    for bad in ({"shards_uri": "file:///tmp/x"}, {"instance_count": 0}, {"source_dir_uri": "s3://b/code.zip"},
                {"job_name": "bad_name!"}):
        with pytest.raises(ValueError):
            request(**bad)
    broken = dict(req, ProcessingResources={"ClusterConfig": {"InstanceCount": 1}})
    with pytest.raises(ValueError, match="ProcessingResources.ClusterConfig"):
        validate_processing_request(broken)


def by_s3_key(keys: list[str], instances: int) -> list[list[str]]:
    """A ShardedByS3Key-like share: every object to exactly one instance (SageMaker does not
    document the exact assignment, only that the objects are divided among the instances)."""
    return [sorted(keys)[i::instances] for i in range(instances)]


def test_the_entry_from_the_source_dir_on_each_instance_share_gives_the_one_task_result(tmp_path):
    sample = tmp_path / "in.jsonl"
    write_samples(sample, generate_samples(n_pairs=20, seed=4))
    single = prepare([str(sample)], str(tmp_path / "single"), seed=3)
    work = tmp_path / "work"
    plan = prepare_plan([str(sample)], str(tmp_path / "staged"), str(work), shards=5, seed=3)
    # The container: the packaged source dir unpacked, nothing of this checkout on the path.
    src = tmp_path / "sg-src"
    tarball, _sha = build_sourcedir_tarball(tmp_path / "sourcedir.tar.gz")
    safe_extract(tarball, src)
    assert (src / "graph_shards.py").is_file() and (src / "streamguard" / "core" / "graph_shards.py").is_file()
    outputs = tmp_path / "s3-graphs"  # what SageMaker uploads from each instance's output dir
    for i, share in enumerate(by_s3_key([Path(p).name for p in plan["shards"]], 2)):
        received = tmp_path / f"instance-{i}" / "shards"
        received.mkdir(parents=True)
        for name in share:
            (received / name).write_bytes((work / "shards" / name).read_bytes())
        proc = subprocess.run([sys.executable, str(src / "graph_shards.py"), "--input", str(received),
                               "--output", str(outputs)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"{len(share)} shard(s) on this instance" in proc.stdout
    (work / "graphs").mkdir()
    timings = []
    for f in sorted(outputs.iterdir()):
        (work / "graphs" / f.name).write_bytes(f.read_bytes())
        if f.name.startswith("timing-"):
            timings.append(json.loads(f.read_text()))
    assert len(timings) == 5
    prepare_finish(str(work), timings)
    for name in ("train/data.jsonl", "validation/data.jsonl", "test/data.jsonl", "quarantine.jsonl",
                 "duplicates.jsonl"):
        assert (tmp_path / "staged" / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name


def test_pipeline_step_against_moto_starts_one_job_and_reports_missing_graphs(moto_server, monkeypatch, tmp_path):
    from streamguard.pipeline import preparation
    from streamguard.pipeline.records import RunContext, SourcePackage, run_uri

    monkeypatch.setenv("STREAMGUARD_ARTIFACT_ROOT", "s3://sg-proc/artifacts")
    monkeypatch.setenv("STREAMGUARD_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="sg-proc")
    key = "streamguard_training/run-1-abc"
    run = RunContext(dag_id="streamguard_training", run_id="run-1", backend="sagemaker", key=key)
    work = run_uri(key, "prepare")
    shards = [f"{work}/shards/shard-0000{i}.jsonl" for i in range(3)]
    for uri in shards:
        s3.put_object(Bucket="sg-proc", Key=uri.split("/", 3)[3], Body=b'["def f():\\n    pass\\n","python"]\n')
    source = SourcePackage(uri=run_uri(key, "code", "abc", "sourcedir.tar.gz"), sha256="0" * 64)
    sm = boto3.client("sagemaker")
    with pytest.raises(RuntimeError, match="completed without the graphs of 3 shard"):
        preparation.graph_processing(run, shards, source, client=sm, poll_s=0)
    (job,) = sm.list_processing_jobs()["ProcessingJobSummaries"]
    described = sm.describe_processing_job(ProcessingJobName=job["ProcessingJobName"])
    dist = {i["InputName"]: i["S3Input"]["S3DataDistributionType"] for i in described["ProcessingInputs"]}
    assert dist == {"code": "FullyReplicated", "shards": "ShardedByS3Key"}
    # A retry reconnects to the job of that name instead of starting a second one.
    with pytest.raises(RuntimeError):
        preparation.graph_processing(run, shards, source, client=sm, poll_s=0)
    assert len(sm.list_processing_jobs()["ProcessingJobSummaries"]) == 1
    # Once the graphs are there (as the instances upload them), the step returns one record per shard.
    for i in range(3):
        s3.put_object(Bucket="sg-proc", Key=f"{work.split('/', 3)[3]}/graphs/graphs-0000{i}.jsonl", Body=b"{}\n")
        s3.put_object(Bucket="sg-proc", Key=f"{work.split('/', 3)[3]}/graphs/timing-0000{i}.json",
                      Body=json.dumps({"records": 1, "seconds": 0.5, "cpu_seconds": 0.4}).encode())
    results = preparation.graph_processing(run, shards, source, client=sm, poll_s=0)
    assert [r["records"] for r in results] == [1, 1, 1]


def test_a_failed_job_fails_the_step_with_its_reason():
    class Client:
        def describe_processing_job(self, ProcessingJobName):
            return {"ProcessingJobName": ProcessingJobName, "ProcessingJobStatus": "Failed",
                    "FailureReason": "AlgorithmError: out of memory"}

    with pytest.raises(RuntimeError, match="Failed: AlgorithmError: out of memory"):
        run_graph_processing(Client(), request(), poll_s=0)
