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

_JOIN_EPILOG = """examples:
  streamguard feedback join --verdicts verdicts.jsonl --confirmations reviewed.jsonl --out feedback.jsonl
  streamguard feedback push feedback.jsonl

Each confirmed prediction becomes one feedback record: confirmed / false_positive (the model
flagged it) or missed / correct (it did not), with the model version and A/B variant that served
it. Confirmations that match no served prediction are printed as FILE:LINE: reason.
exit status: 0 joined, 1 some confirmations unmatched (the rest written), 2 nothing to write.
"""

_CAPTURE_EPILOG = """examples:
  streamguard feedback from-capture s3://bucket/streamguard/artifacts/datacapture/gnn --out verdicts.jsonl

Reads <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl (requests and responses captured
by the endpoint's DataCaptureConfig) into the verdict-log lines `feedback join` reads.
exit status: 0 converted, 1 some records unusable (printed, the rest written), 2 nothing usable.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "feedback", help="validate reviewer feedback and hand it to the retraining DAG",
        description="Validate reviewer feedback (JSONL verdicts) and hand it to the retraining DAG.",
        epilog="examples:\n  streamguard feedback check verdicts.jsonl\n  streamguard feedback push verdicts.jsonl\n"
               "  streamguard feedback join --verdicts served.jsonl --confirmations reviewed.jsonl --out f.jsonl\n",
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
    join = sub.add_parser("join", help="served predictions + reviewers' confirmations -> feedback",
                          epilog=_JOIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    join.add_argument("--verdicts", nargs="+", required=True, metavar="LOG",
                      help="verdict logs of `streamguard serve` (or of `feedback from-capture`)")
    join.add_argument("--confirmations", nargs="+", required=True, metavar="FILE",
                      help='JSONL: {"id", "vulnerable": true|false, "request_id"?, "timestamp"?, "cwe"?}')
    join.add_argument("--out", required=True, metavar="FILE", help="feedback JSONL to write")
    join.set_defaults(func=run_join)
    cap = sub.add_parser("from-capture", help="SageMaker data capture files -> verdict log",
                         epilog=_CAPTURE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cap.add_argument("capture", metavar="URI", help="the endpoint's DataCaptureConfig.DestinationS3Uri (or a copy)")
    cap.add_argument("--out", required=True, metavar="FILE", help="verdict log to write")
    cap.set_defaults(func=run_from_capture)


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
    from streamguard.pipeline.feedback_ingest import feedback_root

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


def _write_jsonl(path: str, rows: list[dict]) -> None:
    from streamguard import storage

    storage.write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def run_join(args: argparse.Namespace) -> int:
    from streamguard.cli import CLIError
    from streamguard.serving.verdicts import join_confirmations, read_jsonl

    verdicts, bad = [], []
    try:
        for uri in args.verdicts:
            for lineno, obj in read_jsonl(uri):
                if isinstance(obj, dict):
                    verdicts.append(obj)
                else:
                    bad.append(f"{uri}:{lineno}: {obj if isinstance(obj, str) else 'not a JSON object'}")
        confirmations = [(f"{uri}:{lineno}", obj) for uri in args.confirmations for lineno, obj in read_jsonl(uri)]
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read: {exc}", "check the paths") from exc
    result = join_confirmations(verdicts, confirmations)
    for line in bad:
        print(line, file=sys.stderr)
    for item in result.unmatched_confirmations:
        print(f"{item['line']}: {item['reason']}", file=sys.stderr)
    if not result.feedback:
        raise CLIError("no confirmation matched a served prediction; nothing written",
                       "confirmations need the 'id' (and 'request_id') of a verdict-log line")
    _write_jsonl(args.out, result.feedback)
    s = result.summary()
    print(f"wrote {s['feedback']} feedback records to {args.out}; unmatched confirmations: "
          f"{s['unmatched_confirmations']}; predictions not yet reviewed: {s['unconfirmed']}; "
          f"unscored: {s['unscored']}")
    return 1 if result.unmatched_confirmations or bad else 0


def run_from_capture(args: argparse.Namespace) -> int:
    from streamguard import storage
    from streamguard.cli import CLIError
    from streamguard.serving.verdicts import from_capture, read_jsonl, variant_from_capture_uri

    try:
        files = [u for u in storage.list_dir(args.capture, recursive=True) if u.endswith(".jsonl")]
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot list {args.capture}: {exc}") from exc
    if not files:
        raise CLIError(f"no capture files (*.jsonl) under {args.capture}",
                       "is DataCaptureConfig enabled on the endpoint, and has it served requests?")
    rows, problems = [], []
    for uri in files:
        got, bad = from_capture(read_jsonl(uri), variant=variant_from_capture_uri(uri, args.capture), where=uri)
        rows += got
        problems += bad
    for p in problems:
        print(f"{p['file']}:{p['line']}: {p['reason']}", file=sys.stderr)
    if not rows:
        raise CLIError(f"no usable capture records under {args.capture}")
    _write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} verdict-log lines from {len(files)} capture files to {args.out}")
    return 1 if problems else 0
