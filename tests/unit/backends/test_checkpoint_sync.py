"""`checkpoint_sync`: a file that goes while the supervisor reads the checkpoint dir skips that copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamguard.backends import checkpoint_sync


def _checkpoint(root: Path) -> Path:
    d = root / "checkpoints"
    d.mkdir()
    (d / "epoch-1.safetensors").write_bytes(b"w" * 8)
    (d / checkpoint_sync.CHECKPOINT_STATE_FILE).write_text("{}")
    return d


def test_a_file_renamed_after_listing_makes_the_dir_inconsistent_not_an_error(tmp_path, monkeypatch):
    d = _checkpoint(tmp_path)
    assert checkpoint_sync.checkpoint_fingerprint(d) is not None
    tmp = d / ".tmpabc"
    tmp.write_bytes(b"x")
    real_is_file = Path.is_file

    def listed_then_renamed(self):
        found = real_is_file(self)
        if self == tmp and found:
            tmp.rename(d / "epoch-2.safetensors")  # the entry's atomic write lands between listing and stat
        return found

    monkeypatch.setattr(Path, "is_file", listed_then_renamed)
    assert checkpoint_sync.checkpoint_fingerprint(d) is None


def test_a_file_gone_during_the_staging_copy_skips_this_copy(tmp_path, monkeypatch):
    d = _checkpoint(tmp_path)
    out = tmp_path / "uri"
    out.mkdir()

    def vanishing_copytree(src, dst, **kwargs):
        raise shutil.Error([(str(src / ".tmpabc"), str(dst / ".tmpabc"), "[Errno 2] No such file or directory")])

    monkeypatch.setattr(checkpoint_sync.shutil, "copytree", vanishing_copytree)
    assert checkpoint_sync.copy_checkpoints(d, out.as_uri(), tmp_path / "staging") is None
    assert list(out.iterdir()) == []  # nothing half-uploaded
    monkeypatch.undo()
    assert checkpoint_sync.copy_checkpoints(d, out.as_uri(), tmp_path / "staging") is not None  # the next tick copies
    assert (out / "epoch-1.safetensors").read_bytes() == b"w" * 8
