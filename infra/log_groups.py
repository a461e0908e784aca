"""The stack's CloudWatch log groups: fixed names, one retention, and the stack's KMS key.

With `kms_key_arn`, every log group the stack makes is encrypted with that key. The key is the
user's (imported by ARN), so the stack cannot change its policy: the policy must let CloudWatch
Logs use the key for exactly these log groups (`key_policy_statement`, in docs/infrastructure.md;
`python -m infra.log_groups <name> <region> <account>` prints it filled in). Fixed names make that
statement exact, and put the state machine's group under /aws/vendedlogs/: Step Functions
otherwise adds each group to the account's CloudWatch Logs resource policy, whose 5,120-character
limit then makes creates and updates fail in busy accounts (Step Functions developer guide).
"""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_logs as logs
    from constructs import Construct



def pipeline_log_group_name(name: str) -> str:
    return f"/aws/vendedlogs/states/{name}-pipeline"


def frontdoor_function_name(name: str) -> str:
    return f"{name}-frontdoor"


def frontdoor_log_group_name(name: str) -> str:
    return f"/aws/lambda/{frontdoor_function_name(name)}"


def access_log_group_name(name: str) -> str:
    return f"/aws/apigateway/{name}-api-access"


def log_group_names(name: str) -> tuple[str, ...]:
    """Every log group the stack makes."""
    return pipeline_log_group_name(name), frontdoor_log_group_name(name), access_log_group_name(name)


def log_group(scope: Construct, construct_id: str, *, name: str, key: kms.IKey | None) -> logs.LogGroup:
    # CDK is imported here only: the statement printer below starts no jsii.
    from aws_cdk import RemovalPolicy
    from aws_cdk import aws_logs as logs

    return logs.LogGroup(
        scope, construct_id, log_group_name=name, retention=logs.RetentionDays.THREE_MONTHS, encryption_key=key,
        removal_policy=RemovalPolicy.DESTROY,
    )


def key_policy_statement(name: str, region: str, account: str, partition: str = "aws") -> dict:
    """The key-policy statement CloudWatch Logs needs to encrypt this stack's log groups with the
    configured key ("Encrypt log data in CloudWatch Logs using AWS KMS": the regional logs
    principal, limited by the encryption context to the named log groups)."""
    arns = [f"arn:{partition}:logs:{region}:{account}:log-group:{group}" for group in log_group_names(name)]
    return {
        "Sid": f"CloudWatchLogsFor{name}",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        "Resource": "*",
        "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": arns}},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="print the KMS key-policy statement this stack's log groups need")
    parser.add_argument("name", help="the config's `name`")
    parser.add_argument("region")
    parser.add_argument("account")
    parser.add_argument("--partition", default="aws")
    args = parser.parse_args(argv)
    print(json.dumps(key_policy_statement(args.name, args.region, args.account, args.partition), indent=2))


if __name__ == "__main__":
    main()
