"""`streamguard.core.archive` and every caller that reads or unpacks an archive through it.

Each unsafe-member and tampered-archive case runs against the module itself and against each
caller (the entry's model dir, the serving cache, the UI's report reader, the retraining and
evaluation readers), so a caller that bypassed the checks would fail here.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from streamguard.core import archive

REPO = Path(__file__).resolve().parents[3]
for extra in (REPO / "training_entry", REPO / "plugins"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

CONFIG = {"model_type": "gnn"}


def _add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


def _write(path: Path, build) -> str:
    """A model.tar.gz holding config.json plus what ``build`` adds; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        _add_file(tar, "config.json", json.dumps(CONFIG).encode())
        build(tar)
    return hashlib.sha256(path.read_bytes()).hexdigest()


UNSAFE = {
    "absolute": (lambda t: _add_file(t, "/etc/evil"), "has an absolute path"),
    "dotdot": (lambda t: _add_file(t, "a/../../evil"), "contains '..'"),
    "backslash-dotdot": (lambda t: _add_file(t, "..\\evil"), "contains '..'"),
    "backslash": (lambda t: _add_file(t, "a\\evil"), "contains a backslash"),
    "symlink": (lambda t: _add_special(t, "link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    "hardlink": (lambda t: _add_special(t, "link", tarfile.LNKTYPE, "config.json"), "is a link"),
    "device": (lambda t: _add_special(t, "dev", tarfile.CHRTYPE), "is not a regular file or directory"),
    "fifo": (lambda t: _add_special(t, "fifo", tarfile.FIFOTYPE), "is not a regular file or directory"),
}


# ------------------------------------------------------------------------------------ callers
# Each reads or unpacks ``path`` (expected sha256 ``sha``, "" for none) the way it does in the
# bundle, and raises its own error type.
def _core_extract(path, sha, tmp):
    return archive.safe_extract(path, tmp / "out", expected_sha256=sha or None)


def _core_read(path, sha, tmp):
    return archive.read_members(path, ["config.json"], expected_sha256=sha or None).files


def _entry_model_dir(path, sha, tmp):
    import artifacts

    return artifacts.resolve_model_dir(path, tmp / "entry", sha or None)


def _serving_fetch(path, sha, tmp):
    from streamguard.serving.models import fetch_artifact

    record = SimpleNamespace(artifact_uri=path.as_uri(), artifact_sha256=sha or hashlib.sha256(
        path.read_bytes()).hexdigest(), model_name="m", version=1)
    return fetch_artifact(record, tmp / "serve")


def _ui_report(path, sha, tmp):
    from streamguard_ui.artifacts import ReportLoader

    return ReportLoader(tmp / "ui-cache").load(path.as_uri(), sha)


def _retraining_read(path, sha, tmp):
    from streamguard.pipeline.retrain_decision import _read_from_artifact

    return _read_from_artifact(path.as_uri(), "config.json", sha)


def _output_fetch(path, sha, tmp):
    from streamguard.pipeline.evaluation import _fetch_tar

    return _fetch_tar(path.as_uri(), tmp / "fetch")


def _errors():
    import artifacts
    from streamguard_ui.artifacts import ArtifactError as UIError

    from streamguard.serving.models import ModelLoadError

    return {"entry": artifacts.ArtifactError, "ui": UIError, "serving": ModelLoadError}


CALLERS = {
    "core.safe_extract": (_core_extract, None),
    "core.read_members": (_core_read, None),
    "entry.resolve_model_dir": (_entry_model_dir, "entry"),
    "serving.fetch_artifact": (_serving_fetch, "serving"),
    "ui.ReportLoader": (_ui_report, "ui"),
    "retrain_decision._read_from_artifact": (_retraining_read, None),
    "evaluation._fetch_tar": (_output_fetch, None),
}
# Those that take the registry's sha256 (the output tarball of a job has none).
WITH_SHA = [name for name in CALLERS if name != "evaluation._fetch_tar"]


def _error_of(caller: str) -> type[Exception]:
    kind = CALLERS[caller][1]
    return archive.ArchiveError if kind is None else _errors()[kind]


def _unpacked_anywhere(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob("*") if p.name in ("evil", "config.json") and p.parent != tmp / "in"]


@pytest.mark.parametrize("caller", list(CALLERS))
def test_a_good_archive_is_read_by_every_caller(tmp_path, caller):
    path = tmp_path / "in" / "model.tar.gz"
    sha = _write(path, lambda t: _add_file(t, "./weights.safetensors", b"w" * 10))
    result = CALLERS[caller][0](path, sha if caller in WITH_SHA else "", tmp_path)
    if caller == "retrain_decision._read_from_artifact":
        assert result == CONFIG
    elif isinstance(result, Path):
        assert json.loads((result / "config.json").read_text()) == CONFIG
    elif isinstance(result, dict):
        assert json.loads(result["config.json"]) == CONFIG
    else:  # the UI's report: no report files in this archive, each listed as missing
        assert result.missing == ("history.json", "metrics.json", "test_predictions.jsonl")


@pytest.mark.parametrize("kind", list(UNSAFE))
@pytest.mark.parametrize("caller", list(CALLERS))
def test_unsafe_members_refuse_the_whole_archive_in_every_caller(tmp_path, caller, kind):
    build, message = UNSAFE[kind]
    path = tmp_path / "in" / "model.tar.gz"
    sha = _write(path, build)
    with pytest.raises(_error_of(caller), match=message) as info:
        CALLERS[caller][0](path, sha if caller in WITH_SHA else "", tmp_path)
    assert "refusing member" in str(info.value)
    assert not _unpacked_anywhere(tmp_path), "nothing of a refused archive is written"


@pytest.mark.parametrize("caller", WITH_SHA)
def test_tampered_archive_is_refused_before_anything_is_read(tmp_path, caller):
    path = tmp_path / "in" / "model.tar.gz"
    sha = _write(path, lambda t: None)
    _write(path, lambda t: _add_file(t, "extra.txt"))  # rewritten after registration
    with pytest.raises(_error_of(caller), match="differs from the registry's") as info:
        CALLERS[caller][0](path, sha, tmp_path)
    assert sha in str(info.value) and "refused, sha256 is" in str(info.value)
    assert not _unpacked_anywhere(tmp_path)


def test_data_filter_refuses_a_path_that_resolves_outside_through_an_existing_link(tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as tar:
        _add_file(tar, "sub/x.txt")
    with pytest.raises(archive.UnsafeArchiveError, match="refusing member: 'sub/x.txt'"):
        archive.safe_extract(path, dest)
    assert not (outside / "x.txt").exists()


def test_unreadable_archive_and_big_members_are_named(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    with pytest.raises(archive.ArchiveError, match="not a readable tar archive"):
        archive.read_members(junk, ["config.json"], where="s3://b/junk.tar.gz")
    path = tmp_path / "big.tar.gz"
    _write(path, lambda t: _add_file(t, "metrics.json", b"1" * 100))
    with pytest.raises(archive.ArchiveError, match="metrics.json is 100 bytes, over the 99 limit"):
        archive.read_members(path, ["metrics.json"], max_member_bytes=99)
    contents = archive.read_members(path, ["metrics.json"], max_member_bytes=100)
    assert contents.files == {"metrics.json": b"1" * 100}
    assert contents.sizes == {"config.json": len(json.dumps(CONFIG)), "metrics.json": 100}
    assert contents.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert archive.read_json_member(path, "absent.json") is None


# ------------------------------------------------------------------------------- atomic writes
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_atomic_writes_replace_whole_files_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "f.json"
    archive.write_json_atomic(target, {"b": 1, "a": [1]}, indent=None, sort_keys=True)
    assert target.read_text() == '{"a": [1], "b": 1}\n'
    archive.write_text_atomic(target, "é")
    assert target.read_bytes() == "é".encode()
    archive.write_bytes_atomic(target, b"\0", fsync=True)
    assert target.read_bytes() == b"\0" and _leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with archive.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_atomic_directory_publishes_in_one_rename(tmp_path):
    final = tmp_path / "cache" / "abc"
    with archive.atomic_directory(final) as staging:
        (staging / "a").write_text("1")
        assert not final.exists()
    assert (final / "a").read_text() == "1"
    with pytest.raises(OSError), archive.atomic_directory(final) as staging:
        (staging / "a").write_text("2")  # someone published first: kept as it is
    assert (final / "a").read_text() == "1"
    with archive.atomic_directory(final, overwrite=True) as staging:
        (staging / "b").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    with pytest.raises(ValueError), archive.atomic_directory(tmp_path / "cache" / "never") as staging:
        raise ValueError("failed while staging")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["abc"]


def test_storage_and_registry_writes_go_through_the_atomic_write(tmp_path):
    from streamguard import storage
    from streamguard.registry.local import LocalStore

    uri = (tmp_path / "obj" / "x.bin").as_uri()
    storage.write_bytes(uri, b"v1")
    storage.write_bytes(uri, b"v2")
    assert storage.read_bytes(uri) == b"v2" and _leftovers(tmp_path / "obj") == []
    store = LocalStore(tmp_path / "reg")
    etag = store.create("models/m/record.json", b"1")
    store.replace("models/m/record.json", b"2", etag)
    assert store.read("models/m/record.json").data == b"2"
    assert _leftovers(tmp_path / "reg" / "models" / "m") == []
