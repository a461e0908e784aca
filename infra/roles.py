"""The three IAM roles, each with only what its principal does. No managed *FullAccess policies,
no wildcard actions; a resource is `*` only where the action has no resource-level permissions.

- SageMaker execution role: training jobs, tuning trials, rule jobs and the endpoint's model.
- State-machine role: create/describe/stop this stack's jobs and endpoint, pass the SageMaker
  role to SageMaker only, the EventBridge rules `.sync` relies on, endpoint auto scaling.
- Front-door role (Lambda): invoke and describe the one endpoint.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra import endpoint_scaling
from infra.acknowledge import acknowledge, arn, attribute
from infra.config import Config
from infra.layout import DATA_CAPTURE_PREFIX, EVIDENCE_FILE, OUTPUT_PREFIX, endpoint_name, model_package_group_name
from infra.storage import Storage

_ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)")
#: The managed rules `.sync` integrations create in the account (Step Functions developer guide,
#: "IAM policies for SageMaker"): they forward job state changes to Step Functions.
SYNC_EVENT_RULES = (
    "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "StepFunctionsGetEventsForSageMakerTuningJobsRule",
)


def ecr_repository_arns(stack: Stack, image_uris: Iterable[str]) -> list[str]:
    """Repository ARNs of the ECR images the jobs pull (AWS's Deep Learning Containers live in
    AWS-owned accounts, one per region); non-ECR images are pulled without IAM."""
    arns = set()
    for uri in image_uris:
        match = _ECR_IMAGE.match(uri)
        if match:
            account, region, repository = match.groups()
            arns.add(f"arn:{stack.partition}:ecr:{region}:{account}:repository/{repository}")
    return sorted(arns)


def _sagemaker_arn(stack: Stack, resource: str, name: str) -> str:
    return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)


def _kms_statement(key: kms.IKey, *actions: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=list(actions), resources=[key.key_arn])


def _kms_grant_statement(key: kms.IKey) -> iam.PolicyStatement:
    """CreateGrant, only for AWS services (encrypted training volumes and endpoint storage)."""
    return iam.PolicyStatement(
        actions=["kms:CreateGrant"],
        resources=[key.key_arn],
        conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
    )


def sagemaker_execution_role(
    scope: Construct,
    construct_id: str,
    *,
    cfg: Config,
    storage: Storage,
    source_bundle: s3_assets.Asset,
    image_uris: Iterable[str],
) -> iam.Role:
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description=f"{cfg.name}: SageMaker training, tuning, rule jobs and the endpoint model",
    )
    bucket = storage.bucket
    writable = [storage.object_arn(f"{OUTPUT_PREFIX}/"), storage.object_arn(f"{DATA_CAPTURE_PREFIX}/")]
    statements = [
        iam.PolicyStatement(sid="ListDataBucket", actions=["s3:ListBucket", "s3:GetBucketLocation"], resources=[bucket.bucket_arn]),
        iam.PolicyStatement(sid="ReadDataAndArtifacts", actions=["s3:GetObject"], resources=[storage.object_arn("")]),
        iam.PolicyStatement(
            sid="WriteRunOutput",
            actions=["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            resources=writable,
        ),
        iam.PolicyStatement(
            sid="ReadSourceBundle",
            actions=["s3:GetObject"],
            resources=[source_bundle.bucket.arn_for_objects(source_bundle.s3_object_key)],
        ),
        iam.PolicyStatement(
            sid="PullImages",
            actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            resources=ecr_repository_arns(stack, image_uris),
        ),
        iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        iam.PolicyStatement(
            sid="JobLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[stack.format_arn(service="logs", resource="log-group", resource_name="/aws/sagemaker/*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
        ),
        iam.PolicyStatement(
            sid="JobMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        ),
    ]
    statements += _pretrained_weights_statements(cfg, storage)
    if storage.key:
        statements += [
            _kms_statement(storage.key, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"),
            _kms_grant_statement(storage.key),
        ]
    for statement in statements:
        role.add_to_policy(statement)
    _acknowledge_sagemaker_role(role, storage)
    return role


def _pretrained_weights_statements(cfg: Config, storage: Storage) -> list[iam.PolicyStatement]:
    """Read on exactly the configured weights object, which may lie in any bucket (the pipeline
    bucket's name is made at deploy, so it cannot be told apart at synth; there the grant repeats
    one the role has). The channel is an S3Prefix, which SageMaker lists first: the listing is
    allowed with that one key as prefix."""
    if cfg.training.pretrained != "channel" or not cfg.training.pretrained_s3_uri:
        return []
    bucket, key = cfg.training.pretrained_s3_uri.removeprefix("s3://").split("/", 1)
    bucket_arn = Stack.of(storage).format_arn(service="s3", region="", account="", resource=bucket)
    return [
        iam.PolicyStatement(
            sid="ListPretrainedWeights",
            actions=["s3:ListBucket"],
            resources=[bucket_arn],
            conditions={"StringEquals": {"s3:prefix": key}},
        ),
        iam.PolicyStatement(sid="ReadPretrainedWeights", actions=["s3:GetObject"], resources=[f"{bucket_arn}/{key}"]),
    ]


def _acknowledge_sagemaker_role(role: iam.Role, storage: Storage) -> None:
    bucket = attribute(storage.bucket, "Arn")
    acknowledge(role, f"AwsSolutions-IAM5[Resource::{bucket}/*]",
                "Jobs read their dataset channels from this one bucket; the dataset prefix is chosen per run "
                "(execution input dataset_prefix), so reads cover this bucket's objects. Writes are limited to runs/ and capture/.")
    acknowledge(role, f"AwsSolutions-IAM5[Resource::{bucket}/{OUTPUT_PREFIX}/*]",
                "Jobs write model.tar.gz, managed Debugger output, per-job checkpoints and the retrain's test evaluation "
                "(runs/<job name>/evidence/evaluation.json) under runs/; "
                "job names carry the run id, made at run time.")
    acknowledge(role, f"AwsSolutions-IAM5[Resource::{bucket}/{DATA_CAPTURE_PREFIX}/*]",
                "Endpoint data capture writes under capture/<endpoint>/<variant>/<date>/, keys chosen by SageMaker.")
    acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; "
                "PutMetricData is limited to the /aws/sagemaker/* namespaces by condition.")
    acknowledge(role, f"AwsSolutions-IAM5[Resource::{arn(Stack.of(role), 'logs:log-group:', '/aws/sagemaker/*')}]",
                "SageMaker names the job and endpoint log groups /aws/sagemaker/TrainingJobs, /aws/sagemaker/ProcessingJobs, "
                "/aws/sagemaker/Endpoints/<name>; the role writes only there.")


def _release_statements(stack: Stack, cfg: Config, evidence_objects: str) -> list[iam.PolicyStatement]:
    """Register each gated model in the stack's one model package group, read a version back to
    deploy it, tag the endpoint with the version it serves, and let UpdateEndpoint's automatic
    rollback read its alarms (docs/release.md)."""
    from infra.registry import rollback_alarm_names

    group = model_package_group_name(cfg)
    return [
        iam.PolicyStatement(sid="WriteEvidence", actions=["s3:PutObject"], resources=[evidence_objects]),
        iam.PolicyStatement(
            sid="RegisterVersions",
            actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
            resources=[_sagemaker_arn(stack, "model-package-group", group), _sagemaker_arn(stack, "model-package", f"{group}/*")],
        ),
        iam.PolicyStatement(
            sid="RollbackAlarms",
            actions=["cloudwatch:DescribeAlarms"],
            resources=[stack.format_arn(service="cloudwatch", resource="alarm", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME)
                       for name in rollback_alarm_names(cfg)],
        ),
    ]


def state_machine_role(
    scope: Construct, construct_id: str, *, cfg: Config, sagemaker_role: iam.IRole, storage: Storage,
) -> iam.Role:
    key = storage.key
    stack = Stack.of(scope)
    # cfg.name has no dash, so `<name>-*` cannot match another stack's `<name>-<suffix>-...` names.
    prefix = f"{cfg.name}-*"
    endpoint = endpoint_name(cfg)
    endpoint_arn = _sagemaker_arn(stack, "endpoint", endpoint)
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
        description=f"{cfg.name}: the pipeline state machine",
    )
    statements = [
        iam.PolicyStatement(
            sid="TuningJobs",
            actions=[
                "sagemaker:CreateHyperParameterTuningJob",
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:StopHyperParameterTuningJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                "sagemaker:AddTags",
            ],
            resources=[_sagemaker_arn(stack, "hyper-parameter-tuning-job", prefix)],
        ),
        iam.PolicyStatement(
            sid="TrainingJobs",
            actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
            resources=[_sagemaker_arn(stack, "training-job", prefix)],
        ),
        iam.PolicyStatement(
            sid="ModelsAndConfigs",
            actions=["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:AddTags"],
            resources=[_sagemaker_arn(stack, "model", prefix), _sagemaker_arn(stack, "endpoint-config", prefix)],
        ),
        iam.PolicyStatement(
            sid="Endpoint",
            actions=["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:AddTags"],
            resources=[endpoint_arn, _sagemaker_arn(stack, "endpoint-config", prefix)],
        ),
        iam.PolicyStatement(
            sid="PassSageMakerRole",
            actions=["iam:PassRole"],
            resources=[sagemaker_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        # Step Functions developer guide, "IAM policies for SageMaker", Run a Job (.sync): the
        # integration reads the job's tags; AWS's own policy grants ListTags on "*".
        iam.PolicyStatement(sid="SyncJobTags", actions=["sagemaker:ListTags"], resources=["*"]),
        iam.PolicyStatement(
            sid="SyncEventRules",
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[stack.format_arn(service="events", resource="rule", resource_name=name) for name in SYNC_EVENT_RULES],
        ),
    ]
    statements += _release_statements(stack, cfg, storage.object_arn(f"{OUTPUT_PREFIX}/*/{EVIDENCE_FILE}"))
    if cfg.endpoint.mode == "realtime":
        statements += _scaling_statements(stack, endpoint, endpoint_arn)
    if key:
        # GenerateDataKey: the run's evidence file, written to the encrypted bucket.
        statements += [_kms_statement(key, "kms:DescribeKey", "kms:GenerateDataKey"), _kms_grant_statement(key)]
    for statement in statements:
        role.add_to_policy(statement)
    _acknowledge_state_machine_role(role, cfg, storage)
    return role


def _acknowledge_state_machine_role(role: iam.Role, cfg: Config, storage: Storage) -> None:
    stack = Stack.of(role)
    realtime = cfg.endpoint.mode == "realtime"
    acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                "X-Ray tracing and CloudWatch Logs delivery actions of the state machine have no resource-level permissions; "
                "sagemaker:ListTags on * is what the Step Functions developer guide grants for .sync SageMaker jobs"
                + ("; Application Auto Scaling scalable-target ARNs carry a generated id, so those calls are limited "
                   "by the sagemaker service-namespace condition." if realtime else "."))
    for resource, what in (
        ("hyper-parameter-tuning-job", "one tuning job per run"),
        ("training-job", "the tuning trials (named by SageMaker after their tuning job) and the final retrain"),
        ("model", "one model per run"),
        ("endpoint-config", "one endpoint config per run (an endpoint update needs a new one)"),
    ):
        acknowledge(role, f"AwsSolutions-IAM5[Resource::{arn(stack, 'sagemaker:' + resource + '/', cfg.name + '-*')}]",
                    f"Names are <{cfg.name}>-<run id>-..., the run id made at run time (8 hex digits): {what}.")
    group = model_package_group_name(cfg)
    acknowledge(role, f"AwsSolutions-IAM5[Resource::{arn(stack, 'sagemaker:model-package/', group + '/*')}]",
                f"Versions of the stack's one model package group {group} are numbered by SageMaker at registration.")
    acknowledge(role, f"AwsSolutions-IAM5[Resource::{attribute(storage.bucket, 'Arn')}/{OUTPUT_PREFIX}/*/{EVIDENCE_FILE}*]",
                "Each run writes one evidence file under runs/<training job>/, the job named at run time.")
    if realtime:
        alarms = arn(stack, "cloudwatch:alarm:", f"TargetTracking-endpoint/{endpoint_name(cfg)}/*")
        acknowledge(role, f"AwsSolutions-IAM5[Resource::{alarms}]",
                    "Target tracking creates its alarms as TargetTracking-endpoint/<endpoint>/... with generated suffixes.")


def _scaling_statements(stack: Stack, endpoint: str, endpoint_arn: str) -> list[iam.PolicyStatement]:
    """What registering target tracking on the endpoint takes (SageMaker developer guide,
    "Prerequisites" of endpoint auto scaling): the Application Auto Scaling calls, the endpoint
    reads and capacity updates it makes on the caller's behalf, its alarms, its service-linked role."""
    return [
        iam.PolicyStatement(
            sid="EndpointScaling",
            actions=[
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            # Scalable-target ARNs carry a generated id, unknown before registration.
            resources=["*"],
            conditions={"StringEquals": {"application-autoscaling:service-namespace": endpoint_scaling.SERVICE_NAMESPACE}},
        ),
        iam.PolicyStatement(
            sid="ScalingEndpointAccess",
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:UpdateEndpointWeightsAndCapacities"],
            resources=[endpoint_arn],
        ),
        iam.PolicyStatement(
            sid="ScalingAlarms",
            actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            resources=[stack.format_arn(service="cloudwatch", resource="alarm", resource_name=f"TargetTracking-endpoint/{endpoint}/*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
        ),
        iam.PolicyStatement(
            sid="ScalingServiceLinkedRole",
            actions=["iam:CreateServiceLinkedRole"],
            resources=[
                stack.format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant",
                )
            ],
            conditions={"StringLike": {"iam:AWSServiceName": endpoint_scaling.SERVICE_LINKED_ROLE_SERVICE}},
        ),
    ]


def front_door_role(scope: Construct, construct_id: str, *, cfg: Config) -> iam.Role:
    """The Lambda's role: InvokeEndpoint (POST /predict) and DescribeEndpoint (GET /health) on the
    one endpoint. Its log group grant is added where the log group is made (infra/api.py)."""
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{cfg.name}: API front door Lambda",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="InvokeTheEndpoint",
            actions=["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"],
            resources=[_sagemaker_arn(stack, "endpoint", endpoint_name(cfg))],
        )
    )
    return role
