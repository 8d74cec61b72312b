"""Kept for `plugins/streamguard_ops/reconnect.py` only, which imports `validate_request` from here.

The request builders live in `streamguard.jobs` (`request`, `names`, `metrics`, `images`); this module
goes once the SageMaker operator imports `streamguard.jobs.request.validate_request`.
"""

from streamguard.jobs.request import validate_request

__all__ = ["validate_request"]
