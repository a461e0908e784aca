#!/usr/bin/env python3
"""CDK entry point: read the config, build the stack, check it with cdk-nag, synthesize.

`npx cdk synth|deploy` runs this with cdk.json's context; `python app.py` reads cdk.json itself.
Config: cdk.json context `imgclf` (an object) and `config` (a JSON file path), or `-c` overrides.
Region: context `region`, else the CLI's CDK_DEFAULT_REGION, else AWS_REGION, else us-east-1.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, config_from_context
from infra.stack import ImgclfStack

ROOT = Path(__file__).resolve().parent
DEFAULT_REGION = "us-east-1"


def file_context() -> dict:
    """cdk.json's context, which the CLI passes in CDK_CONTEXT_JSON but a bare `python app.py` must read."""
    if "CDK_CONTEXT_JSON" in os.environ:
        return {}
    return json.loads((ROOT / "cdk.json").read_text()).get("context", {})


def build_app(context: dict | None = None, outdir: str | None = None) -> App:
    """The whole app, with cdk-nag attached; `app.synth()` runs the checks and fails on a finding."""
    app = App(context={**file_context(), **(context or {})}, outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out")
    cfg = config_from_context(app.node.try_get_context("imgclf"), app.node.try_get_context("config"))
    region = (
        app.node.try_get_context("region")
        or os.environ.get("CDK_DEFAULT_REGION")
        or os.environ.get("AWS_REGION")
        or DEFAULT_REGION
    )
    ImgclfStack(app, f"{cfg.name}-stack", cfg=cfg, region=region)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> int:
    try:
        app = build_app()
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
