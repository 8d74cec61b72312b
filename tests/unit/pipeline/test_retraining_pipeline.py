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


def _register(client, model_type: str, job: str, hyperparameters: dict, status: str = "rejected"):
    from streamguard.pipeline.params import MODEL_NAMES

    channels = {split: f"file:///data/{job}/{split}" for split in ("train", "validation", "test")}
    return client.register(MODEL_NAMES[model_type], model_type=model_type, artifact_uri=f"file:///m/{job}.tar.gz",
                           artifact_sha256="b" * 64, metrics={}, training_job_name=job, backend="local",
                           data_hash="h", code_version="c", hyperparameters=hyperparameters,
                           gate={"passed": False, "reasons": ["val accuracy"], "thresholds": {}},
                           status=status, extra={"channels": channels})


def test_a_bootstrap_trains_with_the_options_of_the_version_whose_data_it_reuses(tmp_path, monkeypatch):
    from streamguard.pipeline import retrain_decision
    from streamguard.registry import RegistryClient

    client = RegistryClient((tmp_path / "registry").as_uri())
    monkeypatch.setenv("STREAMGUARD_REGISTRY_URI", client.uri)
    config = resolve_retraining_config({})
    feedback = {"n_labelled": 0}
    # The user trained both models with non-default options; both versions were rejected.
    _register(client, "gnn", "sg-gnn-1", {"epochs": 9, "sink-dropout": 0.2, "selection-metric": '"youden"'})
    _register(client, "transformer", "sg-transformer-1", {"token-dropout": 0.5})

    source = retrain_decision.bootstrap_source("gnn", feedback)
    assert source["channels"]["train"] == "file:///data/sg-gnn-1/train"
    cfg = retrain_decision.bootstrap_config(config, "gnn", source["hyperparameters"])
    gnn = cfg.per_model["gnn"]
    assert gnn.options["sink-dropout"] == 0.2 and gnn.options["selection-metric"] == "youden"
    assert gnn.options["language-balance"] == 0.0  # not recorded: the default
    from streamguard.core.model_types import MODEL_DEFAULTS

    assert gnn.epochs == MODEL_DEFAULTS["gnn"]["epochs"]  # only the options carry over
    assert cfg.seed == retrain_decision.bootstrap_config(config, "gnn").seed
    # The job it starts passes them to the entry.
    from streamguard.pipeline import retrain_plan

    plan = RetrainPlan(mode="bootstrap", data=PreparedChannels(channels=source["channels"], data_hash="h"),
                       training_config=cfg)
    hps = retrain_plan.build_retrain_job(RUN, plan, "gnn", SourcePackage(uri="file:///s.tar.gz", sha256="s" * 64))
    assert json.loads(hps["HyperParameters"]["sink-dropout"]) == 0.2

    # Data from the other model's version: its options are not this model's, so the defaults apply.
    client_only_gnn = RegistryClient((tmp_path / "registry2").as_uri())
    monkeypatch.setenv("STREAMGUARD_REGISTRY_URI", client_only_gnn.uri)
    _register(client_only_gnn, "gnn", "sg-gnn-2", {"sink-dropout": 0.2})
    other = retrain_decision.bootstrap_source("transformer", feedback)
    assert other["from"].endswith("v1 (rejected)") and "hyperparameters" not in other
    assert retrain_decision.bootstrap_config(config, "transformer", other.get("hyperparameters")) == \
        retrain_decision.bootstrap_config(config, "transformer")


def test_a_fine_tuned_champion_records_its_options_and_the_next_fine_tune_keeps_them_and_its_rate():
    from streamguard.pipeline import retrain_plan
    from streamguard.pipeline.job_specs import training_hyperparameters

    config = resolve_retraining_config({})
    first = {"model_type": "gnn", "hyperparameters": {"learning-rate": 0.004, "batch-size": 16, "seed": 13,
                                                      "sink-dropout": 0.2}}
    cfg1 = retrain_plan.finetune_config(config, first)
    assert cfg1.per_model["gnn"].learning_rate == pytest.approx(0.004 * config.finetune_lr_factor)
    # What promotion records for the fine-tuned version (`compare_and_decide`).
    recorded = {**training_hyperparameters(cfg1, "gnn"), "fine_tuned_from": 1}
    second = {"model_type": "gnn", "hyperparameters": json.loads(json.dumps(recorded))}
    cfg2 = retrain_plan.finetune_config(config, second)
    assert cfg2.per_model["gnn"].options["sink-dropout"] == 0.2
    assert cfg2.per_model["gnn"].learning_rate == pytest.approx(cfg1.per_model["gnn"].learning_rate)
    assert cfg2.seed == cfg1.seed + 1
    # A fine-tune registered before the options were recorded: the default rate, scaled.
    legacy = {"model_type": "gnn", "hyperparameters": {"fine_tuned_from": 1}}
    from streamguard.core.model_types import MODEL_DEFAULTS

    assert retrain_plan.finetune_config(config, legacy).per_model["gnn"].learning_rate == pytest.approx(
        MODEL_DEFAULTS["gnn"]["learning_rate"] * config.finetune_lr_factor)
