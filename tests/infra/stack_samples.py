"""Sample deployment values for a synthesized template, and the CDK app as `cdk synth` loads it.

Shared by the stack tests (tests/infra/conftest.py) and the config matrix (tests/matrix), which
need the same stand-ins for what only a deployment knows (account, bucket names, role ARNs).
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"


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


def load_app():
    """app.py is a script at the repository root, not a package module."""
    spec = importlib.util.spec_from_file_location("imgclf_cdk_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
