"""Model registry: immutable version records, CAS-moved aliases, an append-only event log.

Light to import (DAG files use it): boto3 is loaded only when an ``s3://`` registry is opened.
"""

from streamguard.core.archive import file_sha256
from streamguard.registry.client import CHAMPION, DEPLOYED, RegistryClient, store_for_uri
from streamguard.registry.provenance import code_version
from streamguard.registry.records import (
    AliasConflict,
    AliasRecord,
    Event,
    ModelVersion,
    PreconditionFailed,
    RecordExists,
    RegistryError,
    VersionNotFound,
)

__all__ = [
    "CHAMPION",
    "DEPLOYED",
    "AliasConflict",
    "AliasRecord",
    "Event",
    "ModelVersion",
    "PreconditionFailed",
    "RecordExists",
    "RegistryClient",
    "RegistryError",
    "VersionNotFound",
    "code_version",
    "file_sha256",
    "store_for_uri",
]
