"""The five debugger rules' thresholds: AWS's documented defaults, the overrides a user may give,
and the parameters each mode judges with.

Portable mode's in-process rules (training/portable_rules.py) and managed mode's
`DebugRuleConfigurations[].RuleParameters` (built in `infra/`) both read this table, so a
threshold cannot drift between the two modes. Pure data and small pure functions, no smdebug or
numpy: `infra/` imports this at synth time and the trainer checks `--rule-params` with it before
reading any data.

Defaults: https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html
"""
from __future__ import annotations

from typing import Any

from training.metrics import RULE_NAMES

#: The rules' documentation page (each rule's section is `#<anchor>` below).
RULES_DOC_URL = "https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html"
#: PoorWeightInitialization's default activation regex: smdebug names a module's inputs
#: `<module path>_input_<i>`, so torchvision's `layer1.0.relu` gives `layer1.0.relu_input_0`.
RELU_INPUT_REGEX = r".*relu_input"

#: Documented defaults of the built-in rules, by rule; names are AWS's parameter names.
#: `None` means "not set" (AWS's default None): it is left out of managed RuleParameters.
RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "VanishingGradient": {"threshold": 0.0000001},
    "Overfit": {"tensor_regex": None, "start_step": 0, "patience": 1, "ratio_threshold": 0.1},
    "Overtraining": {"patience_train": 5, "patience_validation": 10, "delta": 0.1},
    "PoorWeightInitialization": {
        "activation_inputs_regex": RELU_INPUT_REGEX,
        "threshold": 10.0,
        "distribution_range": 0.001,
        "patience": 5,
        "steps": 10,
    },
    "LossNotDecreasing": {
        "collection_names": None,
        "tensor_regex": None,
        "use_losses_collection": True,
        "num_steps": 10,
        "diff_percent": 0.0,
        "mode": None,
    },
}
if tuple(RULE_DEFAULTS) != RULE_NAMES:
    raise RuntimeError("training/rules.py and training.metrics.RULE_NAMES must list the same rules")

#: Anchor of each rule's section on RULES_DOC_URL.
RULE_DOC_ANCHORS = {
    "VanishingGradient": "vanishing-gradient",
    "Overfit": "overfit",
    "Overtraining": "overtraining",
    "PoorWeightInitialization": "poor-weight-initialization",
    "LossNotDecreasing": "loss-not-decreasing",
}


def rule_parameters(rule: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The rule's effective parameters: documented defaults with `overrides` coerced to the
    default's type. Unknown names are an error, so a typo cannot silently keep a default."""
    if rule not in RULE_DEFAULTS:
        raise ValueError(f"unknown rule {rule!r}; known: {sorted(RULE_DEFAULTS)}")
    params = dict(RULE_DEFAULTS[rule])
    for name, value in (overrides or {}).items():
        if name not in params:
            raise ValueError(f"rule {rule} has no parameter {name!r}; known: {sorted(params)}")
        params[name] = _coerce(rule, name, params[name], value)
    return params


def validate_rule_params(rule_params: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Effective parameters of every rule; raises ValueError naming the bad rule or parameter."""
    rule_params = rule_params or {}
    unknown = sorted(set(rule_params) - set(RULE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown rules in rule parameters: {unknown}; known: {list(RULE_DEFAULTS)}")
    return {name: rule_parameters(name, rule_params.get(name)) for name in RULE_DEFAULTS}


def managed_rule_parameters(rule: str, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """`DebugRuleConfigurations[].RuleParameters` for AWS's rule container: `rule_to_invoke` plus
    every set parameter as a string (booleans as `True`/`False`, as the SDK's rule_configs do)."""
    params = rule_parameters(rule, overrides)
    return {"rule_to_invoke": rule, **{k: str(v) for k, v in params.items() if v is not None}}


def _coerce(rule: str, name: str, default: Any, value: Any) -> Any:
    if value is None or default is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false"):
                    raise ValueError(value)
                return value.lower() == "true"
            return bool(value)
        return type(default)(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"rule {rule} parameter {name}={value!r} is not a valid {type(default).__name__}"
        ) from None
