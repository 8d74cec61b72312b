"""`streamguard registry list|show|summary|best|compare|promote`: read and steer the model registry."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXAMPLES = """\
examples:
  streamguard registry list                          # models with their champion / deployed versions
  streamguard registry list taint_flow_gnn           # every version, gate verdict and key metrics
  streamguard registry show taint_flow_gnn champion  # one record (a version number or an alias)
  streamguard registry summary                       # per model: latest gate decision, reasons, test metrics
  streamguard registry best taint_flow_gnn --metric validation.f1
  streamguard registry compare taint_flow_gnn 3 4 --json
  streamguard registry promote taint_flow_gnn 4 --expected-version 3
  STREAMGUARD_REGISTRY_URI=s3://bucket/registry streamguard registry list

The registry URI comes from --uri, else $STREAMGUARD_REGISTRY_URI, else the local default
($STREAMGUARD_HOME/registry, i.e. ~/.streamguard/registry).
"""


def add_parser(subparsers: Any) -> None:
    """Register the `registry` subcommand group."""
    parser = subparsers.add_parser(
        "registry", help="inspect and promote registered models",
        description="Inspect the model registry, compare versions and move the champion alias.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub_help = {"parents": None, "epilog": EXAMPLES, "formatter_class": argparse.RawDescriptionHelpFormatter}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--uri", help="registry URI: file:///path, a path, or s3://bucket/prefix")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    sub_help["parents"] = [common]

    p = sub.add_parser("list", **sub_help, help="list models, or the versions of one model")
    p.add_argument("model", nargs="?", help="model name (omit to list models)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", **sub_help, help="show one version record")
    p.add_argument("model")
    p.add_argument("version", nargs="?", default="latest",
                   help="version number (3 or v3), an alias (champion, deployed) or 'latest' (default)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("summary", **sub_help,
                       help="per model: the latest version's gate decision with its reasons and headline metrics")
    p.add_argument("model", nargs="*", help="model names (default: every model)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("best", **sub_help, help="the registered version with the best metric")
    p.add_argument("model")
    p.add_argument("--metric", default="test.accuracy", help="dotted metric path (default: test.accuracy)")
    p.add_argument("--minimize", action="store_true", help="smaller is better (inferred for fpr/loss)")
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("compare", **sub_help, help="metric deltas between two versions (v2 - v1)")
    p.add_argument("model")
    p.add_argument("v1")
    p.add_argument("v2")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("promote", **sub_help, help="make a version the champion (compare-and-swap)")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--expected-version", type=int, default=None,
                   help="fail unless the champion is this version now (0: no champion yet)")
    p.add_argument("--reason", default="promoted from the command line")
    p.set_defaults(func=cmd_promote)


# ---- helpers -------------------------------------------------------------------------------
def _client(args):
    from streamguard.cli import CLIError
    from streamguard.registry import RegistryClient, RegistryError
    from streamguard.settings import registry_uri

    uri = args.uri or registry_uri()
    try:
        return RegistryClient(uri)
    except RegistryError as exc:
        raise CLIError(str(exc), "pass --uri file:///path or s3://bucket/prefix") from exc


def _resolve(client, model: str, ref: str):
    """A version record from ``3``, ``v3``, an alias name, or ``latest``."""
    from streamguard.cli import CLIError
    from streamguard.registry import RegistryError

    try:
        text = ref[1:] if ref[:1] in ("v", "V") and ref[1:].isdigit() else ref
        if text.isdigit():
            return client.get_version(model, int(text))
        if ref == "latest":
            record = client.latest(model, status=None)
        else:
            record = client.get_alias(model, ref)
    except RegistryError as exc:
        raise CLIError(str(exc), f"see `streamguard registry list {model} --uri {client.uri}`") from exc
    if record is None:
        raise CLIError(f"model {model!r} has no {'versions' if ref == 'latest' else f'alias {ref!r}'} "
                       f"in registry {client.uri}", f"see `streamguard registry list {model}`")
    return record


def _guard(fn, *args, hint: str | None = None, **kwargs):
    from streamguard.cli import CLIError
    from streamguard.registry import RegistryError

    try:
        return fn(*args, **kwargs)
    except RegistryError as exc:
        raise CLIError(str(exc), hint) from exc


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A rich table on a terminal; tab-separated plain text when piped (easy to grep/cut)."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    print("\t".join(columns))
    for row in cells:
        print("\t".join(row))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


# ---- commands ------------------------------------------------------------------------------
def cmd_list(args) -> int:
    client = _client(args)
    if not args.model:
        rows = []
        for name in _guard(client.list_models):
            versions = _guard(client.list_versions, name)
            aliases = _guard(client.list_aliases, name)
            rows.append({
                "model": name,
                "versions": len(versions),
                "rejected": sum(v.status == "rejected" for v in versions),
                "latest": versions[-1].version if versions else None,
                "aliases": {a: r.version for a, r in sorted(aliases.items())},
            })
        if args.json:
            _print_json(rows)
        else:
            _table(f"models in {client.uri}", ["model", "versions", "rejected", "latest", "aliases"],
                   [[r["model"], r["versions"], r["rejected"], r["latest"],
                     ", ".join(f"{a}={v}" for a, v in r["aliases"].items()) or "-"] for r in rows])
        return 0
    versions = _guard(client.list_versions, args.model)
    if not versions:
        from streamguard.cli import CLIError

        raise CLIError(f"model {args.model!r} has no versions in registry {client.uri}",
                       "run `streamguard registry list` to see the models")
    aliases = _guard(client.list_aliases, args.model)
    by_version: dict[int, list[str]] = {}
    for alias, record in sorted(aliases.items()):
        by_version.setdefault(record.version, []).append(alias)
    if args.json:
        _print_json([{**v.to_dict(), "aliases": by_version.get(v.version, [])} for v in versions])
        return 0
    _table(f"{args.model} in {client.uri}",
           ["version", "status", "gate", "val acc", "val fpr", "test acc", "job", "created", "aliases"],
           [[v.version, v.status, "pass" if v.passed_gate else "fail", _fmt(v.metric("validation.accuracy")),
             _fmt(v.metric("validation.fpr")), _fmt(v.metric("test.accuracy")), v.training_job_name,
             v.created_at, ",".join(by_version.get(v.version, [])) or "-"] for v in versions])
    return 0


def cmd_show(args) -> int:
    client = _client(args)
    record = _resolve(client, args.model, args.version)
    data = record.to_dict()
    if args.json:
        _print_json(data)
        return 0
    rows = []
    for key, value in data.items():
        rows.append([key, json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value])
    _table(f"{record.model_name} version {record.version}", ["field", "value"], rows)
    return 0


SUMMARY_METRICS = ("validation.accuracy", "validation.fpr", "test.accuracy", "test.f1", "test.fpr", "test.roc_auc")


def cmd_summary(args) -> int:
    """What the last run decided, per model: the gate's verdict and why, the headline metrics."""
    client = _client(args)
    names = args.model or _guard(client.list_models)
    rows = []
    for name in names:
        versions = _guard(client.list_versions, name)
        if not versions:
            from streamguard.cli import CLIError

            raise CLIError(f"model {name!r} has no versions in registry {client.uri}",
                           "run `streamguard registry list` to see the models")
        latest = versions[-1]
        champion = _guard(client.list_aliases, name).get("champion")
        rows.append({
            "model": name, "version": latest.version, "status": latest.status, "passed_gate": latest.passed_gate,
            "reasons": list(latest.gate.get("reasons") or []), "thresholds": latest.gate.get("thresholds") or {},
            "metrics": {m: latest.metric(m) for m in SUMMARY_METRICS},
            "champion": champion.version if champion else None,
        })
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        verdict = "PASSED the gate, registered" if r["passed_gate"] else f"REJECTED by the gate ({r['status']})"
        print(f"{r['model']} v{r['version']}: {verdict}; champion: "
              f"{'v' + str(r['champion']) if r['champion'] else 'none'}")
        t = r["thresholds"]
        limits = [f"{k}={v}" for k, v in sorted(t.items()) if v is not None and k != "max_model_bytes"]
        if limits:
            print(f"  gate: {', '.join(limits)}")
        for reason in r["reasons"]:
            print(f"  reason: {reason}")
        m = r["metrics"]
        print("  " + "; ".join(f"{k} {_fmt(v)}" for k, v in m.items()))
    return 0


def cmd_best(args) -> int:
    client = _client(args)
    record = _guard(client.best, args.model, args.metric, maximize=False if args.minimize else None)
    if record is None:
        from streamguard.cli import CLIError

        raise CLIError(f"no registered version of {args.model!r} has metric {args.metric!r} in {client.uri}",
                       "metric paths look like test.accuracy or validation.f1")
    if args.json:
        _print_json({"metric": args.metric, "value": record.metric(args.metric), "record": record.to_dict()})
    else:
        print(f"{record.model_name} version {record.version}: {args.metric} = {_fmt(record.metric(args.metric))} "
              f"(job {record.training_job_name})")
    return 0


def cmd_compare(args) -> int:
    client = _client(args)
    v1 = _resolve(client, args.model, args.v1).version
    v2 = _resolve(client, args.model, args.v2).version
    result = _guard(client.compare, args.model, v1, v2)
    if args.json:
        _print_json(result)
        return 0
    rows = [[name, _fmt(m["v1"]), _fmt(m["v2"]), "-" if m["delta"] is None else f"{m['delta']:+.4f}"]
            for name, m in result["metrics"].items()]
    _table(f"{args.model}: version {v1} -> {v2}", ["metric", f"v{v1}", f"v{v2}", "delta"], rows)
    for name, change in result["hyperparameters_changed"].items():
        print(f"hyperparameter {name}: {change['v1']!r} -> {change['v2']!r}")
    if result["data_hash_changed"]:
        print("training data changed (different data hash)")
    if result["code_version_changed"]:
        print("code version changed")
    return 0


def cmd_promote(args) -> int:
    from streamguard.cli import CLIError
    from streamguard.registry import AliasConflict

    client = _client(args)
    version = _resolve(client, args.model, args.version).version
    try:
        moved = _guard(client.promote, args.model, version, expected_version=args.expected_version,
                       reason=args.reason, hint=f"see `streamguard registry show {args.model} {version}`")
    except CLIError as exc:
        if isinstance(exc.__cause__, AliasConflict):
            exc.hint = f"check `streamguard registry show {args.model} champion` and retry"
        raise
    if args.json:
        _print_json(moved.to_dict())
    else:
        before = f"version {moved.previous_version}" if moved.previous_version else "no champion"
        print(f"{args.model}: champion is now version {moved.version} (was {before}; revision {moved.revision})")
    return 0
