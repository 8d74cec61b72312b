"""Airflow login for the plugin's pages: plugin FastAPI apps are not protected by Airflow on their own.

The dependency accepts the same credentials as Airflow's REST API (a ``Bearer`` token, or the UI's
``_token`` session cookie, which the browser sends to this same-origin page inside the UI's iframe)
and asks the configured auth manager whether the user may see the Airflow website. Airflow's
security module is imported on the first request only: it is slow to import, and this plugin
module is also imported by schedulers and workers, which never serve these pages.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status


async def require_airflow_user(request: Request) -> None:
    """FastAPI dependency: 401 without a valid Airflow token, 403 without access to the website view."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request=request, _oauth_token=None, bearer_credentials=credentials)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Forbidden")
