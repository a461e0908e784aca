"""The one definition of what the debugger saves and the rule parameters it judges with.

Portable mode builds its smdebug hook and runs its rules from these values; managed mode's
request builders (`infra/`) turn the same values into `DebugHookConfig.CollectionConfigurations`
and `DebugRuleConfigurations[].RuleParameters`. So a regex, interval or threshold cannot drift
between the two modes. Pure data and small pure functions: `infra/` imports this at synth time.

Rule defaults are AWS's documented defaults for the built-in rules,
https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html
"""
from __future__ import annotations

from typing import Any

#: The rules' documentation page (each rule's section is `#<anchor>` below).
RULES_DOC_URL = "https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html"

#: Steps between saved gradients and weights when the config says nothing: AWS's own default for
#: these collections (smdebug_rulesconfig's collections.json). A ResNet-50 save is ~100 MB (58 MB
#: for layer4 + fc), so a denser interval fills the job's volume; every rule gets what it needs
#: from step 0 (always saved) and the interval.
DEFAULT_SAVE_INTERVAL = 500
#: Losses are scalars and cheap: save every step in TRAIN and EVAL, so that a short EVAL pass never
#: falls between two save points and the loss rules (Overfit, Overtraining, LossNotDecreasing)
#: always have both curves.
LOSS_SAVE_INTERVAL = 1

#: Loss tensor names: the hook names a registered `nn.CrossEntropyLoss` module's output
#: `CrossEntropyLoss_output_0` (the seed project's collection regex).
LOSS_REGEX = r".*CrossEntropyLoss_output.*"
#: ReLU inputs: smdebug names a module's inputs `<module path>_input_<i>`, so torchvision's
#: `layer1.0.relu` gives `layer1.0.relu_input_0`. AWS's PoorWeightInitialization default regex.
RELU_INPUT_REGEX = r".*relu_input"
#: What portable mode saves of each ReLU input instead of the tensor: smdebug's reduction name
#: (torch's `Tensor.var`), the one statistic PoorWeightInitialization reads.
RELU_INPUT_REDUCTION = "variance"

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

#: Anchor of each rule's section on RULES_DOC_URL.
RULE_DOC_ANCHORS = {
    "VanishingGradient": "vanishing-gradient",
    "Overfit": "overfit",
    "Overtraining": "overtraining",
    "PoorWeightInitialization": "poor-weight-initialization",
    "LossNotDecreasing": "loss-not-decreasing",
}


def collection_configurations(save_interval: int = DEFAULT_SAVE_INTERVAL,
                              rule_params: dict[str, dict[str, Any]] | None = None, *,
                              managed: bool = False) -> list[dict[str, Any]]:
    """`DebugHookConfig.CollectionConfigurations` (`managed`), or the portable hook's (string
    values, as the API and smdebug's JSON config expect; `train.`/`eval.` keys are per mode).

    ReLU inputs grow with batch and image size (~37 MiB per 224 px image for ResNet-50), and only
    PoorWeightInitialization reads them, in its first `steps` TRAIN steps: they are saved there
    and nowhere else. Portable mode saves only their variance (an smdebug reduction, a few bytes
    per ReLU and step), all our rule reads. Managed mode saves them raw: AWS's rule container is
    not published and may read the raw tensors. Weights are not saved in EVAL, where they cannot
    have changed."""
    window = rule_parameters("PoorWeightInitialization",
                             (rule_params or {}).get("PoorWeightInitialization"))["steps"]
    relu_input = {"include_regex": RELU_INPUT_REGEX, "save_interval": "1", "end_step": "0",
                  "train.end_step": str(window)}
    if not managed:
        relu_input["reductions"] = RELU_INPUT_REDUCTION
    collections = {
        "losses": {"include_regex": LOSS_REGEX, "save_interval": str(LOSS_SAVE_INTERVAL)},
        "gradients": {"save_interval": str(save_interval)},
        "weights": {"save_interval": str(save_interval), "eval.end_step": "0"},
        "relu_input": relu_input,
    }
    return [{"CollectionName": name, "CollectionParameters": params} for name, params in collections.items()]


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
