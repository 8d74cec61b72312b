"""`streamguard prepare` and `streamguard sample` subcommands."""

from __future__ import annotations

import argparse
import sys
import time

_PREPARE_EPILOG = """examples:
  streamguard prepare --input data/raw.jsonl.gz --out prepared/
  streamguard prepare --input raw/ extra.jsonl --out file:///tmp/prepared --seed 7 --no-graphs
  streamguard prepare --input s3://bucket/raw/ --out prepared/ --val-ratio 0.15 --test-ratio 0.15

outputs: OUT/{train,validation,test}/data.jsonl, OUT/quarantine.jsonl (rejected lines with
file, line, reason and the raw text -- --no-raw keeps only length and sha256 of lines that
are not records), OUT/duplicates.jsonl and OUT/report.json. Hidden files and folders inside an
input directory are skipped; FIFOs, sockets and devices are refused.
exit status: 0 ok, 2 when an input is unreadable or no usable record remains.
"""

_SAMPLE_EPILOG = """examples:
  streamguard sample --out sample.jsonl.gz
  streamguard sample --out demo.jsonl --pairs 40 --seed 3
"""


def add_parser(subparsers) -> None:
    """Register `prepare` and `sample`."""
    p = subparsers.add_parser(
        "prepare", help="validate, deduplicate, split and augment raw JSONL into training channels",
        description="Prepare train/validation/test channels from raw JSON-lines records.",
        epilog=_PREPARE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", "-i", nargs="+", required=True, action="extend", metavar="PATH",
                   help="JSONL / JSONL.gz files, directories or URIs (file://, s3://); repeatable")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory or URI")
    p.add_argument("--seed", type=int, default=13, help="split seed (default: 13)")
    p.add_argument("--val-ratio", type=float, default=0.1, help="validation share (default: 0.1)")
    p.add_argument("--test-ratio", type=float, default=0.1, help="test share (default: 0.1)")
    p.add_argument("--max-code-bytes", type=int, default=200_000,
                   help="quarantine records with larger code (default: 200000)")
    p.add_argument("--language", action="append", dest="languages", metavar="LANG",
                   help="keep only these languages (python, java); repeatable")
    p.add_argument("--max-line-bytes", type=int, default=None, metavar="N",
                   help="quarantine longer input lines, unread, with their length "
                        "(default: $STREAMGUARD_MAX_LINE_BYTES or 8 MiB)")
    p.add_argument("--max-gzip-ratio", type=int, default=None, metavar="N",
                   help="refuse gzip inputs inflating more than N times (0: no limit; "
                        "default: $STREAMGUARD_MAX_GZIP_RATIO or 200)")
    p.add_argument("--no-raw", action="store_true",
                   help="quarantine lines that are not records by length and sha256, without their text")
    p.add_argument("--no-graphs", action="store_true", help="do not attach program graphs")
    p.add_argument("--graph-workers", type=int, default=None, metavar="N",
                   help="processes that build graphs (default: one per available core)")
    p.add_argument("--no-auto-counterfactuals", action="store_true",
                   help="do not generate automatic SQL counterfactuals")
    p.add_argument("--transforms", type=int, default=0, metavar="N",
                   help="add up to N program-transformation variants per record, within its split "
                        "(renames, helpers, dead code, sanitizers, ...; default: 0, none)")
    p.add_argument("--transform-names", default=None, metavar="A,B",
                   help="with --transforms: only these transformations, comma-separated (default: all)")
    p.set_defaults(func=run_prepare)

    s = subparsers.add_parser(
        "sample", help="write synthetic vulnerable/safe pairs (demo and test data)",
        description="Write synthetic Python and Java vulnerable/safe counterfactual pairs as JSONL.",
        epilog=_SAMPLE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--out", "-o", required=True, metavar="FILE", help="output .jsonl or .jsonl.gz")
    s.add_argument("--pairs", type=int, default=150, help="number of pairs (default: 150)")
    s.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    s.set_defaults(func=run_sample)


def run_prepare(args: argparse.Namespace) -> int:
    from streamguard.cli import CLIError
    from streamguard.data.prepare import PrepareError, prepare

    val, test = args.val_ratio, args.test_ratio
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise CLIError(f"--val-ratio {val} and --test-ratio {test} must be in [0, 1) and sum below 1")
    if args.max_code_bytes <= 0:
        raise CLIError(f"--max-code-bytes must be positive, got {args.max_code_bytes}")
    if args.max_line_bytes is not None and args.max_line_bytes <= 0:
        raise CLIError(f"--max-line-bytes must be positive, got {args.max_line_bytes}")
    if args.transforms < 0:
        raise CLIError(f"--transforms must be 0 (none) or positive, got {args.transforms}")
    if args.max_gzip_ratio is not None and args.max_gzip_ratio < 0:
        raise CLIError(f"--max-gzip-ratio must be 0 (no limit) or positive, got {args.max_gzip_ratio}")
    started = time.monotonic()
    progress, done = _progress()
    try:
        report = prepare(args.input, args.out, seed=args.seed, ratios=(1 - val - test, val, test),
                         max_code_bytes=args.max_code_bytes, with_graphs=not args.no_graphs,
                         auto_counterfactuals=not args.no_auto_counterfactuals,
                         allowed_languages=args.languages, progress=progress,
                         keep_raw=not args.no_raw, max_line_bytes=args.max_line_bytes,
                         max_gzip_ratio=args.max_gzip_ratio, graph_workers=args.graph_workers,
                         transforms=args.transforms,
                         transform_names=None if args.transform_names is None else
                         [n.strip() for n in args.transform_names.split(",") if n.strip()])
    except PrepareError as exc:
        raise CLIError(str(exc), exc.hint) from exc
    finally:
        done()
    aug = report.augmented
    print(f"kept: {report.kept} record(s) from {report.lines_read} line(s) in {len(report.files)} file(s)")
    print(f"quarantined: {report.quarantined_total}"
          + (f" ({', '.join(f'{r}: {n}' for r, n in report.quarantined.items())})" if report.quarantined else ""))
    print(f"duplicates removed: {report.duplicates['exact']} exact, {report.duplicates['normalized']} normalized; "
          f"conflicting sets: {report.conflicts}")
    print(f"augmented: {aug['explicit']} counterfactual, {aug['auto']} automatic "
          f"({aug['rejected_auto']} rejected, {aug['skipped_duplicate'] + aug['skipped_conflict']} already present)")
    if "transformations" in aug:
        tr = aug["transformations"]
        print(f"transformed: {tr['made']} variant(s) ({tr['skipped_duplicate'] + tr['skipped_conflict']} already "
              f"present); per transformation in report.json")
    for name, c in report.splits.items():
        print(f"{name}: {c['total']} ({c['label_1']} vulnerable, {c['label_0']} safe, {c['groups']} groups)")
    if report.graphs:
        gr = report.graphs
        print(f"graphs: {gr['built']} built, {gr['parse_failures']} parse failure(s)"
              + (f", {sum(gr['truncated'].values())} truncated ({gr['truncated']})" if gr.get("truncated") else "")
              + (f"; {gr['workers']} worker(s), {gr['seconds']} s wall, {gr['cpu_seconds']} CPU-s "
                 f"({gr['speedup']}x one core)"
                 if "workers" in gr else ""))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"data hash: {report.data_hash}")
    print(f"wrote {args.out} in {time.monotonic() - started:.1f}s")
    return 0


def _progress(stream=None):
    """Stage reporter: a rich spinner on a terminal; in logs, one plain line per stage on stderr.

    The plain lines (``progress: elapsed_s=1.2 stage=building graphs for 900 record(s)``) keep
    stdout's summary parseable on its own.
    """
    stream = stream or sys.stderr
    if not stream.isatty():
        started = time.monotonic()

        def plain(msg: str) -> None:
            print(f"progress: elapsed_s={time.monotonic() - started:.1f} stage={msg}", file=stream, flush=True)

        return plain, lambda: None
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is pinned
        return (lambda msg: print(f"... {msg}", file=stream)), lambda: None
    status = Console(file=stream).status("preparing")
    status.start()
    return (lambda msg: status.update(msg)), status.stop


def run_sample(args: argparse.Namespace) -> int:
    from streamguard.cli import CLIError
    from streamguard.data.synthetic import generate_samples, write_samples

    if args.pairs <= 0:
        raise CLIError(f"--pairs must be positive, got {args.pairs}")
    records = generate_samples(n_pairs=args.pairs, seed=args.seed)
    try:
        write_samples(args.out, records)
    except OSError as exc:
        raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    vulnerable = sum(r["label"] for r in records)
    print(f"wrote {len(records)} record(s) ({vulnerable} vulnerable, {len(records) - vulnerable} safe, "
          f"{sum('counterfactual' in r for r in records)} with a counterfactual) to {args.out}")
    return 0
