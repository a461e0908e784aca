"""Hyperparameter values as SageMaker carries them into the training container.

The sagemaker-training toolkit (`environment.read_hyperparameters`) runs `json.loads` on every
value of hyperparameters.json, keeping the raw text only when that fails, and then renders each
decoded value as a command-line argument (`mapping.to_cmd_args`): a dict becomes `k=v,k2=v2`, a
boolean `True`. A value that is itself JSON text, such as the rule-parameter overrides, would reach
the script as `Overfit={'patience': 3}`. The SageMaker SDK therefore json-encodes every value
(`Framework._json_encode_hyperparameters`), so that each survives exactly one decode; `encode` is
that rule. `decode` is the toolkit's rule, for code that reads a request's values without a
container in between (the local engine). SageMaker itself adds `_tuning_objective_metric` and the
tuned values as plain text, which decode the same way.

`RETRAIN_ONLY` names what only the final retrain is given: a tuning trial's static set leaves them
out (infra/sagemaker_requests.py), in the cloud and in the local tuner, which runs that request.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: What only the retrain, whose model is served, is given: the optimized CPU forward, the limits it
#: must hold to ship, the serving Python whose ONNX Runtime the model dir carries, and where the test
#: evaluation is uploaded. A trial gets train.py's defaults instead: no optimized forward, no upload.
RETRAIN_ONLY = frozenset({"optimize", "max-optimized-accuracy-drop", "min-optimized-agreement", "serving-python",
                          "evaluation-prefix"})


def encode(values: Mapping[str, Any]) -> dict[str, str]:
    """Every value as JSON text (a string gains quotes; JSON text is encoded a second time)."""
    return {str(name): json.dumps(value) for name, value in values.items()}


def decode(text: str) -> Any:
    """One value as the toolkit decodes it: JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


def decoded(hyperparameters: Mapping[str, str]) -> dict[str, Any]:
    """Every value decoded: what the training script's launcher starts from."""
    return {name: decode(text) for name, text in hyperparameters.items()}
