"""A tuning request's search, in Optuna's terms: ranges, strategy and early stopping.

Reads `ParameterRanges`, `Strategy`, `StrategyConfig` and `TrainingJobEarlyStoppingType` from a
CreateHyperParameterTuningJob request, so the local tuner searches exactly what SageMaker would.
Scaling types follow the API reference (HyperParameterTuning, "Define Hyperparameter Ranges"):
Logarithmic samples log-uniformly, ReverseLogarithmic samples 1 - x log-uniformly (for values close
to 1, range within [0, 1)), Linear and Auto uniformly (SageMaker's Auto picks a scale itself; we keep
it linear so that the request, not a heuristic, decides).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from imgclf.errors import UserError

#: Completed trials needed before the median rule may stop a trial. SageMaker documents no
#: minimum; two keeps one unlucky first trial from stopping all the others.
MEDIAN_RULE_MIN_TRIALS = 2
_REVERSE = "ReverseLogarithmic"


@dataclass(frozen=True)
class Parameter:
    """One tuned hyperparameter: how Optuna samples it and how the value reaches the trainer."""

    name: str
    distribution: BaseDistribution
    kind: str  # Continuous | Integer | Categorical
    scaling: str = "Linear"

    def to_hyperparameter(self, sampled) -> str:
        """The string SageMaker passes to the trainer."""
        if self.kind == "Continuous":
            return repr(1.0 - sampled if self.scaling == _REVERSE else float(sampled))
        if self.kind == "Integer":
            return str(int(sampled))
        return str(sampled)


def parameters(request: dict) -> list[Parameter]:
    """Every range of the request's ParameterRanges, in order."""
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    found: list[Parameter] = []
    for r in ranges.get("ContinuousParameterRanges", []):
        low, high, scaling = float(r["MinValue"]), float(r["MaxValue"]), r.get("ScalingType", "Auto")
        if scaling == _REVERSE:
            if not 0 <= low < high < 1:
                raise UserError(f"{r['Name']}: ReverseLogarithmic needs 0 <= MinValue < MaxValue < 1")
            dist = FloatDistribution(1.0 - high, 1.0 - low, log=True)
        else:
            dist = FloatDistribution(low, high, log=scaling == "Logarithmic")
        found.append(Parameter(r["Name"], dist, "Continuous", scaling))
    for r in ranges.get("IntegerParameterRanges", []):
        scaling = r.get("ScalingType", "Auto")
        dist = IntDistribution(int(r["MinValue"]), int(r["MaxValue"]), log=scaling == "Logarithmic")
        found.append(Parameter(r["Name"], dist, "Integer", scaling))
    for r in ranges.get("CategoricalParameterRanges", []):
        found.append(Parameter(r["Name"], CategoricalDistribution(tuple(r["Values"])), "Categorical"))
    if not found:
        raise UserError("the tuning request has no ParameterRanges")
    return found


def sampler(request: dict, params: list[Parameter], seed: int | None) -> optuna.samplers.BaseSampler:
    """Bayesian -> TPE, Random and Hyperband -> random sampling, Grid -> every combination."""
    strategy = request["HyperParameterTuningJobConfig"]["Strategy"]
    if strategy == "Bayesian":
        return optuna.samplers.TPESampler(seed=seed)
    if strategy in ("Random", "Hyperband"):
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "Grid":
        not_categorical = [p.name for p in params if p.kind != "Categorical"]
        if not_categorical:
            raise UserError(f"Grid search takes categorical ranges only; {', '.join(not_categorical)} are not")
        return optuna.samplers.GridSampler({p.name: list(p.distribution.choices) for p in params}, seed=seed)
    raise UserError(f"unknown tuning strategy {strategy!r}")


def grid_size(params: list[Parameter]) -> int:
    size = 1
    for p in params:
        size *= len(p.distribution.choices)
    return size


def pruner(request: dict) -> optuna.pruners.BasePruner:
    """Early stopping: Hyperband's own schedule, the median rule for `Auto`, else none."""
    config = request["HyperParameterTuningJobConfig"]
    if config["Strategy"] == "Hyperband":
        hb = config.get("StrategyConfig", {}).get("HyperbandStrategyConfig", {})
        return optuna.pruners.HyperbandPruner(min_resource=hb.get("MinResource", 1), max_resource=hb.get("MaxResource", "auto"))
    if config.get("TrainingJobEarlyStoppingType", "Off") == "Auto":
        return MedianRunningAverageRule()
    return optuna.pruners.NopPruner()


class MedianRunningAverageRule(optuna.pruners.BasePruner):
    """SageMaker's documented early-stopping rule ("Stop Training Jobs Early"): stop a trial when
    its objective at this epoch is worse than the median of the running averages of the
    objective of earlier completed trials up to the same epoch."""

    def __init__(self, min_trials: int = MEDIAN_RULE_MIN_TRIALS) -> None:
        self.min_trials = min_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        averages = [
            _running_average(t, step)
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if any(s <= step for s in t.intermediate_values)
        ]
        if len(averages) < self.min_trials:
            return False
        current, median = trial.intermediate_values[step], statistics.median(averages)
        if study.direction == optuna.study.StudyDirection.MINIMIZE:
            return current > median
        return current < median


def _running_average(trial: FrozenTrial, step: int) -> float:
    values = [v for s, v in trial.intermediate_values.items() if s <= step]
    return sum(values) / len(values)
