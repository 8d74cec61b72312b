"""`streamguard` command line: one entry point, subcommands contributed by modules.

Each module listed in ``_SUBCOMMANDS`` defines ``add_parser(subparsers)`` that registers its
subcommand(s) and sets ``func`` (a callable taking the parsed args and returning an exit code).
Errors are one clear line plus a hint; tracebacks only with ``STREAMGUARD_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

_SUBCOMMANDS = (
    "streamguard.data.cli",        # prepare, sample
    "streamguard.monitor",         # monitor
    "streamguard.registry.cli",    # registry list|show|best|compare|promote
    "streamguard.feedback_cli",    # feedback check|push|join
    "streamguard.serving.cli",     # serve
    "streamguard.scanning.cli",    # scan
)


class CLIError(Exception):
    """A user-facing error: printed as one line with an optional hint, exit code 2."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamguard",
        description="Train, gate, register and retrain code-vulnerability models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  streamguard sample --out sample.jsonl.gz\n"
        "  streamguard prepare --input sample.jsonl.gz --out prepared/\n"
        "  streamguard registry list --uri file://$HOME/.streamguard/registry\n"
        "  streamguard monitor --once\n"
        "  streamguard feedback check verdicts.jsonl\n"
        "  streamguard serve --model taint_flow_gnn@champion\n"
        "  streamguard scan src/ --format sarif --output streamguard.sarif\n",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in _SUBCOMMANDS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:  # a module not built yet must not break the others
            if exc.name and exc.name.startswith("streamguard"):
                continue
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence for a CLI
        if os.environ.get("STREAMGUARD_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: rerun with STREAMGUARD_DEBUG=1 for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
