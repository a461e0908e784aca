"""The release plumbing of the stack: the model package group every gated run registers in, the
endpoint alarms a deployment rolls back on, and (manual approval) the EventBridge rule that deploys
a version once it is approved (docs/release.md)."""
from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import registry
from infra.config import Config
from infra.layout import MODEL_PACKAGE, endpoint_name, rollback_alarm_name
from infra.sagemaker_requests import VARIANT_NAME

#: ModelLatency is reported in microseconds.
_MICROSECONDS_PER_MS = 1000


class Release(Construct):
    """`group` (the model package group), `alarms` (endpoint 5XX and latency), `approval_rule` (or None)."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: Config, state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, construct_id)
        self.cfg = cfg
        request = registry.model_package_group_request(cfg)
        self.group = sagemaker.CfnModelPackageGroup(
            self, "Models",
            model_package_group_name=request["ModelPackageGroupName"],
            model_package_group_description=request["ModelPackageGroupDescription"],
        )
        self.alarms = [
            self._alarm("Invocation5XXErrors", "Sum", 0, "the endpoint answered with a 5XX"),
            self._alarm("ModelLatency", "Average", cfg.release.max_model_latency_ms * _MICROSECONDS_PER_MS,
                        "the model's average latency is above release.max_model_latency_ms"),
        ]
        # auto: the run that registers an Approved version deploys it itself; a rule would deploy it twice.
        self.approval_rule = self._approval_rule(state_machine) if cfg.release.approval == "manual" else None

    def _alarm(self, metric: str, statistic: str, threshold: float, what: str) -> cw.Alarm:
        """Two of two one-minute periods: a deployment's bake watches these (release.bake_minutes)."""
        return cw.Alarm(
            self, metric, alarm_name=rollback_alarm_name(self.cfg, metric),
            alarm_description=f"{self.cfg.name}: {what}; a deployment in progress rolls back (docs/release.md)",
            metric=cw.Metric(
                namespace="AWS/SageMaker", metric_name=metric, statistic=statistic, period=Duration.minutes(1),
                dimensions_map={"EndpointName": endpoint_name(self.cfg), "VariantName": VARIANT_NAME},
            ),
            threshold=threshold, evaluation_periods=2, datapoints_to_alarm=2,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    def _approval_rule(self, state_machine: sfn.IStateMachine) -> events.Rule:
        """A version of this group becoming Approved starts the pipeline with an input naming it:
        the run deploys it and trains nothing."""
        pattern = registry.approval_event_pattern(self.cfg)
        rule = events.Rule(
            self, "DeployOnApproval", rule_name=f"{self.cfg.name}-deploy-on-approval",
            description=f"{self.cfg.name}: deploy a model package version when it is approved",
            event_pattern=events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]),
        )
        rule.add_target(targets.SfnStateMachine(
            state_machine,
            input=events.RuleTargetInput.from_object({MODEL_PACKAGE: events.EventField.from_path("$.detail.ModelPackageArn")}),
        ))
        rule.node.add_dependency(self.group)
        return rule
