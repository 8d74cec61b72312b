"""The "StreamGuard Models" UI plugin: JSON API, HTML pages, SVG charts, artifact safety, registration.

A temporary local registry holds versions whose artifacts are real small ``model.tar.gz`` files
built here. Their history/metrics/predictions are hand-written rendering fixtures, not results.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLUGINS = REPO / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from streamguard.registry import RegistryClient  # noqa: E402
from streamguard_ui.app import create_app  # noqa: E402
from streamguard_ui.artifacts import ArtifactError, ReportLoader, read_report_files_from_archive  # noqa: E402
from streamguard_ui.plots import (  # noqa: E402
    auc,
    confusion_matrix_svg,
    learning_curves_svg,
    roc_curve_svg,
    roc_points,
)

MODEL = "taint_flow_gnn"
HISTORY = [
    {"epoch": epoch, "train_loss": loss, "train_acc": train_acc, "val_acc": val_acc, "val_f1": val_f1,
     "seconds": seconds, "improved": True}
    for epoch, loss, train_acc, val_acc, val_f1, seconds in [
        (1, 0.69, 0.55, 0.60, 0.58, 2.5), (2, 0.52, 0.71, 0.74, 0.70, 2.4), (3, 0.40, 0.82, 0.80, 0.79, 2.6),
    ]
]
LABELS = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
SCORES = [0.1, 0.2, 0.3, 0.4, 0.7, 0.6, 0.8, 0.85, 0.9, 0.95]
# 24 of the 25 (positive, negative) pairs are ordered correctly: only 0.6 < 0.7.
EXPECTED_AUC = 24 / 25
# Threshold 0.5: one negative (0.7) above it, every positive above it.
CONFUSION = [[4, 1], [0, 5]]
FAIL_REASON = "test f1 0.41 < 0.80 <script>alert(1)</script>"


def split_metrics(accuracy: float, matrix: list[list[int]] | None = None) -> dict:
    metrics = {"n": 10, "accuracy": accuracy, "precision": 0.8, "recall": 1.0, "f1": 0.9, "fpr": 0.2, "roc_auc": 0.96}
    if matrix is not None:
        metrics["confusion_matrix"] = matrix
    return metrics


def report_files() -> dict[str, bytes]:
    rows = [
        {"id": f"r{i}", "label": y, "score": s, "pred": int(s >= 0.5)} for i, (y, s) in enumerate(zip(LABELS, SCORES))
    ]
    # A record the model could not score: kept in the file, left out of the ROC curve and counted.
    rows.append({"id": "unparsed", "label": 1, "score": None, "pred": None, "error": "no graph"})
    predictions = "".join(json.dumps(row) + "\n" for row in rows)
    return {
        "history.json": json.dumps(HISTORY).encode(),
        "metrics.json": json.dumps({"validation": split_metrics(0.8), "test": split_metrics(0.9, CONFUSION)}).encode(),
        "test_predictions.jsonl": predictions.encode(),
        "config.json": b'{"model_type": "gnn"}',
    }


def write_archive(path: Path, files: dict[str, bytes], *, prefix: str = "", links: dict[str, str] | None = None) -> str:
    """A model.tar.gz with ``files`` (names prefixed with ``prefix``) and symlinks; returns its sha256."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(client: RegistryClient, archive: Path, sha: str, job: str, *, passed: bool = True,
             reasons: list[str] | None = None, extra: dict | None = None, record_matrix: bool = True) -> int:
    version = client.register(
        MODEL,
        model_type="gnn",
        artifact_uri=archive.as_uri(),
        artifact_sha256=sha,
        metrics={"validation": split_metrics(0.8), "test": split_metrics(0.9, CONFUSION if record_matrix else None)},
        training_job_name=job,
        backend="local",
        data_hash="d" * 64,
        code_version="test",
        hyperparameters={"epochs": "3", "learning_rate": "0.001"},
        gate={"passed": passed, "reasons": reasons or [], "thresholds": {"test.f1": 0.8}},
        status="registered" if passed else "rejected",
        extra=extra or {},
    )
    return version.version


@pytest.fixture()
def registry(tmp_path: Path) -> dict:
    """Registry with: v1 champion (good archive), v2 rejected, v3 tampered, v4 '..', v5 report_uri."""
    client = RegistryClient(str(tmp_path / "registry"))
    good = tmp_path / "v1" / "model.tar.gz"
    good.parent.mkdir()
    sha = write_archive(good, report_files(), prefix="./")
    v1 = register(client, good, sha, "gnn-job-1")
    v2 = register(client, good, sha, "gnn-job-2", passed=False, reasons=[FAIL_REASON])
    client.promote(MODEL, v1)

    tampered = tmp_path / "v3" / "model.tar.gz"
    tampered.parent.mkdir()
    write_archive(tampered, report_files())
    v3 = register(client, tampered, "0" * 64, "gnn-job-3")  # the record's sha256 is not the archive's

    escaping = tmp_path / "v4" / "model.tar.gz"
    escaping.parent.mkdir()
    files = dict(report_files(), **{"../outside.txt": b"x"})
    v4 = register(client, escaping, write_archive(escaping, files), "gnn-job-4")

    report_dir = tmp_path / "v5-report"
    report_dir.mkdir()
    for name, data in report_files().items():
        (report_dir / name).write_bytes(data)
    v5 = register(client, good, sha, "gnn-job-5", extra={"report_uri": report_dir.as_uri()}, record_matrix=False)

    app = create_app(client.uri, cache_dir=tmp_path / "cache")
    return {"client": client, "http": TestClient(app), "app": app, "versions": (v1, v2, v3, v4, v5),
            "good": good, "sha": sha, "tmp": tmp_path}


# ------------------------------------------------------------------------------------- JSON API
def test_api_models_lists_versions_and_champion(registry):
    body = registry["http"].get("/api/models").json()
    assert body["registry_uri"] == registry["client"].uri
    (model,) = body["models"]
    assert model["name"] == MODEL and model["model_type"] == "gnn"
    assert model["versions"] == 5 and model["rejected"] == 1 and model["champion"] == 1
    assert model["deployed"] is None


def test_api_model_has_versions_gate_history_and_decisions(registry):
    body = registry["http"].get(f"/api/models/{MODEL}").json()
    assert [v["version"] for v in body["versions"]] == [1, 2, 3, 4, 5]
    assert body["champion"] == 1
    rejected = [g for g in body["gate_history"] if not g["passed"]]
    assert rejected == [dict(rejected[0], version=2, reasons=[FAIL_REASON])]
    moved = [d for d in body["decisions"] if d["kind"] == "alias_moved"]
    assert moved and moved[0]["payload"]["alias"] == "champion" and moved[0]["payload"]["version"] == 1


def test_api_version_has_record_and_plot_data(registry):
    body = registry["http"].get(f"/api/models/{MODEL}/versions/1").json()
    assert body["report_error"] is None
    assert body["version"]["training_job_name"] == "gnn-job-1"
    plots = body["plots"]
    assert plots["history"] == HISTORY
    assert plots["confusion_matrix"] == {"matrix": CONFUSION, "source": "registry record"}
    assert plots["roc"]["n"] == 10 and plots["roc"]["unscored"] == 1
    assert plots["roc"]["auc"] == pytest.approx(EXPECTED_AUC)
    assert plots["roc"]["points"][0] == [0.0, 0.0] and plots["roc"]["points"][-1] == [1.0, 1.0]
    assert plots["missing_files"] == []


def test_report_uri_directory_is_used_and_matrix_falls_back(registry):
    v5 = registry["versions"][4]
    plots = registry["http"].get(f"/api/models/{MODEL}/versions/{v5}").json()["plots"]
    assert plots["source"].endswith("v5-report")
    # The record has no test confusion matrix here, so metrics.json's is used.
    assert plots["confusion_matrix"] == {"matrix": CONFUSION, "source": "metrics.json"}


def test_api_events_filter_by_kind(registry):
    http = registry["http"]
    kinds = {e["kind"] for e in http.get("/api/events").json()["events"]}
    assert {"version_created", "alias_moved"} <= kinds
    only = http.get("/api/events", params={"kind": "alias_moved"}).json()["events"]
    assert only and {e["kind"] for e in only} == {"alias_moved"}


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("/api/models/no_such_model", "model 'no_such_model' not found"),
        (f"/api/models/{MODEL}/versions/99", f"model '{MODEL}' has no version 99"),
        ("/api/models/no_such_model/versions/1", "model 'no_such_model' not found"),
        ("/api/models/bad%20name!", "not a valid model name"),
    ],
)
def test_unknown_model_or_version_is_404_with_reason(registry, path, fragment):
    response = registry["http"].get(path)
    assert response.status_code == 404
    assert fragment in response.json()["detail"]


def test_unreadable_registry_record_is_named_and_the_healthy_versions_still_shown(registry):
    from streamguard.registry.store import version_key

    path = registry["tmp"] / "registry" / version_key(MODEL, 2)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:40])  # a truncated version file
    http = registry["http"]
    body = http.get(f"/api/models/{MODEL}").json()
    assert [v["version"] for v in body["versions"]] == [1, 3, 4, 5]
    (broken,) = body["unreadable_versions"]
    assert broken["version"] == 2 and broken["uri"].endswith(version_key(MODEL, 2))
    assert "not valid JSON" in broken["error"]
    assert [g["version"] for g in body["gate_history"]] == [1, 3, 4, 5]
    (summary,) = http.get("/api/models").json()["models"]
    assert summary["versions"] == 4 and summary["unreadable_versions"][0]["version"] == 2
    page = http.get("/")
    assert page.status_code == 200 and version_key(MODEL, 2) in page.text and "v1" in page.text
    assert http.get(f"/models/{MODEL}/versions/1").status_code == 200
    response = http.get(f"/api/models/{MODEL}/versions/2")  # the broken one itself: 500 naming the file
    assert response.status_code == 500 and version_key(MODEL, 2) in response.json()["detail"]
    path.write_text("{}")  # valid JSON, invalid record: named with the field
    assert "'model_name' is missing" in http.get(f"/api/models/{MODEL}").json()["unreadable_versions"][0]["error"]


# ----------------------------------------------------------------------------------------- HTML
def test_overview_page_shows_versions_champion_gate_reasons_escaped(registry):
    response = registry["http"].get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    for version in registry["versions"]:
        assert f"href='models/{MODEL}/versions/{version}'" in html
    assert "champion v1" in html and "<span class='badge champion'>champion</span>" in html
    assert "<span class='badge rejected'>rejected</span>" in html
    # Gate reasons are shown, and escaped.
    assert "test f1 0.41 &lt; 0.80 &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert "Promotion decisions" in html and "alias_moved" in html


def test_version_page_has_three_svg_plots(registry):
    html = registry["http"].get(f"/models/{MODEL}/versions/1").text
    for plot in ("learning-curves", "confusion-matrix", "roc"):
        assert f"data-plot='{plot}'" in html
    assert html.count("<svg") == 3
    assert f"AUC {EXPECTED_AUC:.3f}" in html and "10 scored test predictions, 1 unscored left out" in html
    for series in ("train_loss", "train_acc", "val_acc", "val_f1", "seconds"):
        assert f"data-series='{series}'" in html
    assert "data-series='improved'" not in html  # a flag, not a curve
    assert "href='../../../'" in html  # back to the overview, relative to any prefix


def test_unknown_version_page_is_html_404(registry):
    response = registry["http"].get(f"/models/{MODEL}/versions/42")
    assert response.status_code == 404
    assert "has no version 42" in response.text and "href='../../../'" in response.text


def test_tampered_archive_is_refused(registry):
    v3 = registry["versions"][2]
    body = registry["http"].get(f"/api/models/{MODEL}/versions/{v3}").json()
    assert body["plots"] is None
    assert "refused, sha256 is" in body["report_error"] and "0" * 64 in body["report_error"]
    html = registry["http"].get(f"/models/{MODEL}/versions/{v3}").text
    assert "Training report unavailable" in html and "<svg" not in html


def test_archive_with_dotdot_member_is_refused(registry):
    v4 = registry["versions"][3]
    body = registry["http"].get(f"/api/models/{MODEL}/versions/{v4}").json()
    assert body["plots"] is None
    assert "'../outside.txt' contains '..'" in body["report_error"]


@pytest.mark.parametrize(
    "files, links, message",
    [
        ({"/etc/evil": b"x"}, None, "has an absolute path"),
        ({"history.json": b"[]"}, {"metrics.json": "/etc/passwd"}, "is a link"),
        ({"a/../../b": b"x"}, None, "contains '..'"),
    ],
)
def test_unsafe_members_refuse_the_whole_archive(tmp_path, files, links, message):
    archive = tmp_path / "model.tar.gz"
    write_archive(archive, files, links=links)
    with pytest.raises(ArtifactError, match=message):
        read_report_files_from_archive(archive, "test archive")


def test_reports_are_cached_by_sha256(registry, tmp_path):
    cache = tmp_path / "report-cache"
    first = ReportLoader(cache).load(registry["good"].as_uri(), registry["sha"])
    assert (cache / registry["sha"] / "complete").is_file()
    registry["good"].unlink()
    # A fresh loader (a restarted API server) needs only the cache once the archive is gone.
    again = ReportLoader(cache).load(registry["good"].as_uri(), registry["sha"])
    assert again.history == first.history == HISTORY
    with pytest.raises(ArtifactError, match="artifact not found"):
        ReportLoader(None).load(registry["good"].as_uri(), registry["sha"])


def test_predictions_uri_fills_in_when_the_archive_has_none(tmp_path):
    files = report_files()
    predictions = files.pop("test_predictions.jsonl")
    archive = tmp_path / "model.tar.gz"
    sha = write_archive(archive, files)
    evaluated = tmp_path / "eval" / "predictions.jsonl"
    evaluated.parent.mkdir()
    evaluated.write_bytes(predictions)
    report = ReportLoader(None).load(archive.as_uri(), sha, {"predictions_uri": evaluated.as_uri()})
    assert report.missing == ("test_predictions.jsonl",)
    assert [row["score"] for row in report.predictions] == [*SCORES, None]
    assert report.predictions_source == evaluated.as_uri()


def test_bad_prediction_line_names_file_and_line(tmp_path):
    files = report_files()
    files["test_predictions.jsonl"] += b'{"id": "x", "label": 2, "score": 0.5}\n'
    archive = tmp_path / "model.tar.gz"
    sha = write_archive(archive, files)
    with pytest.raises(ArtifactError, match=r"test_predictions.jsonl, line 12: field 'label' is 2"):
        ReportLoader(None).load(archive.as_uri(), sha)


def test_app_mounted_under_prefix_uses_relative_links(registry):
    parent = FastAPI()
    parent.mount("/streamguard", registry["app"])
    http = TestClient(parent)
    assert http.get("/streamguard/api/models").json()["models"][0]["champion"] == 1
    html = http.get("/streamguard/").text
    assert f"href='models/{MODEL}/versions/1'" in html
    missing = http.get("/streamguard/models/nope/versions/1")
    assert missing.status_code == 404 and "href='../../../'" in missing.text
    assert http.get("/streamguard/api/models/nope").json()["detail"].startswith("model 'nope' not found")


# ---------------------------------------------------------------------------------------- plots
def test_roc_points_and_auc():
    assert auc(roc_points([0, 1], [0.1, 0.9])) == pytest.approx(1.0)
    assert auc(roc_points([1, 0], [0.1, 0.9])) == pytest.approx(0.0)
    # All scores tied: a single diagonal step, the chance line.
    assert roc_points([0, 1, 0, 1], [0.5] * 4) == [(0.0, 0.0), (1.0, 1.0)]
    assert auc(roc_points(LABELS, SCORES)) == pytest.approx(EXPECTED_AUC)
    with pytest.raises(ValueError, match="both classes"):
        roc_points([1, 1], [0.2, 0.3])


def test_svg_charts_are_well_formed_and_escape_text():
    import xml.etree.ElementTree as ET

    history = [{"epoch": 1, "train_loss": 0.5, "<b>odd</b>": 0.3}, {"epoch": 2, "train_loss": 0.4, "<b>odd</b>": 0.4}]
    charts = (learning_curves_svg(history), confusion_matrix_svg(CONFUSION), roc_curve_svg(roc_points(LABELS, SCORES)))
    for svg in charts:
        root = ET.fromstring(svg)  # raises on malformed markup
        assert root.tag.endswith("svg") and root.get("data-plot")
    assert "&lt;b&gt;odd&lt;/b&gt;" in learning_curves_svg(history)
    with pytest.raises(ValueError, match="2x2"):
        confusion_matrix_svg([[1, 2, 3]])


# ------------------------------------------------------------------------------- plugin wiring
def test_plugin_class_exposes_app_under_prefix_and_nav_link():
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse, FastAPIAppResponse

    from streamguard_ui_plugin import StreamGuardUIPlugin

    (app_entry,) = StreamGuardUIPlugin.fastapi_apps
    assert app_entry["url_prefix"] == "/streamguard" and app_entry["name"] == "StreamGuard Models"
    assert isinstance(app_entry["app"], FastAPI)
    FastAPIAppResponse(**dict(app_entry, app="app"))
    (view,) = StreamGuardUIPlugin.external_views
    parsed = ExternalViewResponse(**view)
    assert parsed.destination == "nav" and parsed.href == "streamguard/" and not parsed.url_route.startswith("/")


def test_plugin_routes_require_an_airflow_login():
    from streamguard_ui_plugin import StreamGuardUIPlugin

    http = TestClient(StreamGuardUIPlugin.fastapi_apps[0]["app"])
    response = http.get("/api/models")
    assert response.status_code == 401 and response.json()["detail"] == "Not authenticated"


def test_airflow_plugin_loader_finds_the_plugin_and_skips_package_modules(tmp_path):
    from airflow._shared.plugins_manager import _load_plugins_from_plugin_directory

    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(PLUGINS / "streamguard_ui_plugin.py", folder)
    shutil.copytree(PLUGINS / "streamguard_ui", folder / "streamguard_ui",
                    ignore=shutil.ignore_patterns("__pycache__"))
    before, previous = set(sys.modules), sys.modules.get("streamguard_ui_plugin")
    try:
        plugins, errors = _load_plugins_from_plugin_directory(plugins_folder=str(folder))
        assert errors == {}
        assert [type(p).__name__ for p in plugins] == ["StreamGuardUIPlugin"]
        # The package's modules were not imported again as loose top-level modules.
        assert not {"app", "plots", "pages", "artifacts", "auth", "model_views"} & (set(sys.modules) - before)
    finally:
        # The loader registered the temporary copy under the plugin's module name; put the real one back.
        sys.modules.pop("streamguard_ui_plugin", None)
        if previous is not None:
            sys.modules["streamguard_ui_plugin"] = previous


def test_plugin_inside_airflows_api_server(airflow_db, registry):
    """The real API server mounts the app under /streamguard, guarded by Airflow's login."""
    import subprocess

    from tests.conftest import airflow_env

    code = """
import json
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

app = create_app(apps="core")
token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
anonymous, cookie = TestClient(app), TestClient(app, cookies={"_token": token})
bearer = TestClient(app, headers={"Authorization": "Bearer " + token})
plugins = bearer.get("/api/v2/plugins").json()["plugins"]
print("RESULT " + json.dumps({
    "anonymous": anonymous.get("/streamguard/api/models").status_code,
    "models": bearer.get("/streamguard/api/models").json(),
    "page": cookie.get("/streamguard/models/taint_flow_gnn/versions/1").text,
    "plugin": [p for p in plugins if p["name"] == "streamguard_ui"],
}))
"""
    env = airflow_env(STREAMGUARD_REGISTRY_URI=registry["client"].uri,
                      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["anonymous"] == 401
    assert result["models"]["models"][0]["champion"] == 1
    assert "data-plot='roc'" in result["page"]
    (plugin,) = result["plugin"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/streamguard"
    assert plugin["external_views"][0]["href"] == "streamguard/"
