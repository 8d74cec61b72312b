"""Graph building of sharded preparation as a SageMaker Processing job (`ShardedByS3Key`).

When the data is too large for the Airflow workers, stage 2 of `streamguard.data.prepare` (the
graphs of each ``shard-NNNNN.jsonl``) runs on ``InstanceCount`` processing instances instead of
mapped tasks: the shards prefix is a ``ShardedByS3Key`` input, so each instance receives a share of
the shard objects; the source dir (the featurizer) is a ``FullyReplicated`` input; each instance
runs ``training_entry/graph_shards.py``, which writes ``graphs-NNNNN.jsonl`` for every shard it got
to the output, uploaded at the end to the run's ``prepare/graphs/`` prefix. `prepare_finish` then
reads them as it reads the mapped tasks' output (the same function writes both).

IAM: the Airflow role needs ``sagemaker:CreateProcessingJob``, ``sagemaker:DescribeProcessingJob``,
``sagemaker:StopProcessingJob``, ``sagemaker:AddTags`` and ``iam:PassRole`` on the execution role;
the execution role needs ``s3:GetObject`` / ``s3:ListBucket`` on the shards and source-dir prefixes,
``s3:PutObject`` on the graphs prefix, ``ecr:GetAuthorizationToken`` / ``ecr:BatchGetImage`` /
``ecr:GetDownloadUrlForLayer`` for the image, and ``logs:CreateLogGroup`` / ``logs:CreateLogStream``
/ ``logs:PutLogEvents`` (``/aws/sagemaker/ProcessingJobs``). The container installs the two
tree-sitter packages pinned in the source dir's requirements.txt with pip: without internet access
(a VPC without a NAT gateway) use an image that has them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

CODE_DIR = "/opt/ml/processing/input/code"
SHARDS_DIR = "/opt/ml/processing/input/shards"
GRAPHS_DIR = "/opt/ml/processing/output/graphs"
ENTRY = "graph_shards.py"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
# Unpack the source dir, install the featurizer's parser (its pins from the shipped requirements.txt),
# run the entry on the shards this instance received.
_SCRIPT = (
    "set -euo pipefail; mkdir -p /tmp/sg-src; "
    f"tar -xzf {CODE_DIR}/sourcedir.tar.gz -C /tmp/sg-src; "
    "grep -E '^tree-sitter(-java)?==' /tmp/sg-src/requirements.txt | xargs python3 -m pip install --quiet; "
    f"python3 /tmp/sg-src/{ENTRY} --input {SHARDS_DIR} --output {GRAPHS_DIR}"
)
TERMINAL = ("Completed", "Failed", "Stopped")


def build_graph_processing_request(*, job_name: str, shards_uri: str, graphs_uri: str, source_dir_uri: str,
                                   role_arn: str, image_uri: str | None = None, region: str | None = None,
                                   instance_count: int = 2,
                                   instance_type: str = DEFAULT_INSTANCE_TYPE, max_runtime_s: int = 2 * 3600,
                                   volume_gb: int = 30, tags: Mapping[str, str] | None = None) -> dict:
    """The ``CreateProcessingJob`` request that builds the graphs of every shard under ``shards_uri``.

    ``image_uri`` None: the default training image of ``region`` for ``instance_type``.

    Raises:
        ValueError: a URI that is not ``s3://``, a bad job name, counts out of the API's range, or
            neither an image nor a region.
    """
    from streamguard.jobs.images import training_image
    from streamguard.jobs.names import check_job_name

    if image_uri is None and region is None:
        raise ValueError("build_graph_processing_request: give image_uri or the region of the default image")
    image_uri = training_image(region, instance_type, override=image_uri)

    for field, uri in (("shards_uri", shards_uri), ("graphs_uri", graphs_uri), ("source_dir_uri", source_dir_uri)):
        if not str(uri).startswith("s3://"):
            raise ValueError(f"{field} must be an s3:// URI for a SageMaker Processing job, got {uri!r}")
    if not source_dir_uri.endswith("/sourcedir.tar.gz"):
        raise ValueError(f"source_dir_uri must name the packaged sourcedir.tar.gz, got {source_dir_uri!r}")
    if not 1 <= int(instance_count) <= 100:
        raise ValueError(f"instance_count must be between 1 and 100, got {instance_count}")
    if not 1 <= int(max_runtime_s) <= 5 * 24 * 3600:
        raise ValueError(f"max_runtime_s must be between 1 and 432000 (5 days), got {max_runtime_s}")
    s3_input = {"S3DataType": "S3Prefix", "S3InputMode": "File", "S3CompressionType": "None"}
    return {
        "ProcessingJobName": check_job_name(job_name),
        "RoleArn": role_arn,
        "AppSpecification": {"ImageUri": image_uri, "ContainerEntrypoint": ["/bin/bash", "-c", _SCRIPT]},
        "ProcessingInputs": [
            {"InputName": "code", "S3Input": dict(s3_input, S3Uri=source_dir_uri, LocalPath=CODE_DIR,
                                                  S3DataDistributionType="FullyReplicated")},
            # Each instance gets a share of the shard objects.
            {"InputName": "shards", "S3Input": dict(s3_input, S3Uri=shards_uri.rstrip("/") + "/",
                                                    LocalPath=SHARDS_DIR, S3DataDistributionType="ShardedByS3Key")},
        ],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": "graphs", "S3Output": {"S3Uri": graphs_uri.rstrip("/") + "/", "LocalPath": GRAPHS_DIR,
                                                  "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": int(instance_count),
                                                  "InstanceType": instance_type, "VolumeSizeInGB": int(volume_gb)}},
        "StoppingCondition": {"MaxRuntimeInSeconds": int(max_runtime_s)},
        "Environment": {"PYTHONUNBUFFERED": "1"},
        "Tags": [{"Key": k, "Value": str(v)} for k, v in sorted({"streamguard": "prepare-graphs",
                                                                  **(tags or {})}.items())],
    }


def validate_processing_request(request: Mapping[str, Any]) -> None:
    """Check ``request`` offline against botocore's ``CreateProcessingJob`` input shape.

    Raises:
        ValueError: botocore's report, one line per problem.
    """
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(
        "CreateProcessingJob").input_shape
    report = ParamValidator().validate(dict(request), shape)
    if report.has_errors():
        raise ValueError(f"CreateProcessingJob request is invalid:\n{report.generate_report()}")


def run_graph_processing(client, request: Mapping[str, Any], *, poll_s: float = 30.0, timeout_s: float | None = None,
                         sleep: Callable[[float], None] = time.sleep) -> dict:
    """Create the job (or reconnect to one of that name: a retried task starts no second job) and
    wait for its end. Returns the final ``DescribeProcessingJob``.

    Raises:
        RuntimeError: the job Failed or was Stopped (with SageMaker's ``FailureReason``), or ``timeout_s`` passed.
    """
    from botocore.exceptions import ClientError

    validate_processing_request(request)
    name = request["ProcessingJobName"]
    try:
        client.describe_processing_job(ProcessingJobName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
            raise
        client.create_processing_job(**request)
    started = time.monotonic()
    while True:
        described = client.describe_processing_job(ProcessingJobName=name)
        status = described["ProcessingJobStatus"]
        if status == "Completed":
            return described
        if status in TERMINAL:
            raise RuntimeError(f"processing job {name} {status}: {described.get('FailureReason') or 'no reason given'}")
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise RuntimeError(f"processing job {name} still {status} after {timeout_s:.0f}s")
        sleep(poll_s)
