"""Using the trained models: load a registered archive with its own handler, serve it, A/B route, log verdicts.

Nothing here is imported by DAG files; torch is imported only when a model is loaded.
"""
