"""`streamguard monitor`: a live table of training jobs on both backends, or follow one job.

Examples::

    streamguard monitor                      # live table (refreshes; plain text when not a terminal)
    streamguard monitor --once --json        # one snapshot as JSON
    streamguard monitor --backend all        # local jobs and SageMaker jobs together
    streamguard monitor --wait sg-gnn-...    # follow one job; exit 0 Completed, 1 Failed/Stopped

Local jobs come from the local backend's status records (metrics update while the job runs);
SageMaker jobs from ``ListTrainingJobs`` + ``DescribeTrainingJob`` (``FinalMetricDataList`` is
filled when a job ends). Following a SageMaker job prints its CloudWatch log (group
``/aws/sagemaker/TrainingJobs``, streams ``<job>/algo-N-<ts>``, each read on from its
``nextForwardToken``; a restarted host's new stream is picked up). Against SageMaker the monitor
polls at most every 10 s (``STREAMGUARD_SAGEMAKER_MIN_POLL_S``), whatever ``--interval`` says.
boto3 is imported only when SageMaker is asked for.
"""

from __future__ import annotations

import argparse

import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from streamguard.jobs.record import FAILED_STATES, TERMINAL_STATES

CHOICES = ("local", "sagemaker", "all")
DEFAULT_LIMIT = 20
# Each refresh costs ListTrainingJobs + one DescribeTrainingJob per job (+ CloudWatch calls when
# following): SageMaker's API rates are low, so no faster than this against the real service.
SAGEMAKER_MIN_POLL_S = 10.0


def effective_interval(interval: float, backend: str) -> float:
    """``interval``, raised to the SageMaker floor when SageMaker jobs are polled.

    The floor is ``$STREAMGUARD_SAGEMAKER_MIN_POLL_S`` (default 10 s); tests against moto lower it.
    """
    import os

    if backend == "local":
        return interval
    floor = float(os.environ.get("STREAMGUARD_SAGEMAKER_MIN_POLL_S", SAGEMAKER_MIN_POLL_S))
    return max(interval, floor)


@dataclass(frozen=True)
class JobRow:
    """One line of the table."""

    backend: str
    name: str
    status: str
    secondary_status: str | None
    instance: str
    created: str | None
    elapsed_s: float | None
    train_accuracy: float | None
    val_accuracy: float | None
    failure_reason: str | None


# ------------------------------------------------------------------------------------- collecting
def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value))


def _elapsed(describe: dict, now: datetime) -> float | None:
    start = _as_datetime(describe.get("TrainingStartTime")) or _as_datetime(describe.get("CreationTime"))
    if start is None:
        return None
    end = _as_datetime(describe.get("TrainingEndTime")) if describe.get("TrainingJobStatus") in TERMINAL_STATES else None
    return max(0.0, ((end or now) - start).total_seconds())


def row_from_describe(describe: dict, backend: str, now: datetime | None = None) -> JobRow:
    """A table row from a DescribeTrainingJob-shaped dict (either backend)."""
    now = now or datetime.now(timezone.utc)
    metrics = {m["MetricName"]: float(m["Value"]) for m in describe.get("FinalMetricDataList") or []}
    resources = describe.get("ResourceConfig") or {}
    if backend == "local":
        instance = "local"
    else:
        instance = f"{resources.get('InstanceType', '?')} x{resources.get('InstanceCount', 1)}"
    created = _as_datetime(describe.get("CreationTime"))
    return JobRow(
        backend=backend,
        name=describe["TrainingJobName"],
        status=describe["TrainingJobStatus"],
        secondary_status=describe.get("SecondaryStatus"),
        instance=instance,
        created=created.isoformat(timespec="seconds") if created else None,
        elapsed_s=_elapsed(describe, now),
        train_accuracy=metrics.get("train:accuracy"),
        val_accuracy=metrics.get("validation:accuracy"),
        failure_reason=describe.get("FailureReason") or None,
    )


def local_rows(jobs_dir: str | Path, limit: int = DEFAULT_LIMIT) -> list[JobRow]:
    from streamguard.backends.local import LocalTrainingBackend

    backend = LocalTrainingBackend(jobs_dir)
    rows = []
    for summary in backend.list_training_jobs()[:limit]:
        rows.append(row_from_describe(backend.describe_training_job(summary["TrainingJobName"]), "local"))
    return rows


def _sagemaker_client():
    import boto3

    return boto3.client("sagemaker")


def _logs_client():
    import boto3

    return boto3.client("logs")


def sagemaker_rows(limit: int = DEFAULT_LIMIT, client=None) -> list[JobRow]:
    client = client or _sagemaker_client()
    listed = client.list_training_jobs(SortBy="CreationTime", SortOrder="Descending", MaxResults=limit)
    return [row_from_describe(client.describe_training_job(TrainingJobName=s["TrainingJobName"]), "sagemaker")
            for s in listed.get("TrainingJobSummaries", [])]


def collect(backend: str, jobs_dir: str | Path, limit: int = DEFAULT_LIMIT) -> tuple[list[JobRow], list[str]]:
    """Rows for ``backend`` (``local``, ``sagemaker`` or ``all``), active jobs first, newest first.

    Returns:
        (rows, warnings): with ``all``, a backend that cannot be reached becomes a warning.

    Raises:
        CLIError: the one backend asked for cannot be reached.
    """
    from streamguard.cli import CLIError

    rows: list[JobRow] = []
    warnings: list[str] = []
    if backend in ("local", "all"):
        rows += local_rows(jobs_dir, limit)
    if backend in ("sagemaker", "all"):
        try:
            rows += sagemaker_rows(limit)
        except Exception as exc:  # noqa: BLE001 - credentials, network, permissions: say which
            message = f"SageMaker jobs unavailable: {type(exc).__name__}: {exc}"
            if backend == "sagemaker":
                raise CLIError(message, hint="check AWS credentials/region (AWS_PROFILE, AWS_DEFAULT_REGION)") from exc
            warnings.append(message)
    rows.sort(key=lambda r: r.created or "", reverse=True)
    rows.sort(key=lambda r: r.status in TERMINAL_STATES)  # stable: active first, each group newest first
    return rows, warnings


# -------------------------------------------------------------------------------------- rendering
HEADERS = ("backend", "job", "status", "instance", "elapsed", "train acc", "val acc")


def _fmt_elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _fmt_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _cells(row: JobRow) -> tuple[str, ...]:
    status = row.status
    if row.secondary_status and row.secondary_status != row.status:
        status = f"{row.status} ({row.secondary_status})"
    return (row.backend, row.name, status, row.instance, _fmt_elapsed(row.elapsed_s),
            _fmt_metric(row.train_accuracy), _fmt_metric(row.val_accuracy))


def render_plain(rows: list[JobRow]) -> str:
    """A fixed-width text table (for pipes, logs and --once)."""
    if not rows:
        return "no training jobs"
    table = [HEADERS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    for row in rows:
        if row.failure_reason and row.status in FAILED_STATES:
            lines.append(f"  {row.name}: {row.failure_reason.splitlines()[0][:200]}")
    return "\n".join(lines)


def render_rich(rows: list[JobRow]):
    from rich.table import Table

    colours = {"Completed": "green", "Failed": "red", "Stopped": "yellow", "InProgress": "cyan", "Stopping": "yellow"}
    table = Table(title=f"StreamGuard training jobs ({datetime.now().strftime('%H:%M:%S')})")
    for header in HEADERS:
        table.add_column(header, justify="right" if header in ("elapsed", "train acc", "val acc") else "left")
    for row in rows:
        cells = list(_cells(row))
        cells[2] = f"[{colours.get(row.status, 'white')}]{cells[2]}[/]"
        table.add_row(*cells)
    if not rows:
        table.caption = "no training jobs"
    return table


# ------------------------------------------------------------------------------------- following
def _describe_anywhere(name: str, backend: str, jobs_dir: str | Path):
    """(backend name, describe callable) for the job ``name``, looked up locally first."""
    from streamguard.backends.local import LocalTrainingBackend
    from streamguard.cli import CLIError

    if backend in ("local", "all"):
        local = LocalTrainingBackend(jobs_dir)
        if local.exists(name):
            return "local", local
    if backend in ("sagemaker", "all"):
        client = _sagemaker_client()
        try:
            client.describe_training_job(TrainingJobName=name)
        except Exception as exc:  # noqa: BLE001
            raise CLIError(f"training job {name!r} not found ({type(exc).__name__}: {exc})") from exc
        return "sagemaker", client
    raise CLIError(f"no local training job {name!r} under {jobs_dir}",
                   hint="use --jobs-dir, or --backend sagemaker/all for SageMaker jobs")


def wait_for_job(name: str, backend: str, jobs_dir: str | Path, interval: float, *, as_json: bool = False,
                 timeout: float | None = None, out=None) -> int:
    """Follow one job to its end (local: its log lines too). 0 Completed, 1 Failed/Stopped."""
    from streamguard.cli import CLIError

    out = out or sys.stdout
    where, handle = _describe_anywhere(name, backend, jobs_dir)
    offset = 0
    tail = None
    if where == "sagemaker" and not as_json:
        from streamguard.cloudwatch import LogTail

        tail = LogTail(_logs_client(), name)
    interval = effective_interval(interval, where)
    last_state = None
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        if where == "local":
            describe = handle.describe_training_job(name)
            if not as_json:
                lines, offset = handle.read_log(name, offset)
                for line in lines:
                    print(line, file=out)
        else:
            describe = handle.describe_training_job(TrainingJobName=name)
            if tail is not None:
                try:
                    for stream, message in tail.poll():
                        print(f"[{stream.split('/', 1)[-1]}] {message}", file=out)
                except Exception as exc:  # noqa: BLE001 - the job's state still decides the exit code
                    print(f"warning: CloudWatch logs unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
                    tail = None
        row = row_from_describe(describe, where)
        state = (row.status, row.secondary_status)
        if state != last_state and not as_json:
            print(f"== {name}: {row.status} ({row.secondary_status}) elapsed {_fmt_elapsed(row.elapsed_s)}", file=out)
            last_state = state
        if row.status in TERMINAL_STATES:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise CLIError(f"{name} still {row.status} after {timeout}s (--timeout)")
        time.sleep(interval)
    if as_json:
        print(json.dumps(asdict(row), indent=2), file=out)
    elif row.status == "Completed":
        print(f"== {name} completed: train acc {_fmt_metric(row.train_accuracy)}, "
              f"val acc {_fmt_metric(row.val_accuracy)}", file=out)
    if row.status != "Completed":
        print(f"{name} {row.status}: {row.failure_reason or 'no reason given'}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------ command
def run(args) -> int:
    from streamguard import settings

    backend = args.backend or settings.backend()
    jobs_dir = Path(args.jobs_dir).expanduser() if args.jobs_dir else settings.local_jobs_dir()
    if args.wait:
        return wait_for_job(args.wait, backend, jobs_dir, args.interval, as_json=args.json, timeout=args.timeout)
    interval = effective_interval(args.interval, backend)
    if args.once or args.json:
        rows, warnings = collect(backend, jobs_dir, args.limit)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else render_plain(rows))
        return 0
    if sys.stdout.isatty():
        from rich.live import Live

        with Live(render_rich([]), refresh_per_second=4, screen=False) as live:
            while True:
                rows, warnings = collect(backend, jobs_dir, args.limit)
                live.update(render_rich(rows))
                for warning in warnings:
                    live.console.print(f"[yellow]warning: {warning}[/]")
                time.sleep(interval)
    while True:  # not a terminal: one plain block per interval
        rows, warnings = collect(backend, jobs_dir, args.limit)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(render_plain(rows) + "\n", flush=True)
        time.sleep(interval)


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="show active and recent training jobs (local and SageMaker)",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n" + "\n".join("  " + line.strip() for line in __doc__.split("\n\n")[2].splitlines()) + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=CHOICES, default=None,
                        help="which jobs to show (default: $STREAMGUARD_BACKEND, else local)")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--interval", type=_positive, default=2.0, metavar="S", help="refresh every S seconds (SageMaker: at least 10)")
    parser.add_argument("--wait", metavar="JOB", help="follow one job; exit 0 if it completes, 1 otherwise")
    parser.add_argument("--timeout", type=_positive, default=None, metavar="S", help="with --wait: give up after S s")
    parser.add_argument("--jobs-dir", metavar="DIR", help="local jobs directory (default: $STREAMGUARD_LOCAL_JOBS_DIR)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="at most this many jobs per backend")
    parser.add_argument("--json", action="store_true", help="machine-readable output (implies --once)")
    parser.set_defaults(func=run)
