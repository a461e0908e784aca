"""The deployed stack's outputs (state machine ARN, API URL, bucket, endpoint), looked up through
CloudFormation, so that no command needs a hand-typed ARN."""
from __future__ import annotations

import argparse
from pathlib import Path

from imgclf.errors import UserError

#: Output keys the stack defines (infra/stack.py).
STATE_MACHINE_ARN = "StateMachineArn"
API_URL = "ApiUrl"
BUCKET_NAME = "BucketName"
ENDPOINT_NAME = "EndpointName"
MODEL_PACKAGE_GROUP = "ModelPackageGroupName"


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", help="CloudFormation stack name (default <config name>-stack, as app.py names it)")
    parser.add_argument("--config", type=Path, help="JSON config file (for the default stack name)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's)")


def stack_name(args: argparse.Namespace) -> str:
    if args.stack:
        return args.stack
    from infra.config import ConfigError, load_config, read_config_file

    try:
        cfg = load_config(read_config_file(args.config) if args.config else None)
    except ConfigError as err:
        raise UserError(str(err)) from None
    return f"{cfg.name}-stack"


def client(service: str, region: str | None):
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.client(service, region_name=region)
    except BotoCoreError as err:
        raise UserError(f"cannot create an AWS {service} client: {err} (set AWS_REGION or pass --region)") from None


def stack_outputs(cloudformation, name: str) -> dict[str, str]:
    """{OutputKey: OutputValue} of stack `name`; a missing stack is a clear error."""
    from botocore.exceptions import ClientError, NoCredentialsError

    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except NoCredentialsError:
        raise UserError("no AWS credentials found; configure them (aws configure, AWS_PROFILE, ...)") from None
    except ClientError as err:
        message = err.response.get("Error", {}).get("Message", str(err))
        if "does not exist" in message:
            raise UserError(f"stack {name} not found in this account/region: deploy it first (cdk deploy), "
                            "or pass --stack/--region") from None
        raise UserError(f"cannot describe stack {name}: {message}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return outputs


def require(outputs: dict[str, str], key: str, stack: str) -> str:
    if key not in outputs:
        raise UserError(f"stack {stack} has no output {key}; is it an imgclf stack, fully deployed?")
    return outputs[key]
