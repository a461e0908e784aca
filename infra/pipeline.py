"""The training-to-deployment pipeline: the source bundle asset, the SageMaker and state-machine
roles, the state machine (definition from infra/state_machine/), its logs and tracing, and the
failure alerts (EventBridge -> SNS)."""
from __future__ import annotations

import tempfile

from aws_cdk import Annotations, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import roles
from infra.config import Config
from infra.images import end_of_patch_warnings
from infra.log_groups import log_group, pipeline_log_group_name
from infra.source_bundle import build_source_bundle
from infra.state_machine import Deployment, build_definition
from infra.storage import Storage

#: Execution states whose change alerts the topic.
ALERT_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
_IMAGE_FIELDS = ("TrainingImage", "Image", "RuleEvaluatorImage")


def image_uris(value) -> set[str]:
    """Every container image a definition's tasks name (what the SageMaker role must pull)."""
    if isinstance(value, list):
        return set().union(*(image_uris(v) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = {v for k, v in value.items() if k in _IMAGE_FIELDS and isinstance(v, str)}
    return found.union(*(image_uris(v) for v in value.values()))


class Pipeline(Construct):
    """`state_machine`, `sagemaker_role`, `alerts` (SNS topic), `source_bundle` (asset)."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: Config, storage: Storage) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._storage = storage
        # A file asset keeps the tar.gz as is (a directory asset would be zipped, which the
        # training toolkit cannot open); s3_object_url is the s3:// form the toolkit accepts.
        self.source_bundle = s3_assets.Asset(
            self, "SourceBundle", path=str(build_source_bundle(tempfile.mkdtemp(prefix="imgclf-bundle-")))
        )
        # Built once with a stand-in role to learn which images the jobs pull, then for real.
        images = image_uris(build_definition(cfg, self._deployment(stack, "arn:aws:iam::000000000000:role/x")))
        for warning in end_of_patch_warnings(images, stack.region):
            Annotations.of(self).add_warning_v2("imgclf:image-end-of-patch", warning)
        self.sagemaker_role = roles.sagemaker_execution_role(
            self, "SageMakerRole", cfg=cfg, storage=storage, source_bundle=self.source_bundle, image_uris=images
        )
        definition = build_definition(cfg, self._deployment(stack, self.sagemaker_role.role_arn))
        role = roles.state_machine_role(self, "StateMachineRole", cfg=cfg, sagemaker_role=self.sagemaker_role, storage=storage)
        logs = log_group(self, "Logs", name=pipeline_log_group_name(cfg.name), key=storage.key)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{cfg.name}-pipeline",
            definition_body=sfn.DefinitionBody.from_string(stack.to_json_string(definition)),
            role=role,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=logs, level=sfn.LogLevel.ALL, include_execution_data=cfg.log_execution_data),
            timeout=Duration.seconds(definition["TimeoutSeconds"]),
        )
        self.alerts = self._alerts(cfg)

    def _deployment(self, stack: Stack, role_arn: str) -> Deployment:
        return Deployment(
            region=stack.region,
            role_arn=role_arn,
            bucket_name=self._storage.bucket.bucket_name,
            # s3_object_url's value, built so that the object's name stays concrete text: an isolated
            # job's code channel puts the bundle in the container under that name.
            source_bundle_uri=f"s3://{self.source_bundle.s3_bucket_name}/{self.source_bundle.s3_object_key}",
        )

    def _alerts(self, cfg: Config) -> sns.Topic:
        """FAILED / TIMED_OUT / ABORTED executions -> SNS. EventBridge can publish to an encrypted
        topic only with a customer-managed key whose policy lets events.amazonaws.com use it, and
        without an aws:SourceArn / aws:SourceAccount condition: the SNS developer guide ("Key
        management") says those are not supported for EventBridge-to-encrypted topics (every
        delivery would fail; awslabs/landing-zone-accelerator-on-aws#407)."""
        key = kms.Key(self, "AlertsKey", enable_key_rotation=True, description=f"{cfg.name}: pipeline alerts topic")
        rule_name = f"{cfg.name}-pipeline-alerts"
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                resources=["*"],
            )
        )
        topic = sns.Topic(self, "Alerts", display_name=f"{cfg.name} pipeline alerts", enforce_ssl=True)
        # The key is set on the L1 resource: with `master_key`, the SNS rule target would add a
        # second grant to events.amazonaws.com beside the one above.
        topic.node.default_child.kms_master_key_id = key.key_arn
        rule = events.Rule(
            self,
            "ExecutionFailed",
            rule_name=rule_name,
            description=f"{cfg.name}: pipeline execution failed, timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={"status": list(ALERT_STATUSES), "stateMachineArn": [self.state_machine.state_machine_arn]},
            ),
        )
        rule.add_target(
            targets.SnsTopic(
                topic,
                message=events.RuleTargetInput.from_text(
                    f"{cfg.name} pipeline execution {events.EventField.from_path('$.detail.name')} "
                    f"is {events.EventField.from_path('$.detail.status')}: "
                    f"{events.EventField.from_path('$.detail.cause')}"
                ),
            )
        )
        return topic
