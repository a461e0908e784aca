"""Synthesized templates, one per config variant, made in-process once per session (jsii starts
slowly; each synth takes seconds). Every config switch value appears in at least one variant."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stack_samples import ACCOUNT, REGION, ROOT, load_app, resolve_cfn  # noqa: F401 - tests import them from here

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

#: default: serverless, API key, portable debugger, spot on, S3-managed encryption.
#: realtime: real-time + auto scaling, IAM auth, managed debugger, spot off, KMS, CORS, data capture,
#: front-door capture and the retrain on a confidence alarm.
#: nodebug: debugger off (no rule gate), rules not blocking, backbone weights from another bucket.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "realtime": {
        "kms_key_arn": KMS_KEY,
        "endpoint": {"mode": "realtime", "data_capture_percent": 10, "min_capacity": 1, "max_capacity": 3},
        "api": {"auth": "iam", "cors_origins": ["https://example.com"]},
        "debugger": {"mode": "managed"},
        "training": {"spot": False},
        "monitoring": {"capture_percent": 5, "capture_images": True, "retrain_on_alarm": True},
    },
    "nodebug": {
        "debugger": {"mode": "off"},
        "gate": {"block_on_rules": False},
        "training": {"pretrained": "channel", "pretrained_s3_uri": "s3://weights-elsewhere/resnet50/imagenet.pth"},
    },
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


class _Synthesizer:
    def __init__(self, root: Path) -> None:
        self.root, self.done = root, {}

    def __call__(self, variant: str) -> Synth:
        if variant not in self.done:
            build_app = load_app().build_app
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
