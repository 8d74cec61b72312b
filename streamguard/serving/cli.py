"""`streamguard serve`: a registered model (or an A/B plan) behind the SageMaker container's HTTP paths."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """examples:
  streamguard serve --model taint_flow_gnn@champion
  streamguard serve --model sql_intent_transformer@3 --port 8081
  streamguard serve --ab runs/<run>/ab/gnn-endpoint-config.json --verdict-log verdicts.jsonl
  curl -s localhost:8080/invocations -H 'Content-Type: application/json' \\
       -d '{"instances": [{"code": "def f(c, x): c.execute(\\"SELECT \\" + x)", "language": "python"}]}'

GET /ping answers 200 once the model is loaded; POST /invocations takes {"instances": [{"code",
"language"?, "id"?}]} and answers {"predictions": [...]}, with the handler SageMaker runs
(code/inference.py from the model's own archive). The archive is checked against the registry's
sha256 before it is unpacked; rejected versions are refused (an A/B plan may shadow one).
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a registered model over HTTP (/ping, /invocations)",
                              description="Serve a registered model, or an A/B endpoint plan, with the "
                                          "SageMaker inference container's HTTP contract.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", metavar="MODEL@REF", help="registry model and alias or version, "
                                                          "e.g. taint_flow_gnn@champion or taint_flow_gnn@3")
    what.add_argument("--model-dir", metavar="DIR", help="an unpacked model directory instead of the registry")
    what.add_argument("--ab", metavar="PLAN", help="an A/B endpoint plan (CreateEndpointConfig JSON, path or URI)")
    p.add_argument("--registry", metavar="URI", default=None,
                   help="registry URI (default: $STREAMGUARD_REGISTRY_URI or the local registry)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080, as the SageMaker container)")
    p.add_argument("--verdict-log", metavar="FILE", default=None,
                   help="append one JSON line per scored instance (code, score, prediction, model version, "
                        "variant); default with --ab: $STREAMGUARD_HOME/serving/verdicts.jsonl")
    p.add_argument("--quiet", action="store_true", help="no access log on stderr")
    p.set_defaults(func=run)


def build_router(args):
    """The router for the parsed arguments (models loaded, sha256-checked)."""
    from streamguard.serving.models import load_model_dir, load_registered
    from streamguard.serving.server import Router, Variant, VerdictLog, load_plan, router_from_plan
    from streamguard.settings import streamguard_home

    log_path = args.verdict_log
    if args.ab and not log_path:
        log_path = streamguard_home() / "serving" / "verdicts.jsonl"
    log = VerdictLog(log_path)
    if args.ab:
        return router_from_plan(load_plan(args.ab), args.registry, log=log)
    handler = load_model_dir(args.model_dir) if args.model_dir else load_registered(args.model, args.registry)
    return Router([Variant(name="default", handler=handler, weight=1.0)], log=log)


def run(args: argparse.Namespace) -> int:
    from streamguard.cli import CLIError
    from streamguard.serving.models import ModelLoadError
    from streamguard.serving.server import make_server

    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port {args.port}: not a port number (0-65535)")
    try:
        router = build_router(args)
    except ModelLoadError as exc:
        raise CLIError(str(exc), exc.hint) from exc
    try:
        server = make_server(router, args.host, args.port, quiet=args.quiet)
    except OSError as exc:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc}", "pick another --port") from exc
    host, port = server.server_address[:2]
    print(json.dumps({"listening": f"http://{host}:{port}", "variants": router.describe(),
                      "verdict_log": str(router.log.path) if router.log.path else None}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        router.drain()
    print("stopped", file=sys.stderr)
    return 0
