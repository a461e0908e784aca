"""Rule parameters: AWS's documented defaults, overridable, and the same values for managed mode."""
from __future__ import annotations

import pytest

from training.debugger_collections import collection_configurations
from training.rules import RULE_DEFAULTS, managed_rule_parameters, rule_parameters
from training.instrumentation import Instrumentation
from training.metrics import RULE_NAMES


def test_every_rule_has_the_documented_default_parameters():
    # https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html
    assert RULE_DEFAULTS["VanishingGradient"]["threshold"] == 1e-7
    assert RULE_DEFAULTS["Overfit"] == {"tensor_regex": None, "start_step": 0, "patience": 1, "ratio_threshold": 0.1}
    assert RULE_DEFAULTS["Overtraining"] == {"patience_train": 5, "patience_validation": 10, "delta": 0.1}
    assert RULE_DEFAULTS["PoorWeightInitialization"] == {
        "activation_inputs_regex": ".*relu_input", "threshold": 10.0, "distribution_range": 0.001,
        "patience": 5, "steps": 10}
    assert RULE_DEFAULTS["LossNotDecreasing"]["num_steps"] == 10
    assert set(RULE_DEFAULTS) == set(RULE_NAMES)


def test_overrides_given_as_strings_take_the_default_type():
    params = rule_parameters("Overtraining", {"patience_train": "7", "delta": "0.5"})
    assert params == {"patience_train": 7, "patience_validation": 10, "delta": 0.5}
    assert rule_parameters("LossNotDecreasing", {"use_losses_collection": "False"})["use_losses_collection"] is False


@pytest.mark.parametrize("rule, overrides, message", [
    ("Overfit", {"paitence": 2}, "has no parameter 'paitence'"),
    ("Overfit", {"patience": "two"}, "patience='two' is not a valid int"),
    ("Underfit", {}, "unknown rule 'Underfit'"),
])
def test_bad_rule_parameters_are_refused_with_the_name(rule, overrides, message):
    with pytest.raises(ValueError, match=message):
        rule_parameters(rule, overrides)


def test_instrumentation_refuses_bad_rule_parameters_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown rules in rule parameters: \\['Overfitt'\\]"):
        Instrumentation("portable", tmp_path, trial_dir=tmp_path / "tensors", rule_params={"Overfitt": {}})


def test_managed_rule_parameters_are_strings_naming_the_rule_to_invoke():
    params = managed_rule_parameters("Overfit", {"patience": 3})
    assert params == {"rule_to_invoke": "Overfit", "start_step": "0", "patience": "3", "ratio_threshold": "0.1"}


def test_collections_save_losses_every_step_relu_input_variances_in_the_first_train_steps_and_the_rest_at_the_interval():
    configs = {c["CollectionName"]: c["CollectionParameters"] for c in collection_configurations(25)}
    assert configs == {
        "losses": {"include_regex": ".*CrossEntropyLoss_output.*", "save_interval": "1"},
        "gradients": {"save_interval": "25"},
        "weights": {"save_interval": "25", "eval.end_step": "0"},
        "relu_input": {"include_regex": ".*relu_input", "save_interval": "1", "end_step": "0",
                       "train.end_step": "10", "reductions": "variance"},
    }


def test_managed_collections_save_relu_inputs_raw_for_aws_rule_container():
    configs = {c["CollectionName"]: c["CollectionParameters"] for c in collection_configurations(25, managed=True)}
    portable = {c["CollectionName"]: c["CollectionParameters"] for c in collection_configurations(25)}
    assert configs == {**portable, "relu_input": {k: v for k, v in portable["relu_input"].items() if k != "reductions"}}


@pytest.mark.parametrize("managed", [False, True])
def test_relu_inputs_follow_an_overridden_poor_weight_initialization_window(managed):
    configs = collection_configurations(rule_params={"PoorWeightInitialization": {"steps": 3}}, managed=managed)
    relu = next(c["CollectionParameters"] for c in configs if c["CollectionName"] == "relu_input")
    assert relu["train.end_step"] == "3"


def test_the_thresholds_module_loads_neither_smdebug_nor_numpy():
    """infra/ reads the thresholds at synth time, and the trainer checks --rule-params with them
    before any data is read: only the portable rules need smdebug."""
    import subprocess
    import sys

    script = ("import sys, training.rules, training.debugger_collections\n"
              "print(sorted(m for m in ('smdebug', 'numpy', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=__import__("pathlib").Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
