"""`imgclf models list|approve VERSION|reject VERSION`: the registered versions of the stack's model
package group (or of the local registry, with --local), their approval, test accuracy and which one
serves; approving or rejecting one. With release.approval manual, approving a version deploys it
(the stack's approval rule starts the pipeline with it); `imgclf rollback VERSION` deploys any
approved version (docs/release.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from imgclf.cloud.stack_outputs import ENDPOINT_NAME, MODEL_PACKAGE_GROUP, add_stack_arguments, client, require, stack_name, stack_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument("--local", type=Path, metavar="REGISTRY", help="a local registry folder (e.g. runs/registry) instead of the stack's")
    if parser.prog.endswith(("approve", "reject")):
        parser.add_argument("version", type=int, help="the version number (imgclf models list)")
        parser.add_argument("--reason", help="why (kept as the version's ApprovalDescription)")


def cloud_registry(args: argparse.Namespace):
    from imgclf.cloud.registry import CloudRegistry

    stack = stack_name(args)
    outputs = stack_outputs(client("cloudformation", args.region), stack)
    return CloudRegistry(client("sagemaker", args.region), client("s3", args.region),
                         require(outputs, MODEL_PACKAGE_GROUP, stack), require(outputs, ENDPOINT_NAME, stack))


def _rows(args: argparse.Namespace) -> list[dict]:
    if args.local:
        from imgclf.local import registry

        serving = registry.serving(args.local)
        return [{"version": v["version"], "approval": v["approval"], "created": v["created"],
                 "test_acc": v["evidence"]["final_metrics"].get("test_acc"), "serving": v["version"] == serving}
                for v in registry.versions(args.local)]
    found = cloud_registry(args)
    serving = found.serving()
    return [{**v, "serving": v.pop("arn") == serving} for v in found.versions()]


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "no versions registered yet"
    lines = [f"{'version':>7}  {'approval':<21}  {'test_acc':>8}  {'created':<25}  serving"]
    for r in rows:
        acc = "?" if r["test_acc"] is None else f"{r['test_acc']:.4f}"
        lines.append(f"{r['version']:>7}  {r['approval']:<21}  {acc:>8}  {r['created']:<25}  {'<- serving' if r['serving'] else ''}".rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    decision = args.subcommand if args.subcommand in ("approve", "reject") else None
    if decision is None:
        print(format_table(_rows(args)))
        return 0
    if args.local:
        from imgclf.local import registry

        registry.decide(args.local, args.version, decision, args.reason)
        print(f"version {args.version}: {decision}d; serve it with imgclf local serve --version {args.version} --registry {args.local}"
              if decision == "approve" else f"version {args.version}: rejected")
        return 0
    arn = cloud_registry(args).decide(args.version, decision, args.reason)
    print(f"{arn}: {decision}d")
    if decision == "approve":
        print("with release.approval manual the stack deploys it now (imgclf status); otherwise: imgclf rollback "
              f"{args.version}")
    return 0
