"""The script-mode contract of train.py's command line: what SageMaker passes, and bad values."""
from __future__ import annotations

from pathlib import Path

import pytest

from training.train import cli, parse_args

PATHS = ["--train", "t", "--valid", "v", "--model-dir", "/job/model"]


def test_sagemaker_and_underscore_arguments_are_ignored_with_their_values():
    args = parse_args([*PATHS, "--_tuning_objective_metric", "valid_loss", "--sagemaker_program",
                       "training/train.py", "--sagemaker_region=eu-west-1", "--epochs", "3"])
    assert args.epochs == 3


def test_an_unknown_argument_is_a_clear_one_line_error(capsys):
    assert cli([*PATHS, "--learning-rate", "0.1"]) == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --learning-rate 0.1\n"


def test_categorical_hyperparameters_arrive_as_strings_and_are_converted():
    args = parse_args([*PATHS, "--batch-size", "64", "--image-size", "64.0", "--lr", "1e-3", "--amp", "off"])
    assert (args.batch_size, args.image_size, args.lr, args.amp) == (64, 64, 0.001, "off")


@pytest.mark.parametrize(
    "flag, value",
    [("--lr", "-0.1"), ("--lr", "fast"), ("--batch-size", "0"), ("--batch-size", "3.5"), ("--epochs", "nan"),
     ("--image-size", "8"), ("--amp", "maybe"), ("--unfreeze", "layer2"), ("--arch", "vgg16"),
     ("--debugger", "loud"), ("--num-workers", "-1"), ("--rule-params", "[1, 2]"), ("--rule-params", "{oops")],
)
def test_a_bad_hyperparameter_value_is_a_clear_one_line_error_naming_the_flag(capsys, flag, value):
    assert cli([*PATHS, flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: argument {flag}: ") and value in err and err.count("\n") == 1


def test_paths_default_to_the_sagemaker_environment(monkeypatch):
    for name, value in {"SM_CHANNEL_TRAIN": "/opt/ml/input/data/train", "SM_CHANNEL_VALID": "/v",
                        "SM_CHANNEL_TEST": "/t", "SM_MODEL_DIR": "/opt/ml/model",
                        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data"}.items():
        monkeypatch.setenv(name, value)
    args = parse_args([])
    assert (args.train, args.valid, args.test, args.model_dir, args.output_data_dir, args.checkpoint_dir) == \
        ("/opt/ml/input/data/train", "/v", "/t", "/opt/ml/model", "/opt/ml/output/data", "/opt/ml/checkpoints")


def test_flags_override_the_sagemaker_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    args = parse_args(["--model-dir", str(tmp_path / "model"), "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert (args.model_dir, args.checkpoint_dir) == (str(tmp_path / "model"), str(tmp_path / "ckpt"))


def test_outside_sagemaker_reports_and_checkpoints_sit_beside_the_model_dir_as_in_opt_ml(monkeypatch, tmp_path):
    monkeypatch.delenv("SM_OUTPUT_DATA_DIR", raising=False)
    args = parse_args(["--model-dir", str(tmp_path / "job" / "model")])
    assert (args.output_data_dir, args.checkpoint_dir) == \
        (str(tmp_path / "job" / "output" / "data"), str(tmp_path / "job" / "checkpoints"))


def test_without_a_model_dir_the_error_names_the_variable_and_the_flag(monkeypatch, capsys):
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    assert cli(["--train", "t", "--valid", "v"]) == 2
    assert capsys.readouterr().err == "error: no model dir: set SM_MODEL_DIR or pass --model-dir\n"


def test_rule_parameter_overrides_arrive_as_one_json_hyperparameter():
    args = parse_args([*PATHS, "--rule-params", '{"Overfit": {"patience": "3"}}'])
    assert args.rule_params == {"Overfit": {"patience": "3"}}


@pytest.mark.parametrize(
    "value, message",
    [('{"Overfit": 3}', "rule Overfit: expected an object of parameters"),
     ('{"Overfit": {"patients": 3}}', "rule Overfit has no parameter 'patients'")],
)
def test_rule_parameters_are_checked_against_the_rules_before_training(capsys, value, message):
    assert cli([*PATHS, "--rule-params", value]) == 2
    assert capsys.readouterr().err.startswith(f"error: argument --rule-params: {message}")
