"""`imgclf rollback [VERSION]`: deploy an approved version of the stack's model package group
through the pipeline's own deploy path (an execution whose input names the version; nothing is
trained). Without VERSION, the newest approved version older than the one serving."""
from __future__ import annotations

import argparse
import json

from imgclf.cloud.stack_outputs import STATE_MACHINE_ARN, add_stack_arguments, client, require, stack_name, stack_outputs
from imgclf.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument("version", type=int, nargs="?", help="the version to deploy (default: the previous approved one)")


def target(summaries: list[dict], serving: str | None, version: int | None) -> dict:
    """The version to deploy: `version`, which must be Approved, or the newest Approved one older
    than the version serving."""
    approved = [s for s in summaries if s.get("ModelApprovalStatus") == "Approved"]
    if version is not None:
        found = [s for s in summaries if s["ModelPackageVersion"] == version]
        if not found:
            raise UserError(f"no version {version} (imgclf models list shows them)")
        if found[0] not in approved:
            raise UserError(f"version {version} is {found[0].get('ModelApprovalStatus')}: approve it first (imgclf models approve {version})")
        return found[0]
    current = [s["ModelPackageVersion"] for s in summaries if s["ModelPackageArn"] == serving]
    if not current:
        raise UserError("the endpoint serves no registered version, so there is no previous one: name the VERSION to deploy")
    older = [s for s in approved if s["ModelPackageVersion"] < current[0]]
    if not older:
        raise UserError(f"no approved version older than the serving version {current[0]}")
    return older[-1]


def run(args: argparse.Namespace) -> int:
    from imgclf.cloud.models import cloud_registry
    from imgclf.cloud.start import start_execution
    from infra.layout import MODEL_PACKAGE

    stack = stack_name(args)
    registry = cloud_registry(args)
    chosen = target(registry.summaries(), registry.serving(), args.version)
    machine = require(stack_outputs(client("cloudformation", args.region), stack), STATE_MACHINE_ARN, stack)
    payload = {MODEL_PACKAGE: chosen["ModelPackageArn"]}
    execution = start_execution(client("stepfunctions", args.region), machine, payload)
    print(f"deploying version {chosen['ModelPackageVersion']}: started {execution}")
    print(f"input: {json.dumps(payload)}")
    print(f"follow it: imgclf status {execution} --follow")
    return 0
