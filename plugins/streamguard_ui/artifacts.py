"""Read the training report files (history, metrics, test predictions) behind a registry version.

A version's ``artifact_uri`` points at the ``model.tar.gz`` the training job wrote. The archive is
checked against the record's ``artifact_sha256`` and scanned before anything is read: any member
with an absolute path, a ``..`` component, a link or a special file makes the whole archive
refused, since the registry promises an archive exactly as training produced it. Only the three
report files are read, by name, without extracting anything else (`streamguard.core.archive`
does the checks). Parsed reports are cached on disk and in memory by sha256 (records are
immutable, so a sha256 always means the same files).

``extra["report_uri"]``, when a record has it, names a directory holding the same files and is
used instead of the archive.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamguard.core import archive

HISTORY = "history.json"
METRICS = "metrics.json"
PREDICTIONS = "test_predictions.jsonl"
REPORT_FILES = (HISTORY, METRICS, PREDICTIONS)

# A report file bigger than this is not a report; refuse rather than fill memory.
MAX_REPORT_FILE_BYTES = 64 * 1024 * 1024


class ArtifactError(Exception):
    """The artifact or report could not be read, or was refused as unsafe or tampered."""


@dataclass(frozen=True)
class Report:
    """What the model pages draw from one version's training output.

    Attributes:
        history: history.json rows, one per epoch (empty when the file is absent).
        metrics: metrics.json (``{"validation": M, "test": M}``; empty when absent).
        predictions: test_predictions.jsonl rows (``id``, ``label``, ``score``, ``pred``).
        source: where the files came from (archive URI or report directory URI).
        missing: report files the source did not contain.
        predictions_source: where ``predictions`` came from when not from ``source``.
    """

    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    predictions: list[dict] = field(default_factory=list)
    source: str = ""
    missing: tuple[str, ...] = ()
    predictions_source: str = ""


def fetch_uri(uri: str, target: Path) -> None:
    """Copy the object at ``uri`` (``file://``, ``s3://`` or a path) to the local file ``target``."""
    from streamguard import storage

    storage.download(uri, target)


def read_uri(uri: str) -> bytes:
    """The bytes of the object at ``uri``."""
    from streamguard import storage

    return storage.read_bytes(uri)


def _join_uri(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def read_report_files_from_archive(path: Path, where: str, expected_sha256: str = "") -> tuple[dict[str, bytes], str]:
    """Check the archive (sha256 when expected, then every member), return the report files at its
    root and the archive's sha256.

    Raises:
        ArtifactError: tampered (sha256 mismatch), unreadable, an unsafe member, or a report file too big.
    """
    try:
        contents = archive.read_members(path, REPORT_FILES, expected_sha256=expected_sha256 or None, where=where,
                                        max_member_bytes=MAX_REPORT_FILE_BYTES)
    except archive.ArchiveError as error:
        raise ArtifactError(str(error)) from error
    except OSError as error:
        raise ArtifactError(f"{where}: not a readable tar archive ({error})") from error
    return contents.files, contents.sha256


def parse_history(data: bytes, where: str) -> list[dict]:
    """history.json: a list of per-epoch objects (or ``{"history": [...]}`` / ``{"epochs": [...]}``)."""
    value = _load_json(data, where)
    if isinstance(value, dict):
        value = value.get("history", value.get("epochs"))
    if not isinstance(value, list):
        raise ArtifactError(f"{where}: expected a list of per-epoch objects")
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise ArtifactError(f"{where}: row {index} is {type(row).__name__}, expected an object")
    return value


def parse_metrics(data: bytes, where: str) -> dict:
    """metrics.json: an object keyed by split (``validation``, ``test``)."""
    value = _load_json(data, where)
    if not isinstance(value, dict):
        raise ArtifactError(f"{where}: expected a JSON object keyed by split")
    return value


def parse_predictions(data: bytes, where: str) -> list[dict]:
    """test_predictions.jsonl: one object per line with a 0/1 ``label`` and a numeric (or null) ``score``."""
    rows = []
    for number, line in enumerate(data.decode("utf-8", errors="strict").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ArtifactError(f"{where}, line {number}: invalid JSON ({error.msg})") from error
        if not isinstance(row, dict):
            raise ArtifactError(f"{where}, line {number}: expected an object")
        label, score = row.get("label"), row.get("score")
        if label not in (0, 1) or isinstance(label, float):
            raise ArtifactError(f"{where}, line {number}: field 'label' is {label!r}, expected 0 or 1")
        # null: the model could not score this record (the row carries an "error"); kept, and
        # counted where the charts leave it out.
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise ArtifactError(f"{where}, line {number}: field 'score' is {score!r}, expected a number or null")
        rows.append(row)
    return rows


def _load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{where}: invalid JSON ({error})") from error


def build_report(files: dict[str, bytes], source: str) -> Report:
    """Parse the raw report files into a ``Report``; absent files are listed in ``missing``."""
    return Report(
        history=parse_history(files[HISTORY], f"{source}: {HISTORY}") if HISTORY in files else [],
        metrics=parse_metrics(files[METRICS], f"{source}: {METRICS}") if METRICS in files else {},
        predictions=parse_predictions(files[PREDICTIONS], f"{source}: {PREDICTIONS}") if PREDICTIONS in files else [],
        source=source,
        missing=tuple(name for name in REPORT_FILES if name not in files),
    )


class ReportLoader:
    """Loads and caches ``Report``s for version records.

    Args:
        cache_dir: where extracted report files are kept, one folder per artifact sha256
            (None: memory only).
        fetch: copies a URI to a local file (default: ``streamguard.storage.download``).
        read: reads a URI whole (default: ``streamguard.storage.read_bytes``).
        memory_items: how many parsed reports to keep in memory.
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        fetch: Callable[[str, Path], Any] = fetch_uri,
        read: Callable[[str], bytes] = read_uri,
        memory_items: int = 32,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.fetch = fetch
        self.read = read
        self.memory_items = memory_items
        self._memory: OrderedDict[str, Report] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, artifact_uri: str, artifact_sha256: str = "", extra: dict | None = None) -> Report:
        """The report for one version: from ``extra["report_uri"]`` if set, else from the archive.

        When the report has no test predictions and ``extra["predictions_uri"]`` names the
        evaluation job's ``predictions.jsonl``, those predictions are used.

        Raises:
            ArtifactError: unreadable, tampered (sha256 mismatch) or unsafe artifact, or bad report file.
        """
        extra = extra or {}
        if extra.get("report_uri"):
            report = self._load_directory(str(extra["report_uri"]))
        elif not artifact_uri:
            raise ArtifactError("the version record has no artifact_uri")
        else:
            key = artifact_sha256.lower() if _is_sha256(artifact_sha256) else ""
            cached = (self._from_memory(key) or self._from_disk(key, artifact_uri)) if key else None
            report = cached or self._load_archive(artifact_uri, key)
        if not report.predictions and extra.get("predictions_uri"):
            report = self._with_predictions(report, str(extra["predictions_uri"]))
        return report

    def _with_predictions(self, report: Report, uri: str) -> Report:
        try:
            data = self.read(uri)
        except FileNotFoundError:
            return report
        except (OSError, ValueError) as error:
            raise ArtifactError(f"{uri}: cannot read ({error})") from error
        if len(data) > MAX_REPORT_FILE_BYTES:
            raise ArtifactError(f"{uri}: over the {MAX_REPORT_FILE_BYTES} byte limit")
        return dataclasses.replace(report, predictions=parse_predictions(data, uri), predictions_source=uri)

    def _load_directory(self, report_uri: str) -> Report:
        files = {}
        for name in REPORT_FILES:
            uri = _join_uri(report_uri, name)
            try:
                data = self.read(uri)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as error:
                raise ArtifactError(f"{uri}: cannot read ({error})") from error
            if len(data) > MAX_REPORT_FILE_BYTES:
                raise ArtifactError(f"{uri}: over the {MAX_REPORT_FILE_BYTES} byte limit")
            files[name] = data
        if not files:
            raise ArtifactError(f"{report_uri}: none of {', '.join(REPORT_FILES)} found")
        return build_report(files, report_uri)

    def _load_archive(self, artifact_uri: str, expected_sha256: str) -> Report:
        with tempfile.TemporaryDirectory(prefix="streamguard-ui-") as tmp:
            local = Path(tmp) / "model.tar.gz"
            self._download(artifact_uri, local)
            files, actual = read_report_files_from_archive(local, artifact_uri, expected_sha256)
        report = build_report(files, artifact_uri)
        key = expected_sha256 or actual
        self._remember(key, report)
        self._to_disk(key, files)
        return report

    def _download(self, uri: str, target: Path) -> None:
        """Fetch ``uri`` to ``target``."""
        try:
            self.fetch(uri, target)
        except FileNotFoundError as error:
            raise ArtifactError(f"{uri}: artifact not found") from error
        except (OSError, ValueError) as error:
            raise ArtifactError(f"{uri}: cannot read artifact ({error})") from error
        if not target.is_file():
            raise ArtifactError(f"{uri}: not a single file (a model.tar.gz was expected)")

    def _from_memory(self, key: str) -> Report | None:
        with self._lock:
            report = self._memory.get(key)
            if report is not None:
                self._memory.move_to_end(key)
            return report

    def _remember(self, key: str, report: Report) -> None:
        with self._lock:
            self._memory[key] = report
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def _from_disk(self, key: str, artifact_uri: str) -> Report | None:
        if self.cache_dir is None:
            return None
        folder = self.cache_dir / key
        if not (folder / "complete").is_file():
            return None
        files = {name: (folder / name).read_bytes() for name in REPORT_FILES if (folder / name).is_file()}
        report = build_report(files, artifact_uri)
        self._remember(key, report)
        return report

    def _to_disk(self, key: str, files: dict[str, bytes]) -> None:
        """Write the report files under ``cache_dir/<sha256>/`` atomically (a rename publishes them)."""
        if self.cache_dir is None:
            return
        final = self.cache_dir / key
        if final.exists():
            return
        try:
            with archive.atomic_directory(final) as staging:
                for name, data in files.items():
                    (staging / name).write_bytes(data)
                (staging / "complete").write_text("ok\n")
        except OSError:
            # An unwritable cache (or another process publishing the same sha256 first) only
            # costs a re-read next time.
            pass


def _is_sha256(value: str) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
