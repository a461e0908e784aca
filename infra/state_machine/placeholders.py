"""The placeholder mini-language: run-time values inside the request builders' dicts.

The SageMaker task parameters are the request builders' dicts (infra/sagemaker_requests.py), one
source of truth. Values known only at run time (names made from a run id, the dataset URI from the
execution input, the model artifact of the retrain) are passed to the builders as placeholders: a
string the builders accept (it matches SageMaker's name pattern) and that appears nowhere else.
`bind_placeholders` then turns each into a `Key.$` entry holding the JSONPath of the real value.
"""
from __future__ import annotations

import re
from typing import Any

_PLACEHOLDER = re.compile(r"zzrun([a-z]+)zz")
_PATHS = {
    "tuningjob": "$.names.tuning_job",
    "trainingjob": "$.names.training_job",
    "model": "$.names.model",
    "endpointconfig": "$.names.endpoint_config",
    "datauri": "$.data_uri",
    "modeldata": "$.training.model_data",
    "execution": "$$.Execution.Id",
}


def placeholder(key: str) -> str:
    if key not in _PATHS:
        raise KeyError(f"unknown placeholder {key!r}; known: {sorted(_PATHS)}")
    return f"zzrun{key}zz"


#: How a CDK token (a bucket name, an ARN) looks in a Python string before synthesis resolves it.
_CDK_TOKEN = re.compile(r"(\$\{Token\[[^\]]+\]\})")


def escape_format(text: str) -> str:
    """Literal text inside States.Format: quote, braces and backslash are escaped, except inside
    CDK tokens, which must stay intact to resolve (to names without those characters)."""
    pieces = _CDK_TOKEN.split(text)
    return "".join(p if i % 2 else re.sub(r"([\\'{}])", r"\\\1", p) for i, p in enumerate(pieces))


def states_format(template: str, *paths: str) -> str:
    """`States.Format` of `template`, whose `{}` slots take `paths` in order (the same template
    that str.format fills locally); the literal text is escaped."""
    literal = "{}".join(escape_format(piece) for piece in template.split("{}"))
    return f"States.Format('{literal}', {', '.join(paths)})"


def _bind_string(value: str) -> str | None:
    """JSONPath / intrinsic for a string holding placeholders, or None when it holds none."""
    parts = _PLACEHOLDER.split(value)
    if len(parts) == 1:
        return None
    literals, keys = parts[0::2], parts[1::2]
    if len(keys) == 1 and literals == ["", ""]:
        return _PATHS[keys[0]]
    template = "{}".join(escape_format(text) for text in literals)
    return f"States.Format('{template}', {', '.join(_PATHS[k] for k in keys)})"


def bind_placeholders(value: Any) -> Any:
    """`value` with every placeholder-holding string `K: "..."` turned into `K.$: <path>`."""
    if isinstance(value, list):
        if any(isinstance(v, str) and _PLACEHOLDER.search(v) for v in value):
            raise ValueError(f"placeholders inside a list of strings cannot be bound: {value!r}")
        return [bind_placeholders(v) for v in value]
    if not isinstance(value, dict):
        return value
    bound = {}
    for key, item in value.items():
        path = _bind_string(item) if isinstance(item, str) else None
        if path is None:
            bound[key] = bind_placeholders(item)
        else:
            bound[f"{key}.$"] = path
    return bound


def dynamic(request: dict, keys: tuple[str, ...], path: str) -> dict:
    """Replace the member at `keys` (a literal from the builder) with `<member>.$: path`, for a
    value that is not a string (a whole dict, a number) and so cannot hold a placeholder."""
    parent = request
    for key in keys[:-1]:
        parent = parent[key]
    del parent[keys[-1]]
    parent[f"{keys[-1]}.$"] = path
    return request
