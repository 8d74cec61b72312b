"""Trigger-form parameter validation."""

from __future__ import annotations

import pytest

from streamguard.pipeline.params import ParamError, TrainingConfig, resolve_training_config


def test_defaults_resolve_and_round_trip():
    cfg = resolve_training_config({})
    assert cfg.models == ("gnn", "transformer")
    assert cfg.gate_overrides["gnn"]["min_val_accuracy"] == 0.92
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg


def test_overrides_are_applied_and_coerced():
    cfg = resolve_training_config({"models": "transformer", "transformer_epochs": "3", "use_spot": "true",
                                   "max_fpr": 0.02})
    assert cfg.models == ("transformer",)
    assert cfg.per_model["transformer"].epochs == 3
    assert cfg.use_spot is True
    assert cfg.gate_overrides["transformer"]["max_fpr"] == 0.02


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"gnn_epochs": 0}, "'gnn_epochs': 0 is below the minimum 1"),
        ({"gnn_epochs": "many"}, "'gnn_epochs': expected an integer"),
        ({"models": ["gnn", "cnn"]}, "'cnn' is not one of gnn, transformer"),
        ({"models": []}, "choose at least 1"),
        ({"gnn_learning_rate": 0}, "must be greater than 0"),
        ({"instance_type": "m5.large"}, "does not match"),
        ({"use_spot": "perhaps"}, "expected true or false"),
        ({"epochs": 3}, "unknown param(s) 'epochs'"),
    ],
)
def test_bad_params_name_the_parameter(params, fragment):
    with pytest.raises(ParamError) as err:
        resolve_training_config(params)
    assert fragment in str(err.value)


def test_empty_uri_params_are_optional_in_the_trigger_form():
    # Airflow's form treats a plain "string" param as required; null must be accepted and mean "empty".
    from streamguard.pipeline.params import TRAINING_PARAMS
    from streamguard.pipeline.retraining import RETRAINING_PARAMS, resolve_retraining_config

    assert "null" in TRAINING_PARAMS["data_uri"][1]["type"]
    assert "null" in RETRAINING_PARAMS["feedback_uri"][1]["type"]
    assert resolve_training_config({"data_uri": None}).data_uri == ""
    assert resolve_retraining_config({"feedback_uri": None})["feedback_uri"] == ""
