"""StreamGuard: train, gate, register and retrain code-vulnerability models.

This package is imported by DAG files, so it must stay light: no torch,
transformers, torch_geometric or boto3 at import time.
"""

__version__ = "0.1.0"
