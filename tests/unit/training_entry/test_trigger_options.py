"""The training DAG's form options reach the entry as the flags it parses (`TRAINING_OPTIONS`).

The form (`streamguard.pipeline.params`) and the entry (`training_entry/cli_args.py`) are written apart;
these tests hold them together: the same defaults, the same choices, and a value set in the form
arrives in the entry's arguments after the request's encoding and the real SageMaker training
toolkit's decoding (`sagemaker_training.environment.read_hyperparameters`, `mapping.to_cmd_args`).
"""

from __future__ import annotations

import json

import pytest

from streamguard.core.model_types import (SELECTION_METRIC_CHOICES, TEXT_INPUT_CHOICES, TRAINING_OPTIONS,
                                          WEIGHT_AVERAGING_CHOICES)
from streamguard.jobs.request import build_training_request
from streamguard.pipeline.job_specs import training_hyperparameters
from streamguard.pipeline.params import TRAINING_PARAMS, ParamError, TrainingConfig, resolve_training_config
from tests.support.entry_data import ENTRY_DIR  # noqa: F401  (puts training_entry/ on sys.path)

import cli_args  # noqa: E402
import text_inputs  # noqa: E402
import train_state  # noqa: E402
import weight_averaging  # noqa: E402


def _dest(flag: str) -> str:
    return flag.replace("-", "_")


@pytest.mark.parametrize("model_type", sorted(TRAINING_OPTIONS))
def test_the_form_defaults_are_the_entry_defaults(model_type):
    defaults = cli_args.build_parser().parse_args(["--model-type", model_type])
    for name, (flag, default) in TRAINING_OPTIONS[model_type].items():
        assert getattr(defaults, _dest(flag)) == default, flag
        assert TRAINING_PARAMS[f"{model_type}_{name}"][0] == default, name


def test_the_form_choices_are_the_entry_choices():
    assert SELECTION_METRIC_CHOICES == train_state.SELECTION_METRICS
    assert TEXT_INPUT_CHOICES == text_inputs.TEXT_INPUTS
    assert WEIGHT_AVERAGING_CHOICES == weight_averaging.WEIGHT_AVERAGING
    assert TRAINING_PARAMS["gnn_selection_metric"][1]["enum"] == list(train_state.SELECTION_METRICS)
    assert TRAINING_PARAMS["transformer_text_input"][1]["enum"] == list(text_inputs.TEXT_INPUTS)


CHANGED = {
    "gnn": {"gnn_sink_dropout": 0.1, "gnn_source_dropout": 0.2, "gnn_input_readout": False, "gnn_kind_roles": True,
            "gnn_language_balance": 0.5, "gnn_selection_metric": "youden", "gnn_weight_averaging": "ema"},
    "transformer": {"transformer_text_input": "gadget", "transformer_token_dropout": 0.0,
                    "transformer_max_length": 128, "transformer_language_balance": 1.0,
                    "transformer_selection_metric": "accuracy", "transformer_weight_averaging": "ema"},
}


@pytest.mark.parametrize("model_type", sorted(CHANGED))
def test_a_form_value_arrives_in_the_entry_through_the_toolkit(model_type, tmp_path, monkeypatch):
    from sagemaker_training import environment, mapping

    params = CHANGED[model_type]
    assert all(TRAINING_PARAMS[k][0] != v for k, v in params.items()), "each value must differ from the default"
    cfg = resolve_training_config({"models": [model_type], **params})
    request = build_training_request(
        job_name=f"sg-{model_type}-options", model_type=model_type,
        channels={"train": (tmp_path / "train").as_uri()}, output_uri=(tmp_path / "out").as_uri(),
        source_dir_uri=(tmp_path / "sourcedir.tar.gz").as_uri(),
        hyperparameters=training_hyperparameters(cfg, model_type), role_arn="", region="local")
    # What the service writes into the container, read back by the toolkit as in the image.
    hps_file = tmp_path / "hyperparameters.json"
    hps_file.write_text(json.dumps(request["HyperParameters"]))
    monkeypatch.setattr(environment, "hyperparameters_file_dir", str(hps_file))
    user = {k: v for k, v in environment.read_hyperparameters().items() if not k.startswith("sagemaker_")}
    args = cli_args.parse_args(mapping.to_cmd_args(user))
    for name, value in params.items():
        flag, _default = TRAINING_OPTIONS[model_type][name[len(model_type) + 1:]]
        assert getattr(args, _dest(flag)) == value, flag


def test_options_round_trip_and_old_configs_still_read():
    cfg = resolve_training_config({"gnn_sink_dropout": "0.2", "gnn_kind_roles": "true"})
    assert cfg.per_model["gnn"].options["sink-dropout"] == 0.2
    assert cfg.per_model["gnn"].options["kind-roles"] is True
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg
    # A config serialised before the options existed (an XCom of an earlier run) still reads.
    old = cfg.to_dict()
    for m in old["per_model"].values():
        del m["options"]
    assert TrainingConfig.from_dict(old).per_model["gnn"].options == {}


@pytest.mark.parametrize("params, fragment", [
    ({"gnn_selection_metric": "auc"}, "'gnn_selection_metric': 'auc' is not one of f1, accuracy, youden"),
    ({"transformer_text_input": "ast"}, "'transformer_text_input': 'ast' is not one of"),
    ({"gnn_sink_dropout": 1.5}, "'gnn_sink_dropout': 1.5 is above the maximum 1"),
    ({"transformer_max_length": 4}, "'transformer_max_length': 4 is below the minimum 8"),
    ({"gnn_kind_roles": "maybe"}, "'gnn_kind_roles': expected true or false"),
    ({"transformer_language_balance": 1, "instance_type": "ml.g5.12xlarge", "instance_count": 2},
     "'transformer_language_balance': language balance is not available with instance_count 2"),
])
def test_bad_option_values_name_the_param(params, fragment):
    with pytest.raises(ParamError) as err:
        resolve_training_config(params)
    assert fragment in str(err.value)
