"""Airflow plugin: the "StreamGuard Models" page (registry versions, gate and promotion decisions, charts).

Adds a FastAPI app to Airflow's API server under ``/streamguard`` and a navigation entry that shows
it inside the Airflow UI. Every route requires an Airflow login (plugin apps are not protected by
Airflow otherwise). Importing this module is cheap: FastAPI only; the registry is first read on a
request, and Airflow's security module is imported on the first request too.
"""

from __future__ import annotations

from fastapi import Depends

from airflow.plugins_manager import AirflowPlugin
from streamguard_ui.app import create_app
from streamguard_ui.auth import require_airflow_user

URL_PREFIX = "/streamguard"
APP_NAME = "StreamGuard Models"


class StreamGuardUIPlugin(AirflowPlugin):
    """Registers the StreamGuard Models app and its entry in the UI's navigation bar."""

    name = "streamguard_ui"
    fastapi_apps = [
        {
            "app": create_app(dependencies=[Depends(require_airflow_user)]),
            "url_prefix": URL_PREFIX,
            "name": APP_NAME,
        }
    ]
    external_views = [
        {
            "name": APP_NAME,
            # Relative (no leading slash): resolved against the UI's base URL, so it also works
            # when Airflow is served under a sub-path.
            "href": URL_PREFIX.lstrip("/") + "/",
            # Set: the page is embedded in the UI (an iframe at <base>/plugin/streamguard-models).
            "url_route": "streamguard-models",
            "destination": "nav",
            "category": "browse",
        }
    ]
