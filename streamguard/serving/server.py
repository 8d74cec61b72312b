"""`streamguard serve`: the SageMaker container's HTTP contract (`GET /ping`, `POST /invocations`) on this machine.

One model, or an A/B endpoint plan (the `CreateEndpointConfig` request the retraining DAG writes):

- production variants share the traffic by their `InitialVariantWeight`; a request goes to the
  variant `streamguard.ab.assign_variant` picks for the sha256 of its body, so the same request
  always meets the same variant (sticky), in every process;
- a shadow variant receives a copy of the share of requests its weight names (chosen by the same
  sha256 with another salt); its answers are logged, never returned.

Every scored instance can be logged as one JSON line (`--verdict-log`): the code, score,
prediction, model version, variant and request id. Joined with reviewers' confirmations
(`streamguard feedback join`), those lines are the feedback the retraining DAG ingests.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from streamguard.serving.models import Handler, ModelLoadError

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time endpoint payload limit
SHADOW_SALT = "streamguard-shadow"


@dataclass
class Variant:
    name: str
    handler: Handler
    weight: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class VerdictLog:
    """Append-only JSON-lines log of served predictions (thread-safe, flushed per request)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, rows: list[dict]) -> None:
        if not self.path or not rows:
            return
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)


def verdict_rows(data: list[dict], predictions: list[dict], *, request_id: str, variant: str | None,
                 shadow: bool, when: datetime | None = None) -> list[dict]:
    """Log lines for one request: one per instance, with what the model said."""
    stamp = (when or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")
    rows = []
    for item, pred in zip(data, predictions):
        row = {"timestamp": stamp, "request_id": request_id, "id": pred.get("id"), "code": item.get("code"),
               "language": pred.get("language"), "score": pred.get("score"), "prediction": pred.get("pred"),
               "model_version": pred.get("model_version"), "model_type": pred.get("model_type"),
               "variant": variant, "shadow": shadow}
        if pred.get("error"):
            row["error"] = pred["error"]
        if pred.get("sink_line") is not None:
            row["sink_line"] = pred["sink_line"]
        rows.append(row)
    return rows


class Router:
    """Picks the variant of each request and runs the handler chain; mirrors to shadows."""

    def __init__(self, production: list[Variant], shadows: list[Variant] | None = None,
                 log: VerdictLog | None = None):
        if not production:
            raise ModelLoadError("no production variant to serve")
        self.production = production
        self.shadows = shadows or []
        self.log = log or VerdictLog(None)
        self._weights = {v.name: v.weight for v in production}
        self._by_name = {v.name: v for v in production}
        self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sg-shadow") if self.shadows else None
        self.counts: dict[str, int] = {v.name: 0 for v in production + self.shadows}

    def describe(self) -> list[dict]:
        return [{"variant": v.name, "model": v.handler.name, "model_version": v.handler.version,
                 "model_type": v.handler.model_type, "weight": v.weight, "shadow": v in self.shadows}
                for v in self.production + self.shadows]

    def choose(self, request_id: str) -> Variant:
        from streamguard.ab import assign_variant

        if len(self.production) == 1:
            return self.production[0]
        return self._by_name[assign_variant(request_id, self._weights)]

    @staticmethod
    def _run(variant: Variant, body: bytes, content_type: str, accept: str):
        module = variant.handler.module
        data = module.input_fn(body, content_type)
        with variant.lock:
            predictions = module.predict_fn(data, variant.handler.model)
        out, out_type = module.output_fn(predictions, accept)
        return data, predictions, out, out_type

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[str, str, str, str]:
        """Returns (response body, content type, variant name, request id); raises the handler's errors."""
        request_id = hashlib.sha256(body).hexdigest()
        variant = self.choose(request_id)
        data, predictions, out, out_type = self._run(variant, body, content_type, accept)
        self.counts[variant.name] += 1
        self.log.write(verdict_rows(data, predictions, request_id=request_id, variant=variant.name, shadow=False))
        for shadow in self.shadows:
            from streamguard.ab import bucket

            if bucket(request_id, SHADOW_SALT) < shadow.weight:
                self._shadow_pool.submit(self._mirror, shadow, body, content_type, request_id)
        return out, out_type, variant.name, request_id

    def _mirror(self, shadow: Variant, body: bytes, content_type: str, request_id: str) -> None:
        try:
            data, predictions, _, _ = self._run(shadow, body, content_type, "application/json")
        except Exception as exc:  # noqa: BLE001 - a failing shadow never affects callers
            print(f"shadow {shadow.name} failed on request {request_id[:12]}: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
            return
        self.counts[shadow.name] += 1
        self.log.write(verdict_rows(data, predictions, request_id=request_id, variant=shadow.name, shadow=True))

    def drain(self) -> None:
        """Wait for mirrored requests still in flight (tests, shutdown)."""
        if self._shadow_pool is not None:
            self._shadow_pool.shutdown(wait=True)
            self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sg-shadow")


def _status_of(exc: BaseException) -> int:
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    return int(status) if isinstance(status, int) and 400 <= status < 600 else 500


def make_server(router: Router, host: str = "127.0.0.1", port: int = 8080, *, quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) answering the SageMaker container paths with ``router``."""

    class RequestHandler(BaseHTTPRequestHandler):
        server_version = "StreamGuard"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # noqa: D102 - access log on stderr
            if not quiet:
                sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def _send(self, status: int, body: str, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, json.dumps({"error": message}))

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.split("?", 1)[0] == "/ping":
                self._send(200, json.dumps({"status": "healthy", "variants": router.describe()}))
            else:
                self._error(404, f"no such path {self.path!r}: GET /ping, POST /invocations")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != "/invocations":
                self._error(404, f"no such path {self.path!r}: POST /invocations")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self._error(400, "bad Content-Length")
                return
            if length > MAX_BODY_BYTES:
                self._error(413, f"request body of {length} bytes is over the {MAX_BODY_BYTES}-byte limit")
                self.close_connection = True
                return
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type") or "application/json"
            accept = self.headers.get("Accept") or "application/json"
            try:
                out, out_type, variant, request_id = router.invoke(body, content_type, accept)
            except Exception as exc:  # noqa: BLE001 - every failure is an HTTP answer, never a dropped connection
                status = _status_of(exc)
                message = getattr(exc, "message", None) or str(exc)
                if status == 500:
                    message = f"{type(exc).__name__}: {message}"
                    print(f"POST /invocations failed: {message}", file=sys.stderr, flush=True)
                self._error(status, message)
                return
            self._send(200, out, out_type, {"X-StreamGuard-Variant": variant, "X-StreamGuard-Request-Id": request_id})

    return ThreadingHTTPServer((host, port), RequestHandler)


# ------------------------------------------------------------------------------ A/B plans
def load_plan(plan_uri: str) -> dict:
    """Read an endpoint plan (`CreateEndpointConfig` JSON) from a path or URI."""
    from streamguard import storage

    try:
        plan = json.loads(storage.read_text(plan_uri))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"--ab {plan_uri}: cannot read the plan: {exc}") from exc
    if not isinstance(plan, dict) or not isinstance(plan.get("ProductionVariants"), list) or not plan["ProductionVariants"]:
        raise ModelLoadError(f"--ab {plan_uri}: not an endpoint plan (needs ProductionVariants)",
                             "use the <model>-endpoint-config.json the retraining DAG writes under runs/<run>/ab/")
    return plan


def registry_versions_by_sagemaker_name(registry_uri: str | None = None) -> dict[str, Any]:
    """SageMaker Model name -> registry record, for every version in the registry."""
    from streamguard.ab import sagemaker_model_name
    from streamguard.registry import RegistryClient

    client = RegistryClient(registry_uri)
    out = {}
    for model in client.list_models():
        for record in client.list_versions(model):
            out[sagemaker_model_name(record.to_dict())] = record
    return out


def router_from_plan(plan: dict, registry_uri: str | None = None, *, log: VerdictLog | None = None,
                     workdir: str | Path | None = None) -> Router:
    """Load every variant of a plan from the registry (sha256-checked) and build its router."""
    from streamguard.serving.models import fetch_artifact, load_model_dir

    by_name = registry_versions_by_sagemaker_name(registry_uri)

    def variant(spec: dict, shadow: bool) -> Variant:
        model_name = spec.get("ModelName")
        record = by_name.get(model_name)
        if record is None:
            raise ModelLoadError(f"A/B plan variant {spec.get('VariantName')!r}: SageMaker model {model_name!r} "
                                 "matches no registry version", "check --registry: the plan's registry must be used")
        if record.status == "rejected" and not shadow:
            raise ModelLoadError(f"A/B plan variant {spec.get('VariantName')!r}: {record.model_name} v{record.version} "
                                 "was rejected by the gate; only a shadow variant may serve it")
        weight = spec.get("InitialVariantWeight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ModelLoadError(f"A/B plan variant {spec.get('VariantName')!r}: InitialVariantWeight must be > 0")
        version = f"{record.model_name}@{record.version}"
        handler = load_model_dir(fetch_artifact(record, workdir), version=version, name=version,
                                 record=record.to_dict())
        return Variant(name=str(spec.get("VariantName") or model_name), handler=handler, weight=float(weight))

    production = [variant(v, False) for v in plan["ProductionVariants"]]
    shadows = [variant(v, True) for v in plan.get("ShadowProductionVariants") or []]
    for s in shadows:
        s.weight = min(1.0, s.weight)  # the share of requests mirrored
    return Router(production, shadows, log)
