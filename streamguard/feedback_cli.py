"""`streamguard feedback check|push`: validate reviewer feedback, and hand it to the retraining DAG.

The retraining DAG reads every feedback file under ``<artifact root>/feedback/`` (or its
``feedback_uri`` param) with `streamguard.feedback.ingest_feedback`; these commands run the same
validation first, so a producer learns about a bad line when it writes it, not a month later.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

_CHECK_EPILOG = """examples:
  streamguard feedback check verdicts.jsonl
  streamguard feedback check exports/ more.jsonl.gz --json

Every rejected line is printed as FILE:LINE: reason. Duplicates and conflicting verdicts are
counted, as the retraining DAG counts them.
exit status: 0 all lines valid, 1 some lines rejected (the valid ones are usable), 2 nothing usable
or an input unreadable.
"""

_PUSH_EPILOG = """examples:
  streamguard feedback push verdicts.jsonl
  streamguard feedback push verdicts.jsonl --to s3://bucket/streamguard/artifacts/feedback

The file is checked, then copied unchanged to DEST/<sha256 prefix>-<name> (the same content is
never stored twice). The retraining DAG reads DEST at its next run: monthly, or at once when the
`streamguard_feedback` asset is updated (Airflow REST API: POST /api/v2/assets/events).
exit status: 0 pushed (or already there), 2 nothing usable or unreadable: nothing is copied.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "feedback", help="validate reviewer feedback and hand it to the retraining DAG",
        description="Validate reviewer feedback (JSONL verdicts) and hand it to the retraining DAG.",
        epilog="examples:\n  streamguard feedback check verdicts.jsonl\n  streamguard feedback push verdicts.jsonl\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate feedback files; print every rejected line",
                           epilog=_CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL(.gz) files, directories or URIs")
    check.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    check.set_defaults(func=run_check)
    push = sub.add_parser("push", help="check a feedback file, then copy it where the retraining DAG reads",
                          epilog=_PUSH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    push.add_argument("file", metavar="FILE", help="a JSONL(.gz) feedback file")
    push.add_argument("--to", metavar="DEST", default=None,
                      help="destination directory URI (default: <artifact root>/feedback)")
    push.set_defaults(func=run_push)


def _ingest(inputs: list[str]):
    from streamguard.cli import CLIError
    from streamguard.data.io import InputError
    from streamguard.feedback import ingest_feedback

    try:
        return ingest_feedback(list(inputs))
    except InputError as exc:
        raise CLIError(str(exc), hint="check the path and that the file is JSONL or JSONL.gz") from exc


def _report(batch, *, out=None, err=None) -> None:
    out, err = out or sys.stdout, err or sys.stderr
    for item in batch.quarantined:
        print(f"{item['file']}:{item['line']}: {item['reason']}", file=err)
    summary = batch.summary()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())) or "none"
    print(f"kept: {summary['kept']} ({counts}); rejected: {summary['quarantined']}; "
          f"duplicates: {summary['duplicates']}", file=out)


def run_check(args: argparse.Namespace) -> int:
    batch = _ingest(args.inputs)
    if args.json:
        print(json.dumps({**batch.summary(), "rejected": [
            {k: item[k] for k in ("file", "line", "reason")} for item in batch.quarantined]}))
    else:
        _report(batch)
    if not batch.records:
        return 2
    return 1 if batch.quarantined else 0


def run_push(args: argparse.Namespace) -> int:
    from streamguard import storage
    from streamguard.cli import CLIError
    from streamguard.pipeline.retraining import feedback_root

    batch = _ingest([args.file])
    _report(batch)
    if not batch.records:
        raise CLIError(f"{args.file}: no usable feedback; nothing pushed",
                       hint="`streamguard feedback check` lists every rejected line")
    try:
        data = storage.read_bytes(args.file)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {args.file}: {exc}") from exc
    dest_dir = args.to or feedback_root()
    name = f"{hashlib.sha256(data).hexdigest()[:16]}-{Path(args.file).name}"
    dest = storage.join_uri(dest_dir, name)
    if storage.exists(dest):
        print(f"already pushed: {dest}")
        return 0
    storage.write_bytes(dest, data)
    print(f"pushed {len(batch.records)} usable record(s) to {dest}")
    if batch.quarantined:
        print(f"note: the {len(batch.quarantined)} rejected line(s) travel with the file; the retraining DAG "
              "quarantines them again", file=sys.stderr)
    return 0
