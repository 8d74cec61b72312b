"""A shared moto S3/SageMaker server for tests (``ThreadedMotoServer`` on a free loopback port).

s3fs (aiobotocore) bypasses moto's in-process ``mock_aws``, so anything that goes through
fsspec talks to this real HTTP server instead. One server runs per test process (started on
first use); each test gets a clean state (``/moto-api/reset``) and fake credentials.

The ``moto_server`` fixture (tests/unit/conftest.py) starts it, resets it and points the AWS
environment at it::

    def test_upload(moto_server):
        boto3.client("s3").create_bucket(Bucket="bkt")   # goes to moto via AWS_ENDPOINT_URL

`put_log_lines` writes CloudWatch log events the way a SageMaker training container does (group
`TRAINING_LOG_GROUP`, streams ``<job>/algo-<n>-<epoch s>``).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# Settings that would send requests elsewhere or read a developer's real AWS config.
_CLEARED_ENV = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE")

# Where SageMaker training jobs write their CloudWatch logs.
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"

_lock = threading.Lock()
_server = None
_endpoint: str | None = None


def _make_conditional_puts_atomic() -> None:
    """Make moto's PutObject atomic, as S3's is.

    moto checks ``If-None-Match: *`` / ``If-Match`` and then writes, with nothing holding the two
    together, so on its threaded server two racing conditional writes to one key can both succeed
    (seen as a lost registry version or a duplicated alias revision under load). S3 guarantees
    that exactly one of them wins; the registry's concurrency tests check our protocol against
    that guarantee, so every PutObject here runs its check-then-write under one lock.
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    if getattr(original, "_streamguard_atomic", False):
        return
    put_lock = threading.Lock()

    def put_object(self, *args, **kwargs):
        with put_lock:
            return original(self, *args, **kwargs)

    put_object._streamguard_atomic = True
    S3Response.put_object = put_object


def start_moto_server() -> str:
    """Start (once per process) a moto server on 127.0.0.1:<free port>; return its endpoint URL."""
    global _server, _endpoint
    with _lock:
        if _endpoint is None:
            from moto.server import ThreadedMotoServer

            _make_conditional_puts_atomic()

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _server, _endpoint = server, f"http://{host}:{port}"
        return _endpoint


def reset_moto_server(endpoint: str) -> None:
    """Drop every bucket, object and job the server holds."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def aws_env(endpoint: str) -> dict[str, str]:
    """The environment that points boto3, s3fs and the AWS CLI at ``endpoint`` with fake keys."""
    return {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": endpoint}


def put_log_lines(logs_client, stream: str, *messages: str, group: str = TRAINING_LOG_GROUP) -> None:
    """Append ``messages`` (one event each, in order) to ``stream`` of ``group``, creating the stream
    if it does not exist yet (the group must exist)."""
    try:
        logs_client.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs_client.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    logs_client.put_log_events(logGroupName=group, logStreamName=stream,
                               logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])
