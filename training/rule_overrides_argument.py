"""The `--rule-params` argument as it travels from the request to the trainer: JSON, percent-encoded.

The PyTorch training container's framework module (sagemaker_pytorch_container.training) starts
the script through sagemaker-training's `process.create`. In sagemaker-training 4.x (4.9.0 read)
that joins the command into one /bin/sh line without quoting it, so the shell strips JSON's double
quotes and splits it at its spaces; 5.1.4 executes the argument vector. Percent-encoded (RFC 3986,
every reserved character escaped), the JSON is letters, digits and `%._~-`, which passes either
unchanged. Plain JSON, typed by hand, decodes unchanged (it has no `%`).
Imports nothing heavy: infra/ builds the argument at synth.
"""
from __future__ import annotations

import json
from urllib.parse import quote, unquote


def to_argument(overrides: dict) -> str:
    return quote(json.dumps(overrides, sort_keys=True, separators=(",", ":")), safe="")


def from_argument(text: str):
    """The decoded value (json.JSONDecodeError when it is not JSON)."""
    return json.loads(unquote(text))
