"""The five portable rules on real training runs: quiet on a healthy run, firing on broken ones."""
from __future__ import annotations

import json

import pytest
import torch
from debug_loop import load_split, mlp, relu_input_records, saved_records, train
from smdebug.core.modes import ModeKeys
from smdebug.trials import create_trial
from torch import nn

from training.debug_hook import HOOK_CONFIG_ENV
from training.debugger_collections import DEFAULT_SAVE_INTERVAL, collection_configurations
from training.metrics import RULE_NAMES, metric_definitions, parse_metrics, rule_metric_name
from training.portable_rules import ERROR, NO_VERDICT, evaluate_rules
from training.rules import RULE_DEFAULTS


@pytest.fixture(scope="module")
def data(demo_splits):
    return load_split(demo_splits / "train"), load_split(demo_splits / "valid")


@pytest.fixture(scope="module")
def healthy(data, tmp_path_factory):
    return train(data, tmp_path_factory.mktemp("healthy"), epochs=3)


def _zero_init(model):
    for p in model.parameters():
        nn.init.zeros_(p)


def test_healthy_run_saves_train_and_eval_losses(healthy):
    trial = create_trial(str(healthy.out / "tensors"))
    losses = trial.tensor_names(collection="losses")
    assert losses == ["CrossEntropyLoss_output_0"]
    loss = trial.tensor(losses[0])
    assert len(loss.steps(mode=ModeKeys.TRAIN)) == healthy.train_steps
    assert len(loss.steps(mode=ModeKeys.EVAL)) == 2 * len(healthy.history)  # 32 valid images, batches of 16


def test_healthy_run_gets_a_clean_verdict_from_every_rule(healthy):
    assert {r["rule"]: r["status"] for r in healthy.report["rules"]} == {n: "NoIssuesFound" for n in RULE_NAMES}
    assert healthy.verdicts == {n: 0 for n in RULE_NAMES}
    assert healthy.report["all_passed"] is True


def test_rule_lines_match_the_metric_definitions(healthy):
    found = parse_metrics(healthy.stdout, metric_definitions())
    assert {name: found[rule_metric_name(name)] for name in RULE_NAMES} == {n: [0.0] for n in RULE_NAMES}


@pytest.mark.parametrize("saved", ["variance", None])
def test_zero_initialisation_fires_vanishing_gradient_and_poor_weight_initialization(data, tmp_path, monkeypatch,
                                                                                     saved):
    if saved is None:  # a managed hook config (SageMaker's, in a portable-mode job) saves ReLU inputs raw
        config = tmp_path / "debughookconfig.json"
        config.write_text(json.dumps({"LocalPath": str(tmp_path / "tensors"),
                                      "CollectionConfigurations": collection_configurations(managed=True)}))
        monkeypatch.setenv(HOOK_CONFIG_ENV, str(config))
    run = train(data, tmp_path, epochs=1, init=_zero_init)
    assert {reduction for reduction, _ in relu_input_records(run.out / "tensors")} == {saved}
    assert run.verdicts["VanishingGradient"] == 1
    assert run.verdicts["PoorWeightInitialization"] == 1
    poor = next(r for r in run.report["rules"] if r["rule"] == "PoorWeightInitialization")
    assert poor["evidence"]["check"] == "activation_input_variance_ratio" and poor["evidence"]["lowest_variance"] == 0
    vanishing = next(r for r in run.report["rules"] if r["rule"] == "VanishingGradient")
    assert vanishing["evidence"]["mean_abs"] == 0.0 and vanishing["mode"] == "TRAIN"
    assert "rule_VanishingGradient=1" in run.stdout


def test_deep_sigmoid_stack_with_tiny_weights_fires_vanishing_gradient(data, tmp_path):
    def tiny(model):
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
    run = train(data, tmp_path, epochs=1, model=mlp(depth=6, act=nn.Sigmoid), init=tiny)
    assert run.verdicts["VanishingGradient"] == 1
    assert run.report["rules"][0]["evidence"]["tensor"].startswith("gradient/Sequential_block1")


def test_validation_on_shuffled_labels_fires_overfit(data, tmp_path):
    run = train(data, tmp_path, epochs=5, shuffle_valid=True)
    overfit = next(r for r in run.report["rules"] if r["rule"] == "Overfit")
    assert overfit["status"] == "IssuesFound" and overfit["mode"] == "EVAL"
    assert overfit["evidence"]["ratio"] > 0.1


def test_many_epochs_on_tiny_data_fire_overtraining(data, tmp_path):
    run = train(data, tmp_path, epochs=30, n_train=16, batch=16, lr=0.1)
    assert run.verdicts["Overtraining"] == 1
    evidence = next(r for r in run.report["rules"] if r["rule"] == "Overtraining")["evidence"]
    assert evidence["valid_steps_without_improvement"] >= 10 and evidence["train_steps_without_improvement"] >= 5


def test_frozen_loss_fires_loss_not_decreasing(data, tmp_path):
    run = train(data, tmp_path, epochs=6, lr=0.0)
    rule = next(r for r in run.report["rules"] if r["rule"] == "LossNotDecreasing")
    assert rule["status"] == "IssuesFound"
    assert rule["evidence"]["loss"] == rule["evidence"]["loss_before"]


def test_exploding_learning_rate_kills_the_relus_and_fires_vanishing_gradient(data, tmp_path):
    run = train(data, tmp_path, epochs=1, lr=1e4)
    assert run.history[0]["train_loss"] > 100
    assert run.verdicts["VanishingGradient"] == 1


def test_rule_with_too_few_steps_has_no_verdict_and_prints_no_line(healthy):
    results = evaluate_rules(healthy.out / "tensors", {"LossNotDecreasing": {"num_steps": 1000}})
    rule = next(r for r in results if r.rule == "LossNotDecreasing")
    assert rule.status == NO_VERDICT and rule.verdict is None and rule.evidence["reason"]


def test_rule_that_fails_is_an_error_never_a_pass(healthy):
    results = evaluate_rules(healthy.out / "tensors", {"LossNotDecreasing": {"mode": "NOSUCHMODE"}})
    rule = next(r for r in results if r.rule == "LossNotDecreasing")
    assert rule.status == ERROR and rule.verdict is None and "NOSUCHMODE" in rule.evidence["error"]


def test_no_verdict_rules_print_no_metric_line_and_fail_the_report(data, tmp_path):
    run = train(data, tmp_path, epochs=1, rule_params={"LossNotDecreasing": {"num_steps": 1000}})
    assert "LossNotDecreasing" not in run.verdicts
    assert rule_metric_name("LossNotDecreasing") not in parse_metrics(run.stdout, metric_definitions())
    assert "LossNotDecreasing has no verdict" in run.stdout
    assert run.report["all_passed"] is False


def test_model_evaluated_after_finish_adds_nothing_to_the_trial(data, tmp_path):
    model = mlp()
    run = train(data, tmp_path, epochs=1, model=model)
    before = sorted(p.name for p in (run.out / "tensors").rglob("*") if p.is_file())
    with torch.no_grad():
        nn.CrossEntropyLoss()(model(data[1][0]), data[1][1])
    model(data[1][0])
    assert sorted(p.name for p in (run.out / "tensors").rglob("*") if p.is_file()) == before


def _saved(run, collection: str) -> tuple[dict[str, list[int]], int]:
    """{mode: saved mode steps} of the collection, and the bytes its tensors and their reductions
    take in the event files."""
    trial = create_trial(str(run.out / "tensors"))
    names = trial.tensor_names(collection=collection)
    steps = {m.name: trial.tensor(names[0]).steps(mode=m) for m in (ModeKeys.TRAIN, ModeKeys.EVAL)}
    size = sum(length for name, _, length in saved_records(run.out / "tensors") if name in names)
    return steps, size


@pytest.fixture(scope="module")
def default_settings(data, tmp_path_factory):
    """Two runs at the default save interval, one three times as long as the other."""
    return [train(data, tmp_path_factory.mktemp(f"defaults{epochs}"), epochs=epochs,
                  save_interval=DEFAULT_SAVE_INTERVAL) for epochs in (2, 6)]


def test_default_save_settings_give_every_rule_a_verdict(default_settings):
    for run in default_settings:
        assert all(r["verdict"] is not None for r in run.report["rules"]), run.report["rules"]


def test_relu_inputs_are_saved_only_in_the_first_train_steps_poor_weight_initialization_reads(default_settings):
    window = RULE_DEFAULTS["PoorWeightInitialization"]["steps"]
    for run in default_settings:
        assert _saved(run, "relu_input")[0] == {"TRAIN": list(range(window)), "EVAL": []}


def test_relu_inputs_are_saved_as_variances_of_a_few_bytes_whatever_the_batch_size(default_settings, data, tmp_path):
    """Raw ReLU inputs grow with batch and image size: 1.2 GB a step for ResNet-50 at 224 px, batch 32."""
    quarter_batch = train(data, tmp_path, epochs=1, batch=8, save_interval=DEFAULT_SAVE_INTERVAL)
    for run in (default_settings[0], quarter_batch):
        assert {reduction for reduction, _ in relu_input_records(run.out / "tensors")} == {"variance"}
        assert max(length for _, length in relu_input_records(run.out / "tensors")) < 256
    assert _saved(quarter_batch, "relu_input") == _saved(default_settings[0], "relu_input")


def test_a_longer_run_saves_no_more_relu_inputs_gradients_or_weights(default_settings):
    short, long = default_settings
    assert long.train_steps == 3 * short.train_steps
    for collection in ("relu_input", "gradients", "weights"):
        assert _saved(long, collection) == _saved(short, collection), collection
    assert _saved(short, "gradients")[0] == {"TRAIN": [0], "EVAL": []}
