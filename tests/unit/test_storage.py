"""URI helpers over fsspec, for file:// and for s3:// against a moto server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import boto3
import pytest

from streamguard import storage


def test_normalize_and_join(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.normalize_uri("rel/x.json") == (tmp_path / "rel/x.json").as_uri()
    assert storage.normalize_uri(tmp_path) == tmp_path.as_uri()
    assert storage.normalize_uri("file://" + str(tmp_path)) == tmp_path.as_uri()
    assert storage.normalize_uri("s3://bucket/a/b/") == "s3://bucket/a/b"
    assert storage.is_s3("S3://bucket/x") and not storage.is_s3(str(tmp_path))
    assert storage.join_uri("s3://b/p/", "a", "/b.json") == "s3://b/p/a/b.json"
    assert storage.join_uri(tmp_path, "x") == (tmp_path / "x").as_uri()
    with pytest.raises(ValueError, match="unsupported scheme 'gs'"):
        storage.normalize_uri("gs://b/x")
    with pytest.raises(ValueError, match="needs a bucket"):
        storage.normalize_uri("s3://")
    with pytest.raises(ValueError, match=r"may not contain '\.\.'"):
        storage.join_uri("s3://b/p", "../etc")
    with pytest.raises(ValueError, match="must be local"):
        storage.normalize_uri("file://host/x")


def _make_tree(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"alpha", "sub/b.bin": bytes(range(256)) * 10, "sub/deep/c.json": b'{"c": 1}'}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _roundtrip(base: str, tmp_path: Path) -> None:
    """The same checks for any base URI (a file:// directory or an s3:// prefix)."""
    target = storage.join_uri(base, "dir", "note.txt")
    assert not storage.exists(target)
    storage.write_text(target, "héllo")
    assert storage.exists(target)
    assert storage.read_text(target) == "héllo"
    assert storage.read_bytes(target) == "héllo".encode()
    assert storage.sha256_uri(target) == hashlib.sha256("héllo".encode()).hexdigest()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        storage.read_bytes(storage.join_uri(base, "missing.txt"))

    src = tmp_path / "src"
    files = _make_tree(src)
    written = storage.upload_dir(src, storage.join_uri(base, "model"))
    assert sorted(written) == sorted(storage.join_uri(base, "model", rel) for rel in files)
    listed = storage.list_dir(storage.join_uri(base, "model"), recursive=True)
    assert listed == sorted(written)
    children = storage.list_dir(storage.join_uri(base, "model"))
    assert storage.join_uri(base, "model", "a.txt") in children and len(children) == 2
    assert storage.list_dir(storage.join_uri(base, "nothing-here")) == []

    out = storage.download(storage.join_uri(base, "model"), tmp_path / "out")
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data
    one = storage.download(storage.join_uri(base, "model", "sub", "b.bin"), tmp_path / "one.bin")
    assert one.read_bytes() == files["sub/b.bin"]
    (tmp_path / "into").mkdir()
    into = storage.download(storage.join_uri(base, "model", "a.txt"), tmp_path / "into")
    assert into == tmp_path / "into" / "a.txt" and into.read_bytes() == b"alpha"
    with pytest.raises(FileNotFoundError, match="no file or prefix"):
        storage.download(storage.join_uri(base, "nothing-here"), tmp_path / "none")

    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * (3 << 20))
    uri = storage.upload_file(big, storage.join_uri(base, "big.bin"))
    assert storage.sha256_uri(uri) == hashlib.sha256(big.read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError, match="is not a file"):
        storage.upload_file(tmp_path / "nope", uri)

    storage.delete(uri)
    assert not storage.exists(uri) and storage.exists(storage.join_uri(base, "model", "a.txt"))
    storage.delete(uri)  # already gone: not an error


def test_file_uris(tmp_path):
    _roundtrip((tmp_path / "store").as_uri(), tmp_path)
    # Local writes go through a temp file and leave none behind.
    assert not list((tmp_path / "store").rglob(".*"))


def test_s3_uris(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="sg-storage")
    _roundtrip("s3://sg-storage/prefix", tmp_path)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="sg-storage")["Contents"]]
    assert "prefix/model/sub/deep/c.json" in keys
