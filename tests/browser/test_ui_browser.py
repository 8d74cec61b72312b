"""The Airflow UI in a real browser: log in, find the DAGs, trigger a training run from the form with
non-default params, wait for it to succeed, then read the "StreamGuard Models" page.

Runs Airflow (api-server, scheduler, dag-processor; LocalExecutor, SQLite) in a temp AIRFLOW_HOME and
drives Debian's headless Chromium with Playwright. Needs ``bash scripts/install-browser.sh``; skips,
saying why, only when Chromium or Playwright is missing or Chromium does not start. Screenshots go to
a temp dir and, when ``$STREAMGUARD_SCREENSHOTS`` is set, are copied there.
"""

from __future__ import annotations

import time

import pytest

from tests.support.browser import (
    AirflowServer,
    BrowserUnavailable,
    Screenshots,
    import_playwright,
    launch_chromium,
)
from tests.support.secret_scan import scan_tree

pytestmark = [pytest.mark.slow, pytest.mark.timeout(720)]

TRAINING, RETRAINING = "streamguard_training", "streamguard_retraining"
# Typed into the trigger form's per-param fields; every value differs from the DAG's default.
FORM_VALUES = {
    "sample_pairs": "20",
    "seed": "7",
    "gnn_epochs": "1",
    "transformer_epochs": "1",
    "gnn_sink_dropout": "0.1",  # one of the entry's training options (TRAINING_OPTIONS)
    "gnn_min_val_accuracy": "0",
    "transformer_min_val_accuracy": "0",
    "max_fpr": "1",
}
FORM_MODELS = ("gnn", "transformer")
# The trigger form's sections, in order, and the section of each field typed into.
FORM_SECTIONS = {TRAINING: ("Data", "Models", "Taint-Flow GNN", "SQL Intent Transformer", "Metric gate", "SageMaker"),
                 RETRAINING: ("Feedback", "Models", "Retraining triggers", "Fine-tuning",
                              "Champion/challenger promotion", "Metric gate", "A/B endpoint")}
FIELD_SECTION = {"sample_pairs": "Data", "seed": "Data", "gnn_epochs": "Taint-Flow GNN",
                 "gnn_sink_dropout": "Taint-Flow GNN",
                 "transformer_epochs": "SQL Intent Transformer", "gnn_min_val_accuracy": "Metric gate",
                 "transformer_min_val_accuracy": "Metric gate", "max_fpr": "Metric gate"}
EXPECTED_CONF = {"sample_pairs": 20, "seed": 7, "gnn_epochs": 1, "transformer_epochs": 1, "gnn_sink_dropout": 0.1,
                 "gnn_min_val_accuracy": 0, "transformer_min_val_accuracy": 0, "max_fpr": 1,
                 "models": list(FORM_MODELS)}
MODEL_NAMES = {"gnn": "taint_flow_gnn", "transformer": "sql_intent_transformer"}
PLOTS = ("learning-curves", "confusion-matrix", "roc")
RUN_TIMEOUT_S = 360
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium under Playwright; skips (with the reason) when it is not available."""
    try:
        sync_playwright = import_playwright()
    except BrowserUnavailable as error:
        pytest.skip(str(error))
    with sync_playwright() as playwright:
        try:
            chromium = launch_chromium(playwright)
        except BrowserUnavailable as error:
            pytest.skip(str(error))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A running Airflow with the bundle; every process it started is stopped afterwards."""
    airflow = AirflowServer(tmp_path_factory.mktemp("airflow-ui"))
    try:
        airflow.start()
        airflow.wait_for_dags((TRAINING, RETRAINING))
        yield airflow
    finally:
        airflow.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    screenshots = Screenshots(tmp_path_factory.mktemp("screenshots"))
    yield screenshots
    published = screenshots.publish()
    print(f"\nscreenshots: {screenshots.directory}" + (f" (copied to {published})" if published else ""))


def test_trigger_training_from_the_ui_and_see_the_models(browser, server, shots):
    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        login(page, server, shots)
        check_dag_list(page, server, shots)
        check_trigger_forms_enabled(page, server, (TRAINING, RETRAINING))
        trigger_training(page, server, shots)
        run = server.wait_for_run(TRAINING, timeout=RUN_TIMEOUT_S)
        check_run(run)
        show_run(page, server, shots)
        check_models_page(page, server, shots)
        check_logs_hold_no_credentials(server)
    except Exception:
        try:
            shots.take(page, "failure")
        except Exception as error:  # noqa: BLE001 - keep the original failure, note the lost screenshot
            print(f"no failure screenshot: {error}")
        raise
    finally:
        context.close()
    print(f"\nUI test took {time.monotonic() - started:.0f}s")


# --- steps ------------------------------------------------------------------------------------------
def settle(page, timeout_ms: int = 10_000) -> None:
    """Let the page finish loading before a screenshot; the UI's auto-refresh may never go idle."""
    try:
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: a screenshot mid-refresh is fine
        pass


def login(page, server: AirflowServer, shots: Screenshots) -> None:
    """Sign in through the simple auth manager's login form with the server's admin password."""
    page.goto(server.base_url + "/")
    # "/" redirects to the login page, sometimes through more than one navigation (the UI's own
    # redirect aborts the server's), so wait for the form, not for one navigation to finish.
    page.get_by_label("Username").wait_for()
    assert "/auth/login" in page.url, page.url
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(server.password)
    shots.take(page, "login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.get_by_role("link", name="Dags").first.wait_for()
    cookies = {c["name"] for c in page.context.cookies()}
    assert "_token" in cookies, f"no session cookie after login: {sorted(cookies)}"


def check_dag_list(page, server: AirflowServer, shots: Screenshots) -> None:
    """Both DAGs are listed (parsed without import errors) with links to their pages."""
    page.goto(server.base_url + "/dags")
    for dag_id in (TRAINING, RETRAINING):
        page.get_by_role("link", name=dag_id, exact=True).wait_for()
    settle(page)
    shots.take(page, "dag-list")
    errors = server.request("GET", "/api/v2/importErrors")
    assert errors["total_entries"] == 0, f"DAG import errors: {errors['import_errors']}"


def open_trigger_form(page, server: AirflowServer, dag_id: str):
    """Open the DAG's page and its "Trigger Dag" dialog; return the dialog locator."""
    page.goto(f"{server.base_url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Advanced Options").wait_for()
    return dialog


def check_sections(dialog, dag_id: str) -> None:
    """The form groups the params into the DAG's sections, in order, each one opening to its fields."""
    triggers = dialog.locator("[data-testid='config-form'] [data-part='item-trigger']")
    titles = [t.strip() for t in triggers.all_inner_texts() if t.strip() != "Advanced Options"]
    assert titles == list(FORM_SECTIONS[dag_id]), f"{dag_id}: sections {titles}"
    open_section(dialog, "Models")
    models = dialog.locator("[name='element_models']")
    assert models.count() >= 1, "the models param is not rendered"
    for model in FORM_MODELS:  # a multi-select with both models chosen by default
        assert dialog.get_by_text(model, exact=True).first.is_visible(), f"models multi-select lacks {model}"


def open_section(dialog, title: str) -> None:
    trigger = dialog.get_by_role("button", name=title, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()


def check_trigger_forms_enabled(page, server: AirflowServer, dag_ids: tuple[str, ...]) -> None:
    """With their default params the DAGs' trigger forms let the user trigger (no required field empty)."""
    problems = {}
    for dag_id in dag_ids:
        dialog = open_trigger_form(page, server, dag_id)
        check_sections(dialog, dag_id)
        if not dialog.get_by_test_id("trigger-dag-submit").is_enabled():
            problems[dag_id] = invalid_fields(dialog)
        dialog.get_by_role("button", name="Close").click()
        dialog.wait_for(state="hidden")
    assert not problems, (
        f"the Trigger button is disabled with the default params; invalid fields per DAG: {problems}. "
        "An optional param whose default is empty needs a JSON-schema type that allows null "
        "(e.g. ['string', 'null']), or the Airflow form treats it as required."
    )


def invalid_fields(dialog) -> list[str]:
    """Names of the form fields the UI marks invalid or required-but-empty."""
    names = []
    for field in dialog.locator("input[name^='element_'], textarea[name^='element_']").all():
        name = field.get_attribute("name").removeprefix("element_")
        if field.get_attribute("aria-invalid") == "true" or (
                field.get_attribute("required") is not None and field.get_attribute("type") != "checkbox"
                and not field.input_value()):
            names.append(name)
    return names


def trigger_training(page, server: AirflowServer, shots: Screenshots) -> None:
    """Type non-default values into the per-param fields, check the JSON conf follows, trigger."""
    dialog = open_trigger_form(page, server, TRAINING)
    unpause = dialog.get_by_role("checkbox", name=f"Unpause {TRAINING} on trigger")
    if unpause.count() and not unpause.is_checked():
        unpause.check()
    for name, value in FORM_VALUES.items():
        open_section(dialog, FIELD_SECTION[name])
        field = dialog.locator(f"[name='element_{name}']")
        field.fill(value)
        field.press("Tab")  # commit: the number inputs parse on blur
        assert field.input_value() == value, f"form field {name}: typed {value!r}, shows {field.input_value()!r}"
    open_section(dialog, "Taint-Flow GNN")
    dialog.locator("[name='element_gnn_epochs']").scroll_into_view_if_needed()
    shots.take(page, "trigger-form")
    # The advanced section's JSON editor mirrors the fields: what will be sent as conf.
    dialog.get_by_role("button", name="Advanced Options").click()
    editor = dialog.locator(".view-lines")
    editor.wait_for()
    editor_text = " ".join(editor.inner_text().split())
    assert '"sample_pairs": 20' in editor_text, f"the conf editor does not show the typed values: {editor_text}"
    shots.take(page, "trigger-conf-json")
    submit = dialog.get_by_test_id("trigger-dag-submit")
    assert submit.is_enabled(), f"Trigger button disabled; invalid fields: {invalid_fields(dialog)}"
    submit.click()
    dialog.wait_for(state="hidden")


def check_run(run: dict) -> None:
    """The run came from the UI form and carries the typed, non-default params."""
    assert run["state"] == "success"
    assert run["run_type"] == "manual" and run.get("triggered_by") == "ui", run
    assert run.get("triggering_user_name") == "admin", run
    conf = run["conf"]
    wrong = {k: conf.get(k) for k, v in EXPECTED_CONF.items() if conf.get(k) != v}
    assert not wrong, f"run conf differs from what was typed into the form: {wrong}; conf: {conf}"


def show_run(page, server: AirflowServer, shots: Screenshots) -> None:
    """The runs tab shows the run as successful."""
    page.goto(f"{server.base_url}/dags/{TRAINING}/runs")
    page.get_by_text("success").first.wait_for()
    settle(page)
    shots.take(page, "run-success")


def check_models_page(page, server: AirflowServer, shots: Screenshots) -> None:
    """The plugin's nav entry opens the models page (in an iframe) with both new versions.

    Each version page shows the three charts and the hyperparameters typed into the form.
    """
    page.goto(server.base_url + "/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="StreamGuard Models").click()
    page.wait_for_url("**/plugin/streamguard-models**")
    frame = page.frame_locator("iframe").first
    frame.get_by_role("heading", name="StreamGuard Models", level=1).wait_for()
    for name in MODEL_NAMES.values():
        section = frame.locator(f"h2#model-{name}")
        section.wait_for()
        assert "champion v1" in section.inner_text(), f"{name}: {section.inner_text()!r}"
    settle(page)
    shots.take(page, "models-page")
    for model_type, name in MODEL_NAMES.items():
        frame.locator(f"h2#model-{name} ~ table.versions").first.get_by_role("link", name="v1").click()
        frame.get_by_role("heading", name=f"{name} v1").wait_for()
        for plot in PLOTS:
            svg = frame.locator(f"svg[data-plot='{plot}']")
            svg.wait_for()
            box = svg.bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50, f"{name} v1: {plot} chart not rendered: {box}"
        hyper = frame.locator("h2:has-text('Hyperparameters') + table")
        epochs = hyper.locator("tr", has=frame.locator("th", has_text="epochs")).locator("td").inner_text()
        seed = hyper.locator("tr", has=frame.locator("th", has_text="seed")).locator("td").inner_text()
        assert (epochs, seed) == ("1", "7"), f"{name} v1: hyperparameters epochs={epochs}, seed={seed}"
        if model_type == "gnn":  # the form's training option, passed to the job as the entry's flag
            dropout = hyper.locator("tr", has=frame.locator("th", has_text="sink-dropout")).locator("td").inner_text()
            assert dropout == "0.1", f"{name} v1: hyperparameters sink-dropout={dropout}"
        shots.take(page, f"version-{model_type}")
        tab = open_standalone(page, f"{server.base_url}/streamguard/models/{name}/versions/1")
        shots.take(tab, f"version-{model_type}-full")
        tab.close()
        frame.get_by_role("link", name="all models").click()
        frame.get_by_role("heading", name="StreamGuard Models", level=1).wait_for()


def open_standalone(page, url: str):
    """The plugin page outside the iframe, in a new tab of the same (logged-in) browser context.

    The whole page fits a full-page screenshot, and it shows the session cookie alone authorises it.
    """
    tab = page.context.new_page()
    tab.goto(url)
    for plot in PLOTS:
        tab.locator(f"svg[data-plot='{plot}']").wait_for()
    return tab


def check_logs_hold_no_credentials(server: AirflowServer) -> None:
    """The real task logs (LocalExecutor) and the server logs carry no credentials nor the admin password."""
    findings, scanned = [], 0
    for root, label in ((server.home / "logs", "task-logs"), (server.logs, "server-logs")):
        found, count = scan_tree(root, label)
        findings, scanned = findings + found, scanned + count
    task_logs = list((server.home / "logs").rglob("*.log"))
    assert task_logs, f"no task logs under {server.home / 'logs'}"
    assert not findings, "credentials in the logs:\n" + "\n".join(map(str, findings))
    logs = [*server.logs.glob("*.log"), *task_logs]
    leaked = [str(p) for p in logs if server.password in p.read_text(errors="replace")]
    assert not leaked, f"the admin password appears in {leaked}"
