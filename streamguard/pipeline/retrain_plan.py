"""The retraining plan of one model: its data, its training config (computed once) and what it starts from.

Fine-tuning (a champion exists): the champion's training data plus the labelled feedback, the
champion's own validation and test channels, a fine-tune config from the champion's
hyperparameters. Bootstrap (no champion): the data `retrain_decision.bootstrap_source` found (plus
the feedback), or the feedback prepared into train/validation/test on its own; trained from scratch.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path

from streamguard import storage
from streamguard.pipeline.params import MODEL_NAMES, TrainingConfig
from streamguard.pipeline.records import (PreparedChannels, RetrainingConfig, RetrainPlan, RunContext, SourcePackage,
                                          plain, run_uri)
from streamguard.pipeline.retrain_decision import (SPLITS, bootstrap_config, bootstrap_source, champion_of,
                                                  recorded_options)


def build_retrain_data(config: RetrainingConfig, model_type: str, feedback: dict, key: str,
                       decision: dict | None = None) -> RetrainPlan:
    """The retraining plan: channels, the training config (computed once) and what to start from.

    Fine-tuning never trains on feedback alone; champion and challenger are compared on the same
    frozen test set.
    """
    champion = champion_of(model_type)
    if champion is None:
        source = (decision or {}).get("bootstrap_source") or bootstrap_source(model_type, feedback)
        if source is None:
            raise RuntimeError(f"no champion for {MODEL_NAMES[model_type]} and no data to train a first one")
        cfg = bootstrap_config(config, model_type, source.get("hyperparameters"))
        if source["kind"] == "feedback":
            channels, data_hash = _prepare_feedback_channels(feedback, key, model_type, cfg.seed)
        else:
            channels, data_hash = _train_plus_feedback(source["channels"], feedback, key, model_type)
        data = PreparedChannels(channels=channels, data_hash=data_hash,
                                source=f"bootstrap from {source['from']} + feedback ({feedback['n_labelled']} records)")
        return RetrainPlan(mode="bootstrap", data=data, training_config=cfg)
    channels = (champion.extra or {}).get("channels")
    if not channels:
        raise RuntimeError(f"champion {MODEL_NAMES[model_type]} v{champion.version} records no data channels")
    new_channels, data_hash = _train_plus_feedback(channels, feedback, key, model_type)
    champion_dict = plain(champion)
    data = PreparedChannels(channels=new_channels, data_hash=data_hash,
                            source=f"champion v{champion.version} train + feedback ({feedback['n_labelled']} records)")
    return RetrainPlan(mode="finetune", data=data, training_config=finetune_config(config, champion_dict),
                       champion=champion_dict, model_channel_uri=champion.artifact_uri.rsplit("/", 1)[0] + "/",
                       model_sha256=champion.artifact_sha256)


def _train_plus_feedback(channels: dict, feedback: dict, key: str, model_type: str) -> tuple[dict, str]:
    """A new train channel = `channels["train"]` + the labelled feedback; validation/test kept.

    Returns (channels, data hash).
    """
    train_uri = run_uri(key, "data", model_type, "train")
    with tempfile.TemporaryDirectory(prefix="sg-retrain-") as tmp:
        local = Path(tmp) / "train"
        storage.download(channels["train"], str(local))
        files = sorted(p for p in local.rglob("*.jsonl") if p.is_file())
        if not files:
            raise RuntimeError(f"training channel {channels['train']} holds no *.jsonl")
        for f in files:
            storage.upload_file(str(f), storage.join_uri(train_uri, f.relative_to(local).as_posix()))
        fb = Path(tmp) / "feedback.jsonl"
        storage.download(feedback["labelled_uri"], str(fb))
        storage.upload_file(str(fb), storage.join_uri(train_uri, "feedback.jsonl"))
        digest = hashlib.sha256()
        for f in [*files, fb]:
            digest.update(f.read_bytes())
    return ({"train": train_uri, "validation": channels["validation"], "test": channels["test"]},
            digest.hexdigest())


def _prepare_feedback_channels(feedback: dict, key: str, model_type: str, seed: int) -> tuple[dict, str | None]:
    """Train/validation/test channels (with graphs) prepared from the labelled feedback alone.

    Returns (channels, data hash).
    """
    from streamguard.data.prepare import prepare

    root = run_uri(key, "data", model_type, "bootstrap")
    with tempfile.TemporaryDirectory(prefix="sg-bootstrap-") as tmp:
        fb = Path(tmp) / "feedback.jsonl"
        storage.download(feedback["labelled_uri"], str(fb))
        out = Path(tmp) / "prepared"
        report = prepare([str(fb)], str(out), seed=seed)
        for path in sorted(out.rglob("*")):
            if path.is_file():
                storage.upload_file(str(path), storage.join_uri(root, path.relative_to(out).as_posix()))
    return {split: storage.join_uri(root, split) for split in SPLITS}, plain(report).get("data_hash")


def finetune_config(config: RetrainingConfig, champion: dict) -> TrainingConfig:
    """A TrainingConfig for fine-tuning: fewer epochs, learning rate scaled down from the champion's
    (`finetune_lr_factor`; a champion that was itself fine-tuned keeps its rate).

    Starts from what a first model would get (`bootstrap_config`: the training defaults with this
    run's gate), then takes the champion's batch size, training options (sink dropout, token dropout,
    language balance, ...; `TRAINING_OPTIONS`, where it recorded them) and seed (+1). Options that
    shape the network (the GNN's readout, the transformer's input) come from the champion's own
    config.json in the fine-tune job whatever is passed here.
    """
    base = bootstrap_config(config, champion["model_type"])
    hps = champion.get("hyperparameters") or {}
    mt = champion["model_type"]
    per_model = dict(base.per_model)
    lr = config.finetune_learning_rate or float(hps.get("learning-rate", per_model[mt].learning_rate))
    # A fine-tuned champion recorded a fine-tune's rate: it is kept, so that monthly fine-tunes do
    # not shrink it by the factor each time. (Fine-tunes registered before recording only
    # `fine_tuned_from`, and the default rate is scaled.)
    if not config.finetune_learning_rate and not ("fine_tuned_from" in hps and "learning-rate" in hps):
        lr *= config.finetune_lr_factor
    options = recorded_options(per_model[mt].options, hps)
    per_model[mt] = replace(per_model[mt], epochs=config.finetune_epochs, learning_rate=lr,
                            batch_size=int(hps.get("batch-size", per_model[mt].batch_size)), options=options)
    return replace(base, per_model=per_model, seed=int(hps.get("seed", base.seed)) + 1)


def build_retrain_job(run: RunContext, plan: RetrainPlan, model_type: str, source: SourcePackage) -> dict:
    """The CreateTrainingJob request of the retraining plan: a fine-tune from the champion's
    verified weights, or (bootstrap) the job a training run would start, on the plan's data."""
    from streamguard.pipeline.job_specs import build_training_job

    cfg = plan.training_config
    if plan.mode == "bootstrap":
        return build_training_job(run, cfg, model_type, plan.data, source, name_suffix="-boot")
    # The entry checks the model channel's archive against the registry's sha256 before loading it.
    return build_training_job(
        run, cfg, model_type, plan.data, source,
        extra_hyperparameters={"fine-tune": True, "model-sha256": plan.model_sha256},
        model_channel_uri=plan.model_channel_uri, name_suffix="-ft")
