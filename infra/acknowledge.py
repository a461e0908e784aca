"""cdk-nag (AwsSolutions) acknowledgements, made beside the resource each one excuses.

cdk-nag 3.x reports through CDK's own validations, so a finding is acknowledged with
`Validations.of(construct).acknowledge(...)` on the construct that holds it, with the reason that
holds for that one resource (aws-cdk-examples `python/lambda-nag`). A finding with a qualifier
(IAM4/IAM5) is acknowledged per qualifier, so every wildcard resource is named; these helpers
spell a resource the way cdk-nag prints it in the finding.
"""
from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def attribute(construct: IConstruct, name: str) -> str:
    """A resource attribute as cdk-nag prints it: `<LogicalId.Arn>`."""
    stack = Stack.of(construct)
    return f"<{stack.resolve(stack.get_logical_id(construct.node.default_child))}.{name}>"


def arn(stack: Stack, resource: str, name: str) -> str:
    """An ARN as cdk-nag prints it in a finding (account as <AWS::AccountId>); `resource` is
    `<service>:<resource type and separator>`, e.g. `logs:log-group:` or `sagemaker:model/`."""
    service, rest = resource.split(":", 1)
    return f"arn:{stack.partition}:{service}:{stack.region}:<AWS::AccountId>:{rest}{name}"
