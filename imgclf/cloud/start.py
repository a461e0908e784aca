"""`imgclf start`: start one execution of the deployed pipeline's state machine.

The execution input may override what the machine allows (infra/state_machine.OVERRIDABLE); it is
checked here with the same limits the machine checks, so a typo fails before anything starts.
"""
from __future__ import annotations

import argparse
import json

from imgclf.cloud.stack_outputs import BUCKET_NAME, STATE_MACHINE_ARN, add_stack_arguments, client, require, stack_name, stack_outputs
from imgclf.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument("--dataset", help="s3://<pipeline bucket>/<prefix> or a key prefix holding train/ valid/ test/")
    parser.add_argument("--overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="execution input, e.g. epochs=3 min_test_accuracy=0.9")


def execution_input(overrides: list[str], dataset: str | None, bucket: str | None) -> dict:
    from infra.state_machine import OVERRIDABLE

    parsed: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in OVERRIDABLE:
            raise UserError(f"bad override {item!r}: use KEY=VALUE with KEY one of {', '.join(OVERRIDABLE)}")
        parsed[key] = _value(key, value)
    if dataset is not None:
        parsed["dataset_prefix"] = _dataset_prefix(dataset, bucket)
    elif "dataset_prefix" in parsed:
        parsed["dataset_prefix"] = _dataset_prefix(parsed["dataset_prefix"], bucket)
    return parsed


def _value(key: str, text: str):
    if key == "epochs":
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise UserError(f"epochs must be a whole number from 1 to 1000, got {text!r}")
        return int(text)
    if key == "min_test_accuracy":
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 1:
            raise UserError(f"min_test_accuracy must be a number from 0 to 1, got {text!r}")
        return value
    return text


def _dataset_prefix(dataset: str, bucket: str | None) -> str:
    """A key prefix in the pipeline bucket (what the machine's input takes)."""
    if dataset.startswith("s3://"):
        found_bucket, _, prefix = dataset[5:].partition("/")
        if bucket and found_bucket != bucket:
            raise UserError(f"the dataset must be in the pipeline bucket {bucket}, not {found_bucket}; "
                            f"upload it with `imgclf data prepare ... --upload s3://{bucket}/datasets/<name>`")
        dataset = prefix
    prefix = dataset.strip("/")
    if not prefix or " " in prefix:
        raise UserError(f"bad dataset {dataset!r}: give s3://{bucket or '<bucket>'}/<prefix> or a key prefix")
    return prefix


def start_execution(sfn, state_machine_arn: str, payload: dict) -> str:
    from botocore.exceptions import ClientError

    try:
        return sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(payload))["executionArn"]
    except ClientError as err:
        raise UserError(f"cannot start {state_machine_arn}: {err.response.get('Error', {}).get('Message', err)}") from None


def run(args: argparse.Namespace) -> int:
    stack = stack_name(args)
    outputs = stack_outputs(client("cloudformation", args.region), stack)
    arn = require(outputs, STATE_MACHINE_ARN, stack)
    payload = execution_input(args.overrides, args.dataset, outputs.get(BUCKET_NAME))
    execution = start_execution(client("stepfunctions", args.region), arn, payload)
    print(f"started {execution}")
    print(f"input: {json.dumps(payload)}")
    print(f"follow it: imgclf status {execution} --follow")
    return 0
