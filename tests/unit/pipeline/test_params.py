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
    from streamguard.pipeline.params import RETRAINING_PARAMS, resolve_retraining_config

    assert "null" in TRAINING_PARAMS["data_uri"][1]["type"]
    assert "null" in RETRAINING_PARAMS["feedback_uri"][1]["type"]
    assert resolve_training_config({"data_uri": None}).data_uri == ""
    assert resolve_retraining_config({"feedback_uri": None}).feedback_uri == ""


@pytest.mark.parametrize("name", ["gnn_learning_rate", "transformer_learning_rate", "val_ratio", "test_ratio",
                                  "decision_threshold", "gnn_min_val_accuracy", "max_fpr"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "-inf"])
def test_nan_and_infinity_are_refused_naming_the_parameter(name, value):
    with pytest.raises(ParamError, match=f"'{name}': expected a finite number"):
        resolve_training_config({name: value})


@pytest.mark.parametrize("name", ["accuracy_drop", "finetune_lr_factor", "alpha", "min_gain", "max_fpr"])
def test_nan_is_refused_by_the_retraining_params(name):
    from streamguard.pipeline.params import resolve_retraining_config

    with pytest.raises(ParamError, match=f"'{name}': expected a finite number"):
        resolve_retraining_config({name: float("nan")})


def test_a_seed_no_library_can_take_is_refused():
    from streamguard.pipeline.params import MAX_SEED

    assert resolve_training_config({"seed": MAX_SEED}).seed == MAX_SEED
    with pytest.raises(ParamError, match="'seed': 1000000000000000000000000000000 is above the maximum"):
        resolve_training_config({"seed": 10**30})


@pytest.fixture
def no_deployment_gate(monkeypatch):
    monkeypatch.delenv("STREAMGUARD_GATE_THRESHOLDS", raising=False)


@pytest.mark.parametrize("params", [{"gnn_min_val_accuracy": 0}, {"transformer_min_val_accuracy": 0.5},
                                    {"max_fpr": 1}, {"max_fpr": 0.031}])
def test_the_trigger_form_cannot_loosen_the_gate(params, no_deployment_gate):
    from streamguard.pipeline.params import resolve_retraining_config

    (name, value), = params.items()
    for resolve in (resolve_training_config, resolve_retraining_config):
        with pytest.raises(ParamError) as err:
            resolve(params)
        assert f"param {name!r}: {value}" in str(err.value)
        assert "may only tighten" in str(err.value) and "STREAMGUARD_GATE_THRESHOLDS" in str(err.value)


def test_the_trigger_form_tightens_the_gate_and_the_sources_say_so(no_deployment_gate):
    cfg = resolve_training_config({"gnn_min_val_accuracy": 0.97, "max_fpr": 0.01})
    assert cfg.gate_overrides["gnn"]["min_val_accuracy"] == 0.97
    assert cfg.gate_overrides["gnn"]["max_fpr"] == 0.01 == cfg.gate_overrides["transformer"]["max_fpr"]
    assert cfg.gate_overrides["transformer"]["min_val_accuracy"] == 0.88
    assert cfg.gate_sources["gnn"]["min_val_accuracy"] == "trigger param 'gnn_min_val_accuracy'"
    assert cfg.gate_sources["transformer"]["min_val_accuracy"] == "default"
    # Empty form fields (null) mean "the deployment's threshold".
    assert resolve_training_config({"max_fpr": None, "gnn_min_val_accuracy": ""}).gate_overrides["gnn"]["max_fpr"] == 0.03


def test_the_deployment_setting_loosens_the_gate(monkeypatch):
    monkeypatch.setenv("STREAMGUARD_GATE_THRESHOLDS", '{"gnn": {"min_val_accuracy": 0.5}}')
    cfg = resolve_training_config({})
    assert cfg.gate_overrides["gnn"]["min_val_accuracy"] == 0.5
    assert cfg.gate_sources["gnn"]["min_val_accuracy"] == "env STREAMGUARD_GATE_THRESHOLDS"
    assert resolve_training_config({"gnn_min_val_accuracy": 0.6}).gate_overrides["gnn"]["min_val_accuracy"] == 0.6
    with pytest.raises(ParamError, match="'gnn_min_val_accuracy': 0.4 is below the deployment's gnn gate"):
        resolve_training_config({"gnn_min_val_accuracy": 0.4})
    monkeypatch.setenv("STREAMGUARD_GATE_THRESHOLDS", '{"cnn": {}}')
    with pytest.raises(ParamError, match="env STREAMGUARD_GATE_THRESHOLDS: expected an object keyed by model type"):
        resolve_training_config({})
    monkeypatch.setenv("STREAMGUARD_GATE_THRESHOLDS", "{not json")
    with pytest.raises(ParamError, match="env STREAMGUARD_GATE_THRESHOLDS: not valid JSON"):
        resolve_training_config({})


def test_the_form_is_grouped_into_sections_with_units_and_ranges():
    from streamguard.pipeline.params import RETRAINING_PARAMS, TRAINING_PARAMS, form_params

    fields = form_params(TRAINING_PARAMS)
    sections = [kw["section"] for _default, kw in fields.values()]
    assert list(dict.fromkeys(sections)) == ["Data", "Models", "Taint-Flow GNN", "SQL Intent Transformer",
                                             "Metric gate", "SageMaker"]
    assert fields["models"][1]["examples"] == ["gnn", "transformer"]  # rendered as a multi-select
    assert "Range: [0.05, 0.45]" in fields["val_ratio"][1]["description"]
    assert "Range: (0, 1]" in fields["gnn_learning_rate"][1]["description"]
    assert "(minutes)" in fields["max_runtime_minutes"][1]["description"]
    assert all(kw.get("section") for _d, kw in form_params(RETRAINING_PARAMS).values())


def test_multi_instance_training_on_cpu_instance_types_is_refused():
    """SageMaker's torch_distributed (torchrun across instances) is for GPU/Trainium instance types."""
    from streamguard.pipeline.params import ParamError, resolve_training_config

    with pytest.raises(ParamError, match="multi-instance .* needs a GPU instance type"):
        resolve_training_config({"instance_count": 2, "instance_type": "ml.m5.xlarge"})
    assert resolve_training_config({"instance_count": 2, "instance_type": "ml.g5.12xlarge"}).instance_count == 2
    assert resolve_training_config({"instance_count": 1, "instance_type": "ml.c5.xlarge"}).instance_count == 1
