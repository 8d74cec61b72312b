"""Retraining task bodies that need no training: artifact integrity and config resolution."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from streamguard.pipeline.params import ParamError
from streamguard.pipeline.retraining import ArtifactIntegrityError, _read_from_artifact, resolve_retraining_config


def _tar_with(path, name: str, payload: dict) -> str:
    data = json.dumps(payload).encode()
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registered_artifact_is_read_when_its_sha256_matches(tmp_path):
    art = tmp_path / "model.tar.gz"
    sha = _tar_with(art, "baseline.json", {"v": 1, "scores": [0.1]})
    assert _read_from_artifact(art.as_uri(), "baseline.json", sha) == {"v": 1, "scores": [0.1]}
    assert _read_from_artifact(art.as_uri(), "missing.json", sha) is None


def test_tampered_artifact_is_refused(tmp_path):
    art = tmp_path / "model.tar.gz"
    sha = _tar_with(art, "baseline.json", {"v": 1})
    _tar_with(art, "baseline.json", {"v": 1, "scores": [0.9]})  # rewritten after registration
    with pytest.raises(ArtifactIntegrityError, match="differs from the registry"):
        _read_from_artifact(art.as_uri(), "baseline.json", sha)


def test_retraining_params_validate_and_name_the_parameter():
    cfg = resolve_retraining_config({"force": "true", "models": ["gnn"], "cooldown_days": 3})
    assert cfg["force"] is True and cfg["models"] == ["gnn"] and cfg["cooldown_days"] == 3.0
    with pytest.raises(ParamError, match="'min_gain'"):
        resolve_retraining_config({"min_gain": 2})
    with pytest.raises(ParamError, match="unknown param"):
        resolve_retraining_config({"epochs": 1})
