"""Portable versions of five SageMaker Debugger built-in rules, run in-process on the saved trial.

Their thresholds and defaults are in training/rules.py, which managed mode reads too.

AWS's implementations ship only inside its rule-container images; smdebug on PyPI has the `Rule`
base class, `invoke_rule` and the trial API. So each rule here is a small `smdebug.rules.Rule`
subclass that follows the semantics and default parameters AWS documents
(https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html), and smdebug's
`invoke_rule` drives it over every global step of the trial. Where the documentation leaves a
detail open, the docstring says which reading we chose.

A rule's verdict mirrors SageMaker's `RuleEvaluationStatus`: `IssuesFound`, `NoIssuesFound` or
`Error`, plus `NoVerdict` when the trial never gave the rule anything to judge (too few steps, a
collection that was not saved). Only the first two are verdicts; the gate must treat the others
as "not passed".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.exceptions import RuleEvaluationConditionMet, TensorUnavailableForStep
from smdebug.rules.rule import Rule
from smdebug.rules.rule_invoker import invoke_rule

from training.metrics import RULE_NAMES
from training.rules import RULE_DOC_ANCHORS, RULES_DOC_URL, validate_rule_params

ISSUES_FOUND = "IssuesFound"
NO_ISSUES_FOUND = "NoIssuesFound"
NO_VERDICT = "NoVerdict"
ERROR = "Error"


@dataclass
class RuleResult:
    rule: str
    status: str
    step: int | None = None
    mode: str | None = None
    mode_step: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    doc: str = ""

    @property
    def verdict(self) -> int | None:
        """1 = issues found, 0 = none found, None = no verdict (NoVerdict or Error)."""
        return {ISSUES_FOUND: 1, NO_ISSUES_FOUND: 0}.get(self.status)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


class _PortableRule(Rule):
    """Shared bookkeeping: how many checks ran, and the evidence of the first violation."""

    #: Why the rule may have had nothing to check (shown with NoVerdict).
    needs = ""

    def __init__(self, base_trial, **params):
        super().__init__(base_trial, action_str="")
        self.params = params
        self.checks = 0
        self.evidence: dict[str, Any] = {}

    def _fire(self, **evidence) -> bool:
        self.evidence = evidence
        return True

    # -- trial helpers ---------------------------------------------------------------------
    def _mode(self, step: int) -> ModeKeys:
        return self.base_trial.mode(step)

    def _names(self, step: int, regex) -> list[str]:
        return self.base_trial.tensor_names(step=step, regex=regex) if regex else []

    def _collection_names(self, step: int, collection: str) -> list[str]:
        try:
            wanted = set(self.base_trial.tensor_names(collection=collection))
        except KeyError:  # collection never created in this trial
            return []
        return sorted(wanted.intersection(self.base_trial.tensor_names(step=step)))

    def _value(self, name: str, step: int, mode=ModeKeys.GLOBAL) -> np.ndarray:
        return np.asarray(self.base_trial.tensor(name).value(step, mode=mode), dtype=np.float64)

    def _loss_at(self, step: int, names: list[str], mode=ModeKeys.GLOBAL) -> float:
        """Mean of the loss scalars saved at `step` (raises TensorUnavailableForStep when none:
        invoke_rule then moves on to the next step)."""
        values = [float(self._value(n, step, mode).mean()) for n in names]
        if not values:
            raise TensorUnavailableForStep("losses", step, mode)
        return float(np.mean(values))

    def _losses_at(self, step: int) -> float:
        return self._loss_at(step, self._collection_names(step, "losses"))


class VanishingGradient(_PortableRule):
    """Issue when the mean of the absolute values of a gradient tensor drops below `threshold`
    (default 1e-7). Checked per gradient tensor at every step gradients were saved.
    https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html#vanishing-gradient
    """

    needs = "no gradients were saved"

    def invoke_at_step(self, step):
        names = self._collection_names(step, "gradients")
        if not names:
            return False
        self.checks += 1
        means = {n: float(np.abs(self._value(n, step)).mean()) for n in names}
        smallest = min(means, key=means.get)
        if means[smallest] < self.params["threshold"]:
            vanished = sorted(n for n, m in means.items() if m < self.params["threshold"])
            return self._fire(tensor=smallest, mean_abs=means[smallest],
                              threshold=self.params["threshold"],
                              vanished=len(vanished), of=len(names))
        return False


class Overfit(_PortableRule):
    """Issue when (mean validation loss - mean training loss) / mean training loss exceeds
    `ratio_threshold` (0.1) for `patience` (1) consecutive checks from `start_step` (0).
    Our reading of "mean": the mean over one whole EVAL pass against the mean of the TRAIN steps
    just before it (the epoch's training loss), checked when the pass ends. A check after each
    EVAL batch would judge a running mean of one or two batches, which is noise.
    https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html#overfit
    """

    needs = "no EVAL pass followed TRAIN steps"

    def __init__(self, base_trial, **params):
        super().__init__(base_trial, **params)
        self._train: list[float] = []
        self._valid: list[float] = []
        self._last_mode = None
        self._exceeded = 0
        self._pass_ends = self._eval_pass_ends()

    def _eval_pass_ends(self) -> set[int]:
        """Global steps that close an EVAL pass: the next loss step is not EVAL (or none is)."""
        names = self._loss_names_all()
        steps = sorted({s for n in names for s in self.base_trial.tensor(n).steps()})
        modes = [self._mode(s) for s in steps]
        return {s for i, s in enumerate(steps)
                if modes[i] == ModeKeys.EVAL and (i + 1 == len(steps) or modes[i + 1] != ModeKeys.EVAL)}

    def _loss_names_all(self) -> list[str]:
        regex = self.params["tensor_regex"]
        if regex:
            return self.base_trial.tensor_names(regex=_as_list(regex))
        if "losses" not in self.base_trial.collections():
            return []
        return self.base_trial.tensor_names(collection="losses")

    def invoke_at_step(self, step):
        mode = self._mode(step)
        if mode not in (ModeKeys.TRAIN, ModeKeys.EVAL):
            return False
        names = [n for n in self._loss_names_all() if step in self.base_trial.tensor(n).steps()]
        loss = self._loss_at(step, names)
        if mode != self._last_mode:
            setattr(self, "_train" if mode == ModeKeys.TRAIN else "_valid", [])
        (self._train if mode == ModeKeys.TRAIN else self._valid).append(loss)
        self._last_mode = mode
        if step not in self._pass_ends or not self._train or step < self.params["start_step"]:
            return False
        self.checks += 1
        train, valid = float(np.mean(self._train)), float(np.mean(self._valid))
        ratio = (valid - train) / train if train > 0 else float("inf")
        self._exceeded = self._exceeded + 1 if ratio > self.params["ratio_threshold"] else 0
        if self._exceeded >= self.params["patience"]:
            return self._fire(mean_train_loss=train, mean_valid_loss=valid, ratio=ratio,
                              ratio_threshold=self.params["ratio_threshold"],
                              exceeded_for_checks=self._exceeded)
        return False


class Overtraining(_PortableRule):
    """Issue when the model no longer improves: the training loss found no new optimum (an
    improvement of more than `delta`, 0.1) in its last `patience_train` (5) saved TRAIN steps
    AND the validation loss none in its last `patience_validation` (10) saved EVAL steps.
    The docs leave open how the two patiences combine; we require both, so a run whose
    training loss still falls is left to Overfit.
    https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html#overtraining
    """

    needs = "the trial lacks TRAIN or EVAL losses"

    def __init__(self, base_trial, **params):
        super().__init__(base_trial, **params)
        self._best = {ModeKeys.TRAIN: None, ModeKeys.EVAL: None}
        self._since = {ModeKeys.TRAIN: 0, ModeKeys.EVAL: 0}

    def invoke_at_step(self, step):
        mode = self._mode(step)
        if mode not in self._best:
            return False
        loss = self._losses_at(step)
        best = self._best[mode]
        if best is None or loss < best - self.params["delta"]:
            self._best[mode], self._since[mode] = loss, 0
        else:
            self._since[mode] += 1
        if None in self._best.values():
            return False
        self.checks += 1
        train_stale = self._since[ModeKeys.TRAIN] >= self.params["patience_train"]
        valid_stale = self._since[ModeKeys.EVAL] >= self.params["patience_validation"]
        if train_stale and valid_stale:
            return self._fire(best_train_loss=self._best[ModeKeys.TRAIN],
                              train_steps_without_improvement=self._since[ModeKeys.TRAIN],
                              best_valid_loss=self._best[ModeKeys.EVAL],
                              valid_steps_without_improvement=self._since[ModeKeys.EVAL],
                              delta=self.params["delta"])
        return False


class PoorWeightInitialization(_PortableRule):
    """Over the first `steps` (10) TRAIN steps, issue when any of the documented checks fails:
    - the ratio between the largest and smallest variance of the activation inputs
      (`activation_inputs_regex`, ".*relu_input") across layers exceeds `threshold` (10.0);
      all-zero activations count as an infinite ratio. A variance is the saved smdebug
      "variance" reduction (torch's, Bessel-corrected) or, in a trial saved raw, numpy's;
    - the spread between the 5th and 95th percentile of the gradients (all gradient tensors of
      the step pooled; our reading) is below `distribution_range` (0.001);
    - the loss stays at or above its first value for `patience` (5) consecutive saved steps.
    https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html#poor-weight-initialization
    """

    needs = "no activation inputs, gradients or losses were saved in the first steps"

    def __init__(self, base_trial, **params):
        super().__init__(base_trial, **params)
        self._first_loss = None
        self._not_below = 0

    def invoke_at_step(self, step):
        if self._mode(step) != ModeKeys.TRAIN or self.base_trial.mode_step(step) >= self.params["steps"]:
            return False
        return self._activations(step) or self._gradients(step) or self._loss(step)

    def _activations(self, step):
        names = self._names(step, self.params["activation_inputs_regex"])
        if len(names) < 2:
            return False
        self.checks += 1
        variances = {n: float(self.base_trial.tensor(n).reduction_value(step, "variance")) for n in names}
        low, high = min(variances.values()), max(variances.values())
        ratio = high / low if low > 0 else float("inf")
        if ratio > self.params["threshold"]:
            return self._fire(check="activation_input_variance_ratio", ratio=ratio,
                              threshold=self.params["threshold"],
                              lowest=min(variances, key=variances.get), lowest_variance=low,
                              highest=max(variances, key=variances.get), highest_variance=high)
        return False

    def _gradients(self, step):
        names = self._collection_names(step, "gradients")
        if not names:
            return False
        self.checks += 1
        pooled = np.concatenate([self._value(n, step).ravel() for n in names])
        p5, p95 = np.percentile(pooled, [5, 95])
        if p95 - p5 < self.params["distribution_range"]:
            return self._fire(check="gradient_distribution_range", p5=float(p5), p95=float(p95),
                              range=float(p95 - p5),
                              distribution_range=self.params["distribution_range"])
        return False

    def _loss(self, step):
        names = self._collection_names(step, "losses")
        if not names:
            return False
        self.checks += 1
        loss = self._loss_at(step, names)
        if self._first_loss is None:
            self._first_loss = loss
            return False
        self._not_below = self._not_below + 1 if loss >= self._first_loss else 0
        if self._not_below >= self.params["patience"]:
            return self._fire(check="loss_not_decreasing_initially", first_loss=self._first_loss,
                              loss=loss, steps_not_below_first=self._not_below,
                              patience=self.params["patience"])
        return False


class LossNotDecreasing(_PortableRule):
    """Every `num_steps` (10) steps of one mode, issue when the loss did not decrease by at
    least `diff_percent` (0: any decrease) against the loss at the latest saved step at least
    `num_steps` earlier. The losses are the `collection_names`, `tensor_regex` and (with
    `use_losses_collection`, True) the "losses" collection. `mode` None checks EVAL, then
    TRAIN, then GLOBAL: we take the first that has two saved steps `num_steps` apart.
    https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html#loss-not-decreasing
    """

    needs = "fewer than two saved losses num_steps apart in any mode"

    def __init__(self, base_trial, **params):
        super().__init__(base_trial, **params)
        self._names_all = self._loss_tensor_names()
        self._mode_used = self._pick_mode()
        self._history: dict[int, float] = {}
        self._last_checked = None

    def _loss_tensor_names(self) -> list[str]:
        p, trial = self.params, self.base_trial
        names: set[str] = set()
        for collection in _as_list(p["collection_names"]):
            names.update(trial.tensor_names(collection=collection))
        if p["tensor_regex"]:
            names.update(trial.tensor_names(regex=_as_list(p["tensor_regex"])))
        if p["use_losses_collection"] and "losses" in trial.collections():
            names.update(trial.tensor_names(collection="losses"))
        return sorted(names)

    def _pick_mode(self):
        order = ([ModeKeys[self.params["mode"].upper()]] if self.params["mode"]
                 else [ModeKeys.EVAL, ModeKeys.TRAIN, ModeKeys.GLOBAL])
        for mode in order:
            steps = sorted({s for n in self._names_all for s in self.base_trial.tensor(n).steps(mode=mode)})
            if steps and steps[-1] - steps[0] >= self.params["num_steps"]:
                return mode
        return None

    def invoke_at_step(self, step):
        if self._mode_used is None:
            return False
        if self._mode_used == ModeKeys.GLOBAL:
            mode_step = step
        else:
            mode, mode_step = self.base_trial.mode_modestep(step)
            if mode != self._mode_used:
                return False
        names = [n for n in self._names_all if mode_step in self.base_trial.tensor(n).steps(mode=self._mode_used)]
        loss = self._loss_at(mode_step, names, self._mode_used)
        self._history[mode_step] = loss
        if self._last_checked is None:
            self._last_checked = mode_step
            return False
        if mode_step < self._last_checked + self.params["num_steps"]:
            return False
        earlier = max(s for s in self._history if s <= mode_step - self.params["num_steps"])
        self._last_checked = mode_step
        self.checks += 1
        before = self._history[earlier]
        needed = before - abs(before) * self.params["diff_percent"] / 100.0
        if not loss < needed:
            return self._fire(mode=self._mode_used.name, step_before=earlier, loss_before=before,
                              loss=loss, diff_percent=self.params["diff_percent"])
        return False


RULES: dict[str, type[_PortableRule]] = {
    cls.__name__: cls
    for cls in (VanishingGradient, Overfit, Overtraining, PoorWeightInitialization, LossNotDecreasing)
}
if tuple(RULES) != RULE_NAMES:
    raise RuntimeError("training/portable_rules.py and training.metrics.RULE_NAMES must list the same rules")


def evaluate_rules(trial_path, rule_params: dict[str, dict[str, Any]] | None = None) -> list[RuleResult]:
    """Run every rule over the whole trial at `trial_path`; one result per rule, never raises
    for a rule's own failure (that becomes an `Error` result)."""
    from smdebug.trials import create_trial

    params = validate_rule_params(rule_params)
    trial = create_trial(str(trial_path))
    steps = trial.steps()
    return [_evaluate(name, trial, steps, params[name]) for name in RULES]


def _evaluate(name: str, trial, steps: list[int], params: dict[str, Any]) -> RuleResult:
    result = RuleResult(rule=name, status=NO_VERDICT, parameters=params,
                        doc=f"{RULES_DOC_URL}#{RULE_DOC_ANCHORS[name]}")
    try:
        rule = RULES[name](trial, **params)
        if steps:
            invoke_rule(rule, start_step=steps[0], end_step=steps[-1] + 1, raise_eval_cond=True)
    except RuleEvaluationConditionMet as met:
        mode, mode_step = trial.mode_modestep(met.step)
        result.status, result.step = ISSUES_FOUND, met.step
        result.mode, result.mode_step = mode.name, mode_step
        result.evidence, result.checks = rule.evidence, rule.checks
        return result
    except Exception as exc:  # a broken rule must surface as Error, never as a pass
        result.status, result.evidence = ERROR, {"error": f"{type(exc).__name__}: {exc}"}
        return result
    result.checks = rule.checks
    if rule.checks:
        result.status = NO_ISSUES_FOUND
    else:
        result.evidence = {"reason": rule.needs if steps else "the trial has no saved steps"}
    return result


def _as_list(value) -> list[str]:
    if not value:
        return []
    return [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
