"""`streamguard scan`: findings at the sink lines, SARIF 2.1.0 valid against the official schema, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.support.scan_project import EXPECTED_SINKS, SAFE_FUNCTIONS, make_project
from tests.support.serving_fixtures import GNN_NAME

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def sarif_schema_path() -> Path:
    """$SARIF_SCHEMA, else `shared/schemas/sarif-schema-2.1.0.json` beside the checkout or any folder
    above it (a clean clone may sit deeper), else the workplace's copy (the official OASIS schema)."""
    if os.environ.get("SARIF_SCHEMA"):
        return Path(os.environ["SARIF_SCHEMA"])
    relative = Path("shared") / "schemas" / "sarif-schema-2.1.0.json"
    candidates = [parent / relative for parent in REPO.parents] + [Path("/work") / relative]
    return next((c for c in candidates if c.is_file()), REPO.parent / relative)


SARIF_SCHEMA = sarif_schema_path()


def scan(*argv: str, capsys) -> tuple[int, str, str]:
    from streamguard.cli import main

    rc = main(["scan", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    return root


def test_sarif_is_valid_and_points_at_the_sinks(trained_models, project, capsys):
    rc, _, err = scan("src", "--model-dir", str(trained_models["gnn"]["dir"]), "--format", "sarif",
                      "--output", "out/scan.sarif", capsys=capsys)
    assert rc == 2, err  # two files could not be read: the scan is incomplete
    log = json.loads((project / "out" / "scan.sarif").read_text())
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(log)  # raises with the failing path

    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    (model,) = driver["properties"]["models"]
    assert model["model_type"] == "gnn" and model["model_version"].startswith("gnn-")
    rules = {r["id"]: r for r in driver["rules"]}
    by_function = {}
    for result in run["results"]:
        loc = result["locations"][0]
        path = loc["physicalLocation"]["artifactLocation"]["uri"]
        by_function[(path, loc["logicalLocations"][0]["name"])] = result
        assert result["ruleId"] in rules and driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert 0 <= result["rank"] <= 100 and result["properties"]["model_version"] == model["model_version"]
    assert set(EXPECTED_SINKS) <= set(by_function), {k: v["rank"] for k, v in by_function.items()}
    for (path, function), sink_line in EXPECTED_SINKS.items():
        result = by_function[(path, function)]
        assert result["ruleId"] == "CWE-89"
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == sink_line
        steps = result["codeFlows"][0]["threadFlows"][0]["locations"]
        assert steps[-1]["location"]["physicalLocation"]["region"]["startLine"] == sink_line
        assert steps[0]["kinds"] == ["source"] and steps[-1]["kinds"] == ["sink"]
        assert "external/cwe/cwe-89" in rules["CWE-89"]["properties"]["tags"]
    assert not set(by_function) & SAFE_FUNCTIONS, "a safe function was reported"
    # Ignored, vendored and non-code files are not scanned; unreadable ones are reported, by name.
    scanned = {p for p, _ in by_function}
    assert not any("generated" in p or "vendor" in p for p in scanned)
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    errors = {n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: n["message"]["text"]
              for n in invocation["toolExecutionNotifications"] if n["level"] == "error"}
    assert errors == {"src/latin1.py": "not UTF-8 text: invalid continuation byte",
                      "src/gone.py": "cannot read: No such file or directory"}
    assert invocation["properties"]["ignored_files"] == 1 and invocation["properties"]["vendored_dirs"] == 1
    assert "src/latin1.py: error: not UTF-8 text" in err


def test_exit_codes_and_formats_with_the_registry_champion(trained_models, project, capsys, tmp_path):
    (project / "src" / "latin1.py").unlink()
    (project / "src" / "gone.py").unlink()
    reg = trained_models["registry"]
    rc, out, _ = scan("src", "--registry", reg, capsys=capsys)
    assert rc == 1, out
    assert "src/app.py:9: " in out and f"[{GNN_NAME}@1]" in out and "(7 -> 8 -> 9)" in out
    rc, out, _ = scan("src", "--registry", reg, "--format", "json", "--fail-on", "none", capsys=capsys)
    assert rc == 0
    report = json.loads(out)
    assert report["summary"]["functions"] == 6 and report["summary"]["errors"] == 0
    assert {(f["file"], f["function"]): f["line"] for f in report["findings"]} == EXPECTED_SINKS
    # Only safe code: nothing to report, exit 0.
    rc, out, _ = scan("src/util.py", "--registry", reg, capsys=capsys)
    assert rc == 0 and "0 findings" in out
    # No model: a clear error, exit 2.
    rc, _, err = scan("src", "--registry", (tmp_path / "empty").as_uri(), capsys=capsys)
    assert rc == 2 and "has no alias 'champion'" in err


def test_gitignore_is_read_by_git_inside_a_work_tree(trained_models, project, capsys):
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / "src" / "local.py").write_text("def f(cur, x):\n    cur.execute('SELECT ' + x)\n")
    (project / ".gitignore").write_text("build/\n*_generated.py\nsrc/local.py\n")
    rc, out, _ = scan("src", "--model-dir", str(trained_models["gnn"]["dir"]), "--format", "json",
                      "--fail-on", "none", capsys=capsys)
    report = json.loads(out)
    assert report["summary"]["ignored_files"] == 2  # schema_generated.py and local.py
    assert not any(f["file"] in ("src/local.py", "src/schema_generated.py") for f in report["findings"])
    # A path named explicitly is scanned even when ignored.
    rc, out, _ = scan("src/local.py", "--model-dir", str(trained_models["gnn"]["dir"]), "--format", "json",
                      capsys=capsys)
    assert json.loads(out)["summary"]["functions"] == 1
