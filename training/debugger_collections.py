"""The one definition of what the debugger saves: collections, regexes and save intervals.

Portable mode builds its smdebug hook from these values; managed mode's request builders
(`infra/`) turn the same values into `DebugHookConfig.CollectionConfigurations`. So a regex or
interval cannot drift between the two modes. The rules' thresholds are in training/rules.py.
Pure data and small pure functions: `infra/` imports this at synth time.
"""
from __future__ import annotations

from typing import Any

from training.rules import RELU_INPUT_REGEX, rule_parameters

#: Steps between saved gradients and weights when the config says nothing: AWS's own default for
#: these collections (smdebug_rulesconfig's collections.json). A ResNet-50 save is ~100 MB (58 MB
#: for its last stage and classifier, what unfreeze `last` trains), so a denser interval fills the job's volume; every rule gets what it needs
#: from step 0 (always saved) and the interval.
DEFAULT_SAVE_INTERVAL = 500
#: Losses are scalars and cheap: save every step in TRAIN and EVAL, so that a short EVAL pass never
#: falls between two save points and the loss rules (Overfit, Overtraining, LossNotDecreasing)
#: always have both curves.
LOSS_SAVE_INTERVAL = 1

#: Loss tensor names: the hook names a registered `nn.CrossEntropyLoss` module's output
#: `CrossEntropyLoss_output_0` (the seed project's collection regex).
LOSS_REGEX = r".*CrossEntropyLoss_output.*"
#: What portable mode saves of each ReLU input instead of the tensor: smdebug's reduction name
#: (torch's `Tensor.var`), the one statistic PoorWeightInitialization reads.
RELU_INPUT_REDUCTION = "variance"


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
