"""The "StreamGuard Models" FastAPI app: registry versions, gate and promotion decisions, training charts.

Mounted by ``streamguard_ui_plugin`` inside Airflow's API server (under ``/streamguard``), or run
alone for development: ``uvicorn --factory streamguard_ui.app:create_app`` with ``plugins/`` on
``PYTHONPATH``.

JSON API                                   HTML
  GET /api/models                            GET /                          overview of every model
  GET /api/models/{name}                     GET /models/{name}/versions/{v} one version with charts
  GET /api/models/{name}/versions/{v}
  GET /api/events[?kind=K]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from streamguard import settings
from streamguard.registry import RegistryClient, RegistryError
from streamguard.registry.records import MODEL_NAME_RE, ModelVersion
from streamguard_ui import pages
from streamguard_ui.artifacts import ArtifactError, ReportLoader
from streamguard_ui.model_views import as_dict, decisions_for_model, model_summary, plot_data

CHAMPION = "champion"
DEPLOYED = "deployed"


def default_registry_uri() -> str:
    """``$STREAMGUARD_REGISTRY_URI``, else the registry under StreamGuard's home directory.

    The home is ``$STREAMGUARD_HOME``, else ``$AIRFLOW_HOME/streamguard``, else ``~/.streamguard``.
    """
    return settings.registry_uri()


def default_cache_dir() -> Path:
    """Where extracted report files are cached: ``<StreamGuard home>/ui-cache``."""
    return settings.streamguard_home() / "ui-cache"


class RegistryView:
    """Read-only access to the registry for the pages, opened on first use (no I/O at import).

    Args:
        registry_uri: the registry to show (None: ``default_registry_uri()``).
        client_factory: builds the client from the URI (tests and other stores can pass their own).
    """

    def __init__(self, registry_uri: str | None, client_factory: Callable[[str], Any] | None = None) -> None:
        self.uri = registry_uri or default_registry_uri()
        self._factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = (self._factory or RegistryClient)(self.uri)
            return self._client

    def _read(self, what: Callable[[], Any]) -> Any:
        """Run a registry read; a registry failure (unreadable record, storage error) becomes a 500."""
        try:
            return what()
        except RegistryError as error:
            raise HTTPException(status_code=500, detail=f"registry {self.uri}: {error}") from error

    def scan(self, name: str) -> tuple[list[dict], list[dict]]:
        """(readable versions as dicts oldest first, ``{"version", "uri", "error"}`` per unreadable one).

        One torn or corrupt record must not hide the healthy ones, so it is reported, not raised.
        404 when the model has no version files at all.
        """
        if not MODEL_NAME_RE.match(name):
            raise HTTPException(status_code=404, detail=f"model {name!r} not found: not a valid model name")
        good, broken = self._read(lambda: self.client.scan_versions(name))
        if not good and not broken:
            raise HTTPException(status_code=404, detail=f"model {name!r} not found in registry {self.uri}")
        return [as_dict(v) for v in good], list(broken)

    def versions(self, name: str) -> list[dict]:
        """Every readable version of a model as dicts, oldest first; 404 when the model does not exist."""
        return self.scan(name)[0]

    def version(self, name: str, number: int) -> dict:
        """One version record as a dict; 404 for an unknown model (first) or version, 500 naming
        the file when that version's record is unreadable."""
        good, broken = self.scan(name)
        for record in good:
            if record.get("version") == number:
                return record
        for item in broken:
            if item["version"] == number:
                raise HTTPException(status_code=500, detail=f"registry {self.uri}: {item['error']}")
        raise HTTPException(status_code=404, detail=f"model {name!r} has no version {number}")

    def alias(self, name: str, alias: str) -> int | None:
        """The version number an alias points at, or None when it is not set."""
        record = self._read(lambda: self.client.alias_record(name, alias))
        return None if record is None else record.version

    def models(self) -> list[str]:
        return sorted(self._read(self.client.list_models))

    def events(self, kind: str | None = None) -> list[dict]:
        """Registry events, oldest first (all, or those of one kind)."""
        return [as_dict(e) for e in self._read(lambda: self.client.list_events(kind))]

    def gate_history(self, name: str, versions: list | None = None) -> list[dict]:
        return [dict(g) for g in self._read(lambda: self.client.gate_history(name, versions))]


def create_app(
    registry_uri: str | None = None,
    *,
    cache_dir: Path | None = None,
    dependencies: Sequence[Any] = (),
    client_factory: Callable[[str], Any] | None = None,
) -> FastAPI:
    """Build the app. Cheap: nothing is read until the first request.

    Args:
        registry_uri: registry to show; None: ``default_registry_uri()``, resolved when the app is
            created (``$STREAMGUARD_REGISTRY_URI`` first).
        cache_dir: report cache (None: ``default_cache_dir()``).
        dependencies: FastAPI dependencies applied to every route, e.g. Airflow's login check.
        client_factory: builds the registry client from the URI (default: ``RegistryClient``).
    """
    registry = RegistryView(registry_uri, client_factory)
    loader = ReportLoader(cache_dir if cache_dir is not None else default_cache_dir())
    app = FastAPI(
        title="StreamGuard Models",
        description="Model registry versions, gate and promotion decisions, and training charts.",
        dependencies=list(dependencies),
    )
    app.state.registry = registry
    app.state.report_loader = loader

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException):
        # JSON for the API, a small page for the HTML routes (which the UI shows in an iframe).
        if _is_api(request):
            return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)
        depth = max(request.url.path.removeprefix(request.scope.get("root_path", "")).count("/") - 1, 0)
        return HTMLResponse(
            pages.error_page(error.status_code, str(error.detail), home="../" * depth or "./"),
            status_code=error.status_code,
            headers=error.headers,
        )

    def model_payload(name: str, events: list[dict]) -> dict:
        versions, broken = registry.scan(name)
        types = {v.get("model_type") for v in versions}
        champion, deployed = registry.alias(name, CHAMPION), registry.alias(name, DEPLOYED)
        healthy = [ModelVersion.from_dict(v) for v in versions]
        return {
            "name": name,
            "summary": model_summary(name, versions, champion, deployed, broken),
            "champion": champion,
            "deployed": deployed,
            "versions": versions,
            "unreadable_versions": broken,
            "gate_history": registry.gate_history(name, healthy),
            "decisions": decisions_for_model(events, name, types),
        }

    def version_payload(name: str, number: int) -> dict:
        record = registry.version(name, number)
        report, report_error = None, None
        try:
            report = loader.load(record.get("artifact_uri", ""), record.get("artifact_sha256", ""), record.get("extra"))
        except ArtifactError as error:
            report_error = str(error)
        return {
            "model": name,
            "version": record,
            "champion": registry.alias(name, CHAMPION),
            "deployed": registry.alias(name, DEPLOYED),
            "plots": None if report is None else plot_data(record, report),
            "report_error": report_error,
        }

    @app.get("/api/models")
    def api_models() -> dict:
        """Every model with its version counts and where ``champion`` and ``deployed`` point."""
        summaries = []
        for name in registry.models():
            champion, deployed = registry.alias(name, CHAMPION), registry.alias(name, DEPLOYED)
            versions, broken = registry.scan(name)
            summaries.append(model_summary(name, versions, champion, deployed, broken))
        return {"registry_uri": registry.uri, "models": summaries}

    @app.get("/api/models/{name}")
    def api_model(name: str) -> dict:
        """One model: all version records, aliases, gate history and promotion decisions."""
        return model_payload(name, registry.events())

    @app.get("/api/models/{name}/versions/{number}")
    def api_version(name: str, number: int) -> dict:
        """One version record plus the chart data from its training report."""
        return version_payload(name, number)

    @app.get("/api/events")
    def api_events(kind: str | None = None) -> dict:
        """The registry's event log, oldest first, optionally of one kind."""
        return {"events": registry.events(kind)}

    @app.get("/", response_class=HTMLResponse)
    def overview() -> HTMLResponse:
        events = registry.events()
        models = [model_payload(name, events) for name in registry.models()]
        return HTMLResponse(pages.overview_page(registry.uri, models, events))

    @app.get("/models/{name}/versions/{number}", response_class=HTMLResponse)
    def version_html(name: str, number: int) -> HTMLResponse:
        data = version_payload(name, number)
        return HTMLResponse(
            pages.version_page(
                data["version"],
                champion=data["champion"],
                deployed=data["deployed"],
                plots=data["plots"],
                report_error=data["report_error"],
            )
        )

    return app


def _is_api(request: Request) -> bool:
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    return path.startswith("/api/")
