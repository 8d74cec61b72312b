"""StreamGuard inference handler for the SageMaker PyTorch inference container (and `streamguard serve`).

The container (its inference toolkit) imports this module from ``/opt/ml/model/code`` (named by
``SAGEMAKER_PROGRAM=inference.py``) and calls, in order::

    model = model_fn("/opt/ml/model")                  # once, at start-up
    data = input_fn(request_body, content_type)        # per request
    prediction = predict_fn(data, model)
    body = output_fn(prediction, accept)

Request (``application/json``): ``{"instances": [{"code", "language"?, "id"?}, ...]}``, a bare
list of such objects, or one bare object; ``application/jsonlines``: one object per line.
Response: ``{"predictions": [...]}`` in request order, one entry per instance::

    {"id", "score": P(vulnerable), "pred": 0|1 at the model's threshold, "threshold",
     "model_type", "model_version", "language",
     # transformer
     "anomaly_score": energy score (higher = further from the training data),
     # GNN
     "taint_reaches_sink": bool, "sink_line": int | None,
     "taint_paths": [[{"node", "kind", "line", "role": "source"|"step"|"sink"}, ...], ...],
     "top_nodes": [{"node", "kind", "line", "importance"}, ...]}  # most attended nodes with a line first

An instance that cannot be scored (no code, unknown language, code too large, a graph the model
cannot read) gets ``{"id", "error": "<why>", "score": null, "pred": null, ...}``; the rest of the
batch is scored as usual. Only a request that cannot be read at all (bad JSON, wrong content
type, too many instances) fails as a whole, with status 400/415/413.

``model_version`` is ``$STREAMGUARD_MODEL_VERSION`` (the registry version, set on the SageMaker
Model's container environment and by `streamguard serve`), else ``<model_type>-<weights sha256[:12]>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import torch  # noqa: E402

import artifacts  # noqa: E402
import data as datamod  # noqa: E402
import text_inputs  # noqa: E402
from model_setup import load_saved_model  # noqa: E402
from streamguard.core import locate  # noqa: E402
from streamguard.core.records import RecordError, detect_language, normalize_language  # noqa: E402

JSON = "application/json"
JSON_LINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
MAX_INSTANCES = 512
MAX_CODE_BYTES = 200_000
CHUNK = 32          # instances per forward pass
TOP_K = 5           # GNN: most important nodes reported
MAX_PATHS = 5       # GNN: taint paths reported per instance
VERSION_ENV = "STREAMGUARD_MODEL_VERSION"

try:  # inside the container: errors the toolkit turns into the right HTTP status
    from sagemaker_inference.errors import GenericInferenceToolkitError as _ToolkitError
except ImportError:  # `streamguard serve` and tests outside the container
    _ToolkitError = None


class RequestError(ValueError):
    """The request as a whole cannot be read; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _request_error(status: int, message: str) -> Exception:
    if _ToolkitError is not None:
        err = _ToolkitError(status, message)
        err.status = status  # the same attribute `streamguard serve` reads
        return err
    return RequestError(status, message)


@dataclass
class LoadedModel:
    """What `model_fn` returns: the network plus everything needed to featurize and report."""

    model: torch.nn.Module
    tokenizer: Any
    config: dict
    model_type: str
    threshold: float
    max_length: int
    version: str
    device: torch.device
    model_dir: Path
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------ model_fn
def model_fn(model_dir: str) -> LoadedModel:
    """Load a StreamGuard model directory (what model.tar.gz unpacks to)."""
    model_dir = Path(model_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, cfg = load_saved_model(model_dir, device)
    model.eval()
    version = os.environ.get(VERSION_ENV)
    if not version:
        digest = hashlib.sha256((model_dir / artifacts.WEIGHTS).read_bytes()).hexdigest()[:12]
        version = f"{cfg['model_type']}-{digest}"
    return LoadedModel(model=model, tokenizer=tokenizer, config=cfg, model_type=cfg["model_type"],
                       threshold=float(cfg.get("threshold") or 0.5), max_length=int(cfg.get("max_length") or 256),
                       version=version, device=device, model_dir=model_dir)


# ------------------------------------------------------------------------------------ input_fn
def _media_type(content_type: str | None) -> str:
    return (content_type or JSON).split(";", 1)[0].strip().lower()


def input_fn(request_body: bytes | str, content_type: str | None = JSON) -> list[dict]:
    """Parse a request into instances: ``{"index", "id", "code", "language"}`` or ``{"index", "id", "error"}``."""
    media = _media_type(content_type)
    if media not in (JSON, *JSON_LINES):
        raise _request_error(415, f"unsupported content type {content_type!r}: send {JSON} "
                                  f"({{\"instances\": [{{\"code\": ...}}]}}) or application/jsonlines")
    if isinstance(request_body, (bytes, bytearray)):
        try:
            request_body = bytes(request_body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _request_error(400, f"request body is not UTF-8: {exc}") from None
    if media == JSON:
        try:
            body = json.loads(request_body)
        except json.JSONDecodeError as exc:
            raise _request_error(400, f"request body is not valid JSON: {exc}") from None
        if isinstance(body, dict) and "instances" in body:
            instances = body["instances"]
            if not isinstance(instances, list):
                raise _request_error(400, "'instances' must be a list of objects with 'code'")
        elif isinstance(body, list):
            instances = body
        elif isinstance(body, dict):
            instances = [body]
        else:
            raise _request_error(400, "request body must be {\"instances\": [...]}, a list, or one object")
    else:
        instances = []
        for lineno, line in enumerate(request_body.splitlines(), 1):
            if line.strip():
                try:
                    instances.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    instances.append(_LineError(f"line {lineno}: invalid JSON: {exc}"))
    if not instances:
        raise _request_error(400, "no instances in the request")
    if len(instances) > MAX_INSTANCES:
        raise _request_error(413, f"{len(instances)} instances in one request; the limit is {MAX_INSTANCES}")
    return [_instance(i, obj) for i, obj in enumerate(instances)]


class _LineError(str):
    """A JSON-lines line that did not decode (kept as an item error, not a request error)."""


def _instance(index: int, obj: Any) -> dict:
    item_id = None
    if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)) and not isinstance(obj.get("id"), bool):
        item_id = str(obj["id"])
    item = {"index": index, "id": item_id if item_id is not None else str(index)}
    if isinstance(obj, _LineError):
        return {**item, "error": str(obj)}
    if not isinstance(obj, dict):
        return {**item, "error": f"instance {index}: expected an object with 'code', got {type(obj).__name__}"}
    code = obj.get("code")
    if not isinstance(code, str) or not code.strip():
        return {**item, "error": f"instance {index}: 'code' must be a non-empty string"}
    size = len(code.encode("utf-8", errors="surrogatepass"))
    if size > MAX_CODE_BYTES:
        return {**item, "error": f"instance {index}: code is {size} bytes, over the {MAX_CODE_BYTES}-byte limit"}
    language = obj.get("language")
    try:
        language = normalize_language(language) if language not in (None, "") else detect_language(code)
    except RecordError as exc:
        return {**item, "error": f"instance {index}: {exc}"}
    if language is None:
        return {**item, "error": f"instance {index}: no 'language' given and it could not be detected "
                                 "from the code; pass \"language\": \"python\" or \"java\""}
    return {**item, "code": code, "language": language}


# ---------------------------------------------------------------------------------- predict_fn
def predict_fn(data: list[dict], model: LoadedModel) -> list[dict]:
    """Score every instance; instances that fail get an ``error`` and do not affect the others."""
    out: list[dict | None] = [None] * len(data)
    todo = []
    for pos, item in enumerate(data):
        if "error" in item:
            out[pos] = _error_row(item, item["error"], model)
        else:
            todo.append((pos, item))
    score = _score_gnn if model.model_type == "gnn" else _score_transformer
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        try:
            rows = score([item for _, item in chunk], model)
        except Exception:  # noqa: BLE001 - find the one instance that broke the batch
            rows = []
            for _, item in chunk:
                try:
                    rows.extend(score([item], model))
                except Exception as exc:  # noqa: BLE001 - reported on that instance only
                    rows.append(_error_row(item, f"instance {item['index']}: {type(exc).__name__}: {exc}", model))
        for (pos, _), row in zip(chunk, rows):
            out[pos] = row
    return out  # type: ignore[return-value]


def _base_row(item: dict, model: LoadedModel) -> dict:
    return {"id": item["id"], "model_type": model.model_type, "model_version": model.version,
            "threshold": model.threshold, "language": item.get("language")}


def _error_row(item: dict, message: str, model: LoadedModel) -> dict:
    row = {**_base_row(item, model), "score": None, "pred": None, "error": message}
    if model.model_type == "transformer":
        row["anomaly_score"] = None
    return row


def _score_rows(items: list[dict], scores: list[float], model: LoadedModel) -> list[dict]:
    return [{**_base_row(item, model), "score": s, "pred": int(s >= model.threshold)} for item, s in zip(items, scores)]


@torch.no_grad()
def _score_transformer(items: list[dict], model: LoadedModel) -> list[dict]:
    # The input the model was trained on: code gadgets, or the whole text for models saved before them.
    text_input = model.config.get("text_input") or "code"
    codes = [text_inputs.transformer_text(item["code"], item.get("language"), text_input) for item in items]
    enc = model.tokenizer(codes, truncation=True, max_length=model.max_length, padding=True, return_tensors="pt")
    logits, anomaly, _ = model.model(enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device))
    scores = torch.softmax(logits.float(), dim=-1)[:, 1].tolist()
    rows = _score_rows(items, scores, model)
    for row, a in zip(rows, anomaly.float().tolist()):
        row["anomaly_score"] = a
    return rows


@torch.no_grad()
def _score_gnn(items: list[dict], model: LoadedModel) -> list[dict]:
    from torch_geometric.data import Batch

    g = datamod.graphs_module()
    graphs, batch_items = [], []
    for item in items:
        graph = g.build_graph(item["code"], item["language"])
        graphs.append(graph)
        batch_items.append(datamod.graph_to_data(graph))
    batch = Batch.from_data_list(batch_items).to(model.device)
    logits, extras = model.model(batch.x, batch.edge_index, batch.batch, batch.edge_type, batch.kind,
                                 batch.subtok)
    scores = torch.softmax(logits.float(), dim=-1)[:, 1].tolist()
    importance = extras["node_importance"].float().cpu()
    node_graph = batch.batch.cpu()
    rows = _score_rows(items, scores, model)
    truncated_col = list(g.NODE_FEATURES).index("graph_truncated") if "graph_truncated" in g.NODE_FEATURES else None
    for i, (row, item, graph) in enumerate(zip(rows, items, graphs)):
        weights = importance[node_graph == i]
        lines = locate.node_lines(item["code"], graph, g.NODE_KINDS, g.EDGE_TYPES, truncated_col)

        def node(n: int) -> dict:
            k = graph["kind"][n]
            return {"node": n, "kind": g.NODE_KINDS[k] if 0 <= k < len(g.NODE_KINDS) else "<unk>", "line": lines[n]}

        paths = []
        for path in g.taint_paths(graph, max_paths=MAX_PATHS):
            steps = []
            for j, n in enumerate(path):
                role = "source" if j == 0 else "sink" if j == len(path) - 1 else "step"
                steps.append({**node(n), "role": role})
            paths.append(steps)
        # The most important nodes a reader can find in the code: nodes without a line (the
        # module, synthetic nodes) rank only when no node has one.
        located = torch.tensor([lines[n] is not None for n in range(weights.numel())], dtype=torch.bool)
        n_located = int(located.sum())
        ranked = weights.masked_fill(~located, float("-inf")) if n_located else weights
        k = min(TOP_K, n_located or weights.numel())
        top = torch.topk(ranked, k) if k else None
        row["taint_reaches_sink"] = bool(paths)
        row["taint_paths"] = paths
        row["sink_line"] = paths[0][-1]["line"] if paths else None
        row["top_nodes"] = [] if top is None else [
            {**node(int(n)), "importance": float(w)} for w, n in zip(top.values.tolist(), top.indices.tolist())]
        row["parse_ok"] = bool(graph.get("parse_ok"))
    return rows


# ----------------------------------------------------------------------------------- output_fn
def output_fn(prediction: list[dict], accept: str | None = JSON) -> tuple[str, str]:
    """Serialize as ``{"predictions": [...]}`` (JSON) or one prediction per line (JSON lines)."""
    media = _media_type(accept if accept and accept != "*/*" else JSON)
    if media == JSON:
        return json.dumps({"predictions": prediction}), JSON
    if media in JSON_LINES:
        return "".join(json.dumps(p) + "\n" for p in prediction), media
    raise _request_error(406, f"unsupported Accept {accept!r}: use {JSON} or application/jsonlines")
