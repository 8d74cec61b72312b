"""`streamguard scan PATH...`: vulnerable functions in Java/Python code, as text, JSON or SARIF 2.1.0."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MODEL_NAMES = {"gnn": "taint_flow_gnn", "transformer": "sql_intent_transformer"}

EPILOG = """examples:
  streamguard scan src/                                      # the GNN champion, findings as text
  streamguard scan src/ app.py --model both --format json
  streamguard scan . --format sarif --output streamguard.sarif --fail-on error
  streamguard scan src/ --model-dir ./model                  # an unpacked model instead of the registry

Java (*.java) and Python (*.py) files; below a directory, .gitignore'd files and vendored
directories (vendor/, node_modules/, third_party/, virtualenvs, ...) are skipped and counted.
Each function (or a file without functions) is scored; a finding is a function the model flags
at its threshold: level `error` at P(vulnerable) >= 0.9, `warning` below.
exit status: 0 no finding at or above --fail-on, 1 findings at or above it, 2 a file or model
could not be used (the scan is incomplete; the output still lists what was found).
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("scan", help="scan Java/Python files for vulnerable code (text, JSON or SARIF)",
                              description="Scan Java and Python files and directories with the registry's "
                                          "champion models (or a model dir).",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files and directories")
    p.add_argument("--model", choices=("gnn", "transformer", "both"), default="gnn",
                   help="which champion(s) to use (default gnn: it reports taint paths)")
    p.add_argument("--model-dir", action="append", metavar="DIR", default=None,
                   help="unpacked model dir(s) instead of the registry's champions (repeatable)")
    p.add_argument("--registry", metavar="URI", default=None, help="registry URI (default: $STREAMGUARD_REGISTRY_URI)")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--output", metavar="FILE", default=None, help="write the report here instead of stdout")
    p.add_argument("--fail-on", choices=("error", "warning", "note", "none"), default="warning",
                   help="lowest finding level that makes the exit status 1 (default warning; none: never)")
    p.set_defaults(func=run)


def load_handlers(args) -> list:
    from streamguard.cli import CLIError
    from streamguard.serving.models import ModelLoadError, load_model_dir, load_registered

    try:
        if args.model_dir:
            return [load_model_dir(d) for d in args.model_dir]
        types = ("gnn", "transformer") if args.model == "both" else (args.model,)
        return [load_registered(f"{MODEL_NAMES[t]}@champion", args.registry) for t in types]
    except ModelLoadError as exc:
        raise CLIError(str(exc), exc.hint or "train and register a model first (bash scripts/demo.sh)") from exc


def _progress():
    """A rich bar on a terminal (stderr), nothing in logs."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import Progress

    bar = Progress(transient=True, console=None)
    task = bar.add_task("scanning functions", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar


def render_text(result) -> str:
    out = []
    for f in result.findings:
        path = f" ({' -> '.join(str(s['line']) for s in f.flow)})" if f.flow else ""
        out.append(f"{f.unit.path.as_posix()}:{f.line}: {f.level} {f.rule_id} in {f.unit.name}() "
                   f"score {f.score:.2f} [{f.model_version}]{path}")
    for e in result.errors:
        out.append(f"{e['file']}: error: {e['reason']}")
    s = result.summary()
    out.append(f"scanned {s['files']} files, {s['functions']} functions in {s['seconds']:.1f}s: "
               f"{s['findings']} findings ({s['by_level']['error']} error, {s['by_level']['warning']} warning); "
               f"{s['errors']} errors; skipped {s['ignored_files']} ignored files, {s['vendored_dirs']} vendored dirs")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from streamguard.scanning.sarif import to_sarif
    from streamguard.scanning.scan import exit_code, scan_paths

    handlers = load_handlers(args)
    update, bar = _progress()
    try:
        result = scan_paths(args.paths, handlers, progress=update)
    finally:
        if bar is not None:
            bar.stop()
    if args.format == "sarif":
        # Paths are reported as given, relative to the working directory (SRCROOT).
        text = json.dumps(to_sarif(result, base_dir=Path.cwd()), indent=2) + "\n"
    elif args.format == "json":
        text = json.dumps({"summary": result.summary(), "models": result.models,
                           "findings": [f.to_dict() for f in result.findings], "errors": result.errors,
                           "notes": result.notes}, indent=2) + "\n"
    else:
        text = render_text(result)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(render_text(result).splitlines()[-1], file=sys.stderr)
    else:
        sys.stdout.write(text)
    for e in result.errors if args.format != "text" else []:
        print(f"{e['file']}: error: {e['reason']}", file=sys.stderr)
    return exit_code(result, args.fail_on)
