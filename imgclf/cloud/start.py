"""`imgclf start`: start one execution of the deployed pipeline's state machine.

The execution input may override what the machine allows (infra/layout.OVERRIDABLE); it is
checked here with the table the machine's ValidateInput states are built from, so what the machine
would refuse fails here, before anything starts, with the same words.
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
    """The execution input: each override as the machine will read it, refused here with the
    machine's own words when the machine would refuse it (infra/layout.run_input_problem)."""
    from infra.layout import DATASET_PREFIX, OVERRIDABLE

    parsed: dict = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or key not in OVERRIDABLE:
            raise UserError(f"bad override {item!r}: use KEY=VALUE with KEY one of {', '.join(OVERRIDABLE)}")
        parsed[key] = _checked(key, text if key == DATASET_PREFIX else _number(text), text)
    if dataset is not None:
        parsed[DATASET_PREFIX] = _checked(DATASET_PREFIX, _dataset_prefix(dataset, bucket), dataset)
    return parsed


def _number(text: str):
    """A JSON number as the machine will see it; other text stays text (and is refused as such)."""
    try:
        return json.loads(text, parse_constant=lambda _: text)  # NaN and Infinity are not JSON
    except ValueError:
        return text


def _checked(key: str, value, given: str):
    from infra.layout import run_input_problem

    problem = run_input_problem(key, value)
    if problem:
        raise UserError(f"{problem}; got {given!r}")
    return value


def _dataset_prefix(dataset: str, bucket: str | None) -> str:
    """`--dataset`: s3://<pipeline bucket>/<prefix>, or the prefix itself; a folder's trailing
    slash is dropped (the machine takes the prefix without it)."""
    if dataset.startswith("s3://"):
        found_bucket, _, prefix = dataset[5:].partition("/")
        if bucket and found_bucket != bucket:
            raise UserError(f"the dataset must be in the pipeline bucket {bucket}, not {found_bucket}; "
                            f"upload it with `imgclf data prepare ... --upload s3://{bucket}/datasets/<name>`")
        dataset = prefix
    return dataset.rstrip("/")


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
