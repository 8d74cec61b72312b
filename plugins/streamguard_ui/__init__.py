"""The "StreamGuard Models" page of the Airflow UI: a FastAPI app over the StreamGuard model registry.

``streamguard_ui_plugin`` (at the plugins folder's root) registers ``app.create_app()`` with Airflow.
The modules here are imported as the ``streamguard_ui`` package only; ``.airflowignore`` keeps
Airflow's plugin loader from importing them again as loose top-level modules.
"""
