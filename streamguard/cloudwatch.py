"""Tail a SageMaker training job's CloudWatch logs with offsets that survive between polls.

SageMaker writes each host's output to the log group ``/aws/sagemaker/TrainingJobs``, stream
``<job>/algo-<n>-<epoch seconds>``; a spot interruption or a restarted host adds a new stream of the
same job. `LogTail` lists the job's streams by prefix (``DescribeLogStreams``, every page) and reads
each from its stored ``nextForwardToken``, so a poll returns only events it has not returned before,
including those of a stream that appeared since the last poll. The offsets are a plain dict
(stream -> token), for a caller to keep wherever its next poll runs (`OffsetFile`).

boto3 is not imported here: callers pass a CloudWatch Logs client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# Pages of GetLogEvents per stream and poll: a poll that falls far behind catches up over several.
MAX_PAGES_PER_STREAM = 20


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def job_streams(client, job_name: str, *, group: str = TRAINING_LOG_GROUP, page_size: int | None = None) -> list[str]:
    """Every log stream of ``job_name`` (``<job>/...``), over all pages of ``DescribeLogStreams``.

    The trailing slash keeps ``<job>-a2``'s streams out of ``<job>``'s. No log group yet (the job has
    not written anything) is no streams.
    """
    config = {"PageSize": page_size} if page_size else {}
    names: list[str] = []
    try:
        for page in client.get_paginator("describe_log_streams").paginate(
                logGroupName=group, logStreamNamePrefix=f"{job_name}/", PaginationConfig=config):
            names += [s["logStreamName"] for s in page.get("logStreams", [])]
    except Exception as exc:
        if _is_not_found(exc):
            return []
        raise
    return sorted(names)


class LogTail:
    """New log events of one training job, poll after poll.

    Args:
        client: a boto3 ``logs`` client.
        job_name: the training job.
        offsets: ``{stream: nextForwardToken}`` from an earlier poll (updated in place).
        page_size: ``DescribeLogStreams`` page size (None: the service's default).
    """

    def __init__(self, client, job_name: str, offsets: dict[str, str] | None = None, *,
                 group: str = TRAINING_LOG_GROUP, page_size: int | None = None):
        self.client = client
        self.job_name = job_name
        self.group = group
        self.page_size = page_size
        self.offsets: dict[str, str] = offsets if offsets is not None else {}

    def poll(self) -> list[tuple[str, str]]:
        """``(stream, message)`` of every event not returned before, stream by stream."""
        return list(self._events())

    def _events(self) -> Iterator[tuple[str, str]]:
        for stream in job_streams(self.client, self.job_name, group=self.group, page_size=self.page_size):
            token = self.offsets.get(stream)
            for _ in range(MAX_PAGES_PER_STREAM):
                kwargs = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
                if token:
                    kwargs["nextToken"] = token
                response = self.client.get_log_events(**kwargs)
                events = response.get("events", [])
                for event in events:
                    yield stream, event["message"]
                new = response.get("nextForwardToken")
                if new:
                    self.offsets[stream] = new
                # The same token back, or no events: the end of the stream for now.
                if not events or not new or new == token:
                    break
                token = new


class OffsetFile:
    """Offsets kept as JSON at a `streamguard.storage` URI (``s3://`` or ``file://``), so that a sensor in
    ``reschedule`` mode (a new process per poke, maybe on another worker) continues where it stopped."""

    def __init__(self, uri: str):
        self.uri = uri

    def load(self) -> dict[str, str]:
        from streamguard import storage

        if not storage.exists(self.uri):
            return {}
        try:
            data = json.loads(storage.read_text(self.uri))
        except ValueError:
            return {}  # a torn or foreign file: re-reading the log once is the safe side
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def save(self, offsets: dict[str, str]) -> None:
        from streamguard import storage

        storage.write_text(self.uri, json.dumps(offsets, sort_keys=True))
