"""The tuning request's ranges, strategy and early stopping, as Optuna runs them."""
from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from imgclf.errors import UserError
from imgclf.local import search_space
from infra.config import load_config
from infra.sagemaker_requests import JobLocations, tuning_job_request

LOC = JobLocations("arn:aws:iam::000000000000:role/x", "/src.tar.gz", "/data", "/out", "us-east-1")


def _request(**tuning):
    return tuning_job_request(load_config({"tuning": tuning}), LOC, "tune-x")


def test_the_learning_rate_range_is_read_from_the_request_on_a_log_scale():
    lr = {p.name: p for p in search_space.parameters(_request(lr_min=0.002, lr_max=0.05))}["lr"]
    assert lr.distribution == FloatDistribution(0.002, 0.05, log=True)


def test_batch_sizes_are_the_requests_categorical_strings():
    batch = {p.name: p for p in search_space.parameters(_request(batch_sizes=[8, 24]))}["batch-size"]
    assert batch.distribution.choices == ("8", "24")
    assert batch.to_hyperparameter("24") == "24"


def test_the_local_tuner_searches_the_backbones_the_request_names():
    arch = {p.name: p for p in search_space.parameters(_request(archs=["resnet18", "convnext_tiny"]))}["arch"]
    assert (arch.kind, arch.distribution.choices) == ("Categorical", ("resnet18", "convnext_tiny"))
    assert arch.to_hyperparameter("convnext_tiny") == "convnext_tiny"


def test_a_reverse_logarithmic_range_samples_values_inside_it():
    request = _request()
    request["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"] = [
        {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"}
    ]
    (momentum,) = [p for p in search_space.parameters(request) if p.name == "momentum"]
    sampled = [momentum.to_hyperparameter(momentum.distribution.low), momentum.to_hyperparameter(momentum.distribution.high)]
    assert [float(v) for v in sampled] == pytest.approx([0.999, 0.9])


@pytest.mark.parametrize("strategy, sampler", [("Bayesian", optuna.samplers.TPESampler), ("Random", optuna.samplers.RandomSampler)])
def test_the_strategy_picks_the_sampler(strategy, sampler):
    request = _request(strategy=strategy)
    assert isinstance(search_space.sampler(request, search_space.parameters(request), 0), sampler)


def test_grid_search_refuses_continuous_ranges_as_sagemaker_does():
    request = _request()
    request["HyperParameterTuningJobConfig"]["Strategy"] = "Grid"
    with pytest.raises(UserError, match="Grid search takes categorical ranges only; lr"):
        search_space.sampler(request, search_space.parameters(request), 0)


def test_early_stopping_off_never_stops_a_trial():
    assert isinstance(search_space.pruner(_request(early_stopping="Off")), optuna.pruners.NopPruner)


def _study_with_completed(curves):
    study = optuna.create_study(direction="minimize")
    for curve in curves:
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=curve[-1], params={}, distributions={},
                                     intermediate_values=dict(enumerate(curve, start=1))))
    return study


def test_the_median_rule_stops_a_trial_worse_than_the_median_running_average():
    rule = search_space.pruner(_request(early_stopping="Auto"))
    study = _study_with_completed([[1.0, 0.8], [1.2, 1.0], [0.9, 0.7]])
    bad = create_trial(state=TrialState.RUNNING, params={}, distributions={}, intermediate_values={1: 1.5, 2: 1.4})
    good = create_trial(state=TrialState.RUNNING, params={}, distributions={}, intermediate_values={1: 0.9, 2: 0.6})
    assert rule.prune(study, bad) and not rule.prune(study, good)


def test_the_median_rule_waits_for_two_completed_trials():
    rule = search_space.pruner(_request(early_stopping="Auto"))
    worse = create_trial(state=TrialState.RUNNING, params={}, distributions={}, intermediate_values={1: 9.0})
    assert not rule.prune(_study_with_completed([[1.0]]), worse)
