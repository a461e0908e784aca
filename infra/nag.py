"""cdk-nag (AwsSolutions) acknowledgements, each with the reason that holds for that one resource.

cdk-nag 3.x uses CDK's own `Validations.of(construct).acknowledge(...)`; a finding with a
qualifier (IAM4/IAM5) is acknowledged per qualifier, so every wildcard resource is named here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

from infra.layout import DATA_CAPTURE_PREFIX, OUTPUT_PREFIX, endpoint_name

if TYPE_CHECKING:
    from infra.stack import ImgclfStack


def _ack(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def _logical_id(stack: Stack, construct: IConstruct) -> str:
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def _arn(stack: Stack, resource: str, name: str) -> str:
    """An ARN as cdk-nag prints it in a finding (account as <AWS::AccountId>)."""
    return f"arn:{stack.partition}:{resource.split(':')[0]}:{stack.region}:<AWS::AccountId>:{resource.split(':', 1)[1]}{name}"


def acknowledge(stack: "ImgclfStack") -> None:
    cfg = stack.cfg
    bucket = f"<{_logical_id(stack, stack.storage.bucket)}.Arn>"
    pipeline, front_door = stack.pipeline, stack.front_door

    sagemaker_role = pipeline.sagemaker_role
    _ack(sagemaker_role, f"AwsSolutions-IAM5[Resource::{bucket}/*]",
         "Jobs read their dataset channels from this one bucket; the dataset prefix is chosen per run "
         "(execution input dataset_prefix), so reads cover this bucket's objects. Writes are limited to runs/ and capture/.")
    _ack(sagemaker_role, f"AwsSolutions-IAM5[Resource::{bucket}/{OUTPUT_PREFIX}/*]",
         "Jobs write model.tar.gz, managed Debugger output and per-job checkpoints under runs/<job name>/; "
         "job names carry the run id, made at run time.")
    _ack(sagemaker_role, f"AwsSolutions-IAM5[Resource::{bucket}/{DATA_CAPTURE_PREFIX}/*]",
         "Endpoint data capture writes under capture/<endpoint>/<variant>/<date>/, keys chosen by SageMaker.")
    _ack(sagemaker_role, "AwsSolutions-IAM5[Resource::*]",
         "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; "
         "PutMetricData is limited to the /aws/sagemaker/* namespaces by condition.")
    _ack(sagemaker_role, f"AwsSolutions-IAM5[Resource::{_arn(stack, 'logs:log-group:', '/aws/sagemaker/*')}]",
         "SageMaker names the job and endpoint log groups /aws/sagemaker/TrainingJobs, /aws/sagemaker/ProcessingJobs, "
         "/aws/sagemaker/Endpoints/<name>; the role writes only there.")

    sm_role = pipeline.state_machine.role
    _ack(sm_role, "AwsSolutions-IAM5[Resource::*]",
         "X-Ray tracing and CloudWatch Logs delivery actions of the state machine have no resource-level permissions; "
         "sagemaker:ListTags on * is what the Step Functions developer guide grants for .sync SageMaker jobs"
         + ("; Application Auto Scaling scalable-target ARNs carry a generated id, so those calls are limited "
            "by the sagemaker service-namespace condition." if cfg.endpoint.mode == "realtime" else "."))
    for resource, what in (
        ("hyper-parameter-tuning-job", "one tuning job per run"),
        ("training-job", "the tuning trials (named by SageMaker after their tuning job) and the final retrain"),
        ("model", "one model per run"),
        ("endpoint-config", "one endpoint config per run (an endpoint update needs a new one)"),
    ):
        _ack(sm_role, f"AwsSolutions-IAM5[Resource::{_arn(stack, 'sagemaker:' + resource + '/', cfg.name + '-*')}]",
             f"Names are <{cfg.name}>-<run id>-..., the run id made at run time (8 hex digits): {what}.")
    if cfg.endpoint.mode == "realtime":
        _ack(sm_role, f"AwsSolutions-IAM5[Resource::{_arn(stack, 'cloudwatch:alarm:', f'TargetTracking-endpoint/{endpoint_name(cfg)}/*')}]",
             "Target tracking creates its alarms as TargetTracking-endpoint/<endpoint>/... with generated suffixes.")

    _ack(front_door.function.role, "AwsSolutions-IAM5[Resource::*]",
         "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) have no resource-level permissions.")

    api = front_door.api
    _ack(api.node.find_child("CloudWatchRole"),
         "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
         "API Gateway's account-level logging role; AWS's AmazonAPIGatewayPushToCloudWatchLogs is the documented policy "
         "for it, and access logging cannot work without it.")
    _ack(api.deployment_stage, "AwsSolutions-APIG3",
         "No WAF: a web ACL costs a monthly fee, and WAF inspects only the first KBs of a body, so it cannot guard "
         "multi-MB images. Throttling (stage + usage plan), auth and the Lambda's MAX_BODY_BYTES guard the API.")
    for method in api.methods:
        if method.http_method == "OPTIONS":
            reason = "CORS preflight: browsers send OPTIONS without credentials, so it must answer unauthenticated."
            _ack(method, "AwsSolutions-APIG4", reason)
        elif cfg.api.auth == "api_key":
            reason = ("Auth is an API key with a usage plan (api.auth=api_key): machine callers, throttle and daily quota. "
                      "Set api.auth=iam for SigV4.")
            _ack(method, "AwsSolutions-APIG4", reason)
        _ack(method, "AwsSolutions-COG4",
             "Callers are programs (the imgclf CLI, services) using an API key or SigV4, not users of a Cognito pool.")
