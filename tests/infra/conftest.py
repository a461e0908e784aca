"""Synthesized templates, one per config variant, made in-process once per session (jsii starts
slowly; each synth takes seconds). Every config switch value appears in at least one variant."""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

#: default: serverless, API key, portable debugger, spot on, S3-managed encryption.
#: realtime: real-time + auto scaling, IAM auth, managed debugger, spot off, KMS, CORS, data capture.
#: nodebug: debugger off (no rule gate), rules not blocking.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "realtime": {
        "kms_key_arn": KMS_KEY,
        "endpoint": {"mode": "realtime", "data_capture_percent": 10, "min_capacity": 1, "max_capacity": 3},
        "api": {"auth": "iam", "cors_origins": ["https://example.com"]},
        "debugger": {"mode": "managed"},
        "training": {"spot": False},
    },
    "nodebug": {"debugger": {"mode": "off"}, "gate": {"block_on_rules": False}},
}


@dataclass
class Synth:
    variant: str
    cfg: Any
    template: dict
    outdir: Path

    def resources(self, cfn_type: str) -> dict[str, dict]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == cfn_type}

    def only(self, cfn_type: str) -> dict:
        found = list(self.resources(cfn_type).values())
        assert len(found) == 1, f"expected one {cfn_type}, found {len(found)}"
        return found[0]

    @property
    def definition(self) -> dict:
        """The state machine's definition with every CloudFormation reference replaced by a sample value."""
        body = self.only("AWS::StepFunctions::StateMachine")["Properties"]["DefinitionString"]
        return json.loads(resolve_cfn(body, self.template))


def _sample_value(logical_id: str, template: dict, attribute: str | None) -> str:
    cfn_type = template["Resources"][logical_id]["Type"]
    if cfn_type == "AWS::IAM::Role":
        return f"arn:aws:iam::{ACCOUNT}:role/{logical_id}"
    if cfn_type == "AWS::S3::Bucket":
        return f"arn:aws:s3:::{logical_id.lower()}" if attribute == "Arn" else logical_id.lower()
    return f"{logical_id}-{attribute or 'ref'}"


_PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def resolve_cfn(value: Any, template: dict) -> Any:
    """Evaluate Ref / Fn::GetAtt / Fn::Join / Fn::Sub with sample values (what a deploy would do)."""
    if isinstance(value, list):
        return [resolve_cfn(v, template) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        ref = value["Ref"]
        return _PSEUDO.get(ref) or _sample_value(ref, template, None)
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return _sample_value(logical_id, template, attribute)
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(str(resolve_cfn(p, template)) for p in parts)
    if "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name, sample in _PSEUDO.items():
            text = text.replace("${" + name + "}", sample)
        return text
    return {k: resolve_cfn(v, template) for k, v in value.items()}


def _load_app():
    """app.py is a script at the repository root, not a package module."""
    spec = importlib.util.spec_from_file_location("imgclf_cdk_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Synthesizer:
    def __init__(self, root: Path) -> None:
        self.root, self.done = root, {}

    def __call__(self, variant: str) -> Synth:
        if variant not in self.done:
            build_app = _load_app().build_app
            outdir = self.root / variant
            app = build_app({"imgclf": VARIANTS[variant], "region": REGION}, str(outdir))
            stack = app.node.children[0]
            assembly = app.synth()
            template = assembly.get_stack_by_name(stack.stack_name).template
            self.done[variant] = Synth(variant, stack.cfg, template, outdir)
        return self.done[variant]


@pytest.fixture(scope="session")
def synthesize(tmp_path_factory) -> _Synthesizer:
    """`synthesize(variant) -> Synth`, each variant synthesized (and cdk-nag checked) once."""
    return _Synthesizer(tmp_path_factory.mktemp("cdk"))


@pytest.fixture(scope="session")
def default(synthesize) -> Synth:
    return synthesize("default")


@pytest.fixture(scope="session")
def realtime(synthesize) -> Synth:
    return synthesize("realtime")
