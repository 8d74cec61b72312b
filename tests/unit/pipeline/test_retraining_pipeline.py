"""Retraining task bodies that need no training: artifact integrity and config resolution."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from streamguard.core.archive import ArchiveIntegrityError
from streamguard.pipeline.params import ParamError, resolve_retraining_config
from streamguard.pipeline.records import PreparedChannels, RetrainPlan, RunContext, SourcePackage
from streamguard.pipeline.retrain_decision import _read_from_artifact

RUN = RunContext.create("streamguard_retraining", "r1", "local")


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
    with pytest.raises(ArchiveIntegrityError, match="differs from the registry"):
        _read_from_artifact(art.as_uri(), "baseline.json", sha)


def test_retraining_params_validate_and_name_the_parameter():
    cfg = resolve_retraining_config({"force": "true", "models": ["gnn"], "cooldown_days": 3})
    assert cfg.force is True and cfg.models == ("gnn",) and cfg.cooldown_days == 3.0
    with pytest.raises(ParamError, match="'min_gain'"):
        resolve_retraining_config({"min_gain": 2})
    with pytest.raises(ParamError, match="unknown param"):
        resolve_retraining_config({"epochs": 1})


def test_champion_evaluation_refuses_a_tampered_archive_before_starting_a_job(tmp_path, monkeypatch):
    from streamguard.pipeline import job_running, retraining, retrain_decision

    art = tmp_path / "model.tar.gz"
    sha = _tar_with(art, "metrics.json", {"validation": {}})
    _tar_with(art, "metrics.json", {"validation": {"accuracy": 1.0}})  # changed after registration
    started = []
    monkeypatch.setattr(job_running, "_job_ops", lambda backend: (lambda name: None, None, started.append))
    plan = RetrainPlan(mode="finetune",
                       champion={"training_job_name": "sg-gnn-x", "artifact_uri": art.as_uri(), "artifact_sha256": sha},
                       training_config=retrain_decision.bootstrap_config(resolve_retraining_config({}), "gnn"),
                       data=PreparedChannels(channels={"test": (tmp_path / "test").as_uri()}, data_hash="h"))
    with pytest.raises(ArchiveIntegrityError, match="differs from the registry"):
        retraining.evaluate_champion(RUN, plan, "gnn", SourcePackage(uri="file:///src.tar.gz", sha256="s" * 64))
    assert started == []


def test_fine_tune_job_carries_the_champions_sha256_and_bootstrap_jobs_train_from_scratch():
    from streamguard.pipeline import retrain_decision, retrain_plan

    config = resolve_retraining_config({})
    champion = {"model_type": "gnn", "hyperparameters": {"learning-rate": "0.005", "batch-size": "16", "seed": "13"},
                "artifact_uri": "file:///reg/jobs/sg-gnn/output/model.tar.gz", "artifact_sha256": "a" * 64}
    source = SourcePackage(uri="file:///src.tar.gz", sha256="s" * 64)
    channels = {"train": "file:///d/train", "validation": "file:///d/validation", "test": "file:///d/test"}
    finetune = RetrainPlan(mode="finetune", data=PreparedChannels(channels=channels, data_hash="h"), champion=champion,
                           training_config=retrain_plan.finetune_config(config, champion),
                           model_channel_uri="file:///reg/jobs/sg-gnn/output/", model_sha256="a" * 64)
    request = retrain_plan.build_retrain_job(RUN, finetune, "gnn", source)
    hps = request["HyperParameters"]
    assert hps["fine-tune"] == "true" and json.loads(hps["model-sha256"]) == "a" * 64
    assert [c["ChannelName"] for c in request["InputDataConfig"]][-1] == "model"
    boot = RetrainPlan(mode="bootstrap", data=PreparedChannels(channels=channels, data_hash="h"), champion=None,
                       training_config=retrain_decision.bootstrap_config(config, "gnn"),
                       model_channel_uri=None, model_sha256=None)
    request = retrain_plan.build_retrain_job(RUN, boot, "gnn", source)
    assert "fine-tune" not in request["HyperParameters"] and "model-sha256" not in request["HyperParameters"]
    assert "model" not in [c["ChannelName"] for c in request["InputDataConfig"]]
    from streamguard.core.model_types import MODEL_DEFAULTS

    # the training DAG's default, not finetune_epochs
    assert request["HyperParameters"]["epochs"] == str(MODEL_DEFAULTS["gnn"]["epochs"]) != str(config.finetune_epochs)


def test_a_fine_tune_keeps_the_champions_training_options():
    from streamguard.pipeline import retrain_plan

    config = resolve_retraining_config({})
    # One value as the registry records it, one as a job description's JSON-encoded string;
    # a champion from before the options were recorded has neither (the defaults apply).
    champion = {"model_type": "gnn", "hyperparameters": {"learning-rate": 0.005, "batch-size": 16, "seed": 13,
                                                         "sink-dropout": 0.1, "selection-metric": '"youden"'}}
    options = retrain_plan.finetune_config(config, champion).per_model["gnn"].options
    assert options["sink-dropout"] == 0.1 and options["selection-metric"] == "youden"
    assert options["language-balance"] == 0.0
    old = {"model_type": "transformer", "hyperparameters": {"learning-rate": 0.001}}
    assert retrain_plan.finetune_config(config, old).per_model["transformer"].options["token-dropout"] == 0.3
