"""The served model's dashboard and alarms, from the front door's metrics (imgclf_serving/frontdoor/
prediction_metrics.py), and the optional retrain when the model's confidence drops.

Alarms go to the pipeline's alerts topic, for this stack's alarms only (`<name>-frontdoor-*`):
- its access policy is the stack's own (it replaces SNS's default one), so it must allow
  cloudwatch.amazonaws.com to publish (AWS knowledge center "cloudwatch-receive-sns-for-alarm-trigger");
- its key is customer-managed (an AWS-managed alias/aws/sns key cannot let alarms in), so the key
  policy must let cloudwatch.amazonaws.com `kms:Decrypt` and `kms:GenerateDataKey*` (AWS knowledge
  center "cloudwatch-configure-alarm-sns"; SNS developer guide, "Key management").
"""
from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from imgclf_serving.frontdoor import prediction_metrics as pm
from imgclf_serving.frontdoor.error_codes import ANSWERS
from infra.config import Config
from infra.frontdoor_environment import METRICS_NAMESPACE, frontdoor_environment

#: The front door's own failures (5xx): what the error-rate alarm counts. 4xx are callers' faults.
SERVER_ERROR_CODES = tuple(sorted({a.error.code for a in ANSWERS if a.error.status >= 500}))
FAST = Duration.minutes(5)
SLOW = Duration.minutes(15)


def alarm_name_prefix(cfg: Config) -> str:
    return f"{cfg.name}-frontdoor-"


class Monitoring(Construct):
    """`dashboard`, `error_rate`, `latency`, `confidence` (alarms) and `retrain_rule` (or None)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, cfg: Config, alerts: sns.ITopic, alerts_key: kms.Key,
        state_machine: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cfg = cfg
        self.service = frontdoor_environment(cfg)["POWERTOOLS_SERVICE_NAME"]
        self._let_alarms_publish(alerts, alerts_key)
        self.error_rate = self._error_rate_alarm()
        self.latency = self._alarm(
            "Latency", "latency-p99", "p99 latency of the front door above the configured limit",
            self._metric(pm.LATENCY, "p99", FAST), cfg.monitoring.alarm_latency_p99_ms, 3,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self.confidence = self._alarm(
            "Confidence", "low-confidence", "mean top-1 confidence below the configured floor: the inputs may have drifted",
            self._metric(pm.CONFIDENCE, "Average", SLOW), cfg.monitoring.alarm_min_confidence, 6,
            cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        )
        action = cw_actions.SnsAction(alerts)
        for alarm in (self.error_rate, self.latency, self.confidence):
            alarm.add_alarm_action(action)
        self.retrain_rule = self._retrain_rule(state_machine) if cfg.monitoring.retrain_on_alarm else None
        self.dashboard = self._dashboard()

    def _metric(self, name: str, statistic: str, period: Duration, **dimensions: str) -> cw.Metric:
        return cw.Metric(
            namespace=METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=period,
            dimensions_map={pm.SERVICE: self.service, **dimensions},
        )

    def _alarm(self, construct_id: str, suffix: str, description: str, metric: cw.IMetric, threshold: float,
               periods: int, comparison: cw.ComparisonOperator) -> cw.Alarm:
        return cw.Alarm(
            self, construct_id, alarm_name=f"{alarm_name_prefix(self.cfg)}{suffix}",
            alarm_description=f"{self.cfg.name}: {description} (docs/monitoring.md)",
            metric=metric, threshold=threshold, evaluation_periods=periods, datapoints_to_alarm=periods,
            comparison_operator=comparison,
            # No traffic is no evidence of a fault, nor of drift.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    def _error_rate_alarm(self) -> cw.Alarm:
        """5xx answers as a percentage of requests (the Latency sample count: one per invocation)."""
        errors = {f"e{i}": self._metric(pm.ERRORS, "Sum", FAST, **{pm.ERROR_CODE: code})
                  for i, code in enumerate(SERVER_ERROR_CODES)}
        requests = self._metric(pm.LATENCY, "SampleCount", FAST)
        rate = cw.MathExpression(
            expression=f"100 * ({' + '.join(f'FILL({k}, 0)' for k in errors)}) / requests",
            using_metrics={**errors, "requests": requests}, label="5xx error rate (%)", period=FAST,
        )
        return self._alarm(
            "ErrorRate", "error-rate", "share of requests the front door answered with a 5xx above the configured limit",
            rate, self.cfg.monitoring.alarm_error_rate_percent, 3, cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    def _let_alarms_publish(self, topic: sns.ITopic, key: kms.Key) -> None:
        stack = Stack.of(self)
        from_these_alarms = {"ArnLike": {"aws:SourceArn": stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name=f"{alarm_name_prefix(self.cfg)}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME)}}
        alarms = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AlarmsPublish", actions=["sns:Publish"], principals=[alarms], resources=[topic.topic_arn],
            conditions=from_these_alarms,
        ))
        key.add_to_resource_policy(iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], principals=[alarms], resources=["*"],
            conditions=from_these_alarms,
        ))

    def _retrain_rule(self, state_machine: sfn.IStateMachine) -> events.Rule:
        """The confidence alarm going into ALARM starts the pipeline with an empty input: the
        config's dataset and settings, which the retrain, the gate and the deployment then use."""
        rule = events.Rule(
            self, "RetrainOnLowConfidence", rule_name=f"{self.cfg.name}-retrain-on-low-confidence",
            description=f"{self.cfg.name}: start the pipeline when the confidence alarm goes off",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"], detail_type=["CloudWatch Alarm State Change"],
                resources=[self.confidence.alarm_arn], detail={"state": {"value": ["ALARM"]}},
            ),
        )
        rule.add_target(targets.SfnStateMachine(state_machine, input=events.RuleTargetInput.from_object({})))
        return rule

    def _dashboard(self) -> cw.Dashboard:
        ns, svc = METRICS_NAMESPACE, self.service

        def search(dimensions: str, name: str, statistic: str, label: str) -> cw.MathExpression:
            return cw.MathExpression(
                expression=f"SEARCH('{{{ns},{dimensions}}} MetricName=\"{name}\" {pm.SERVICE}=\"{svc}\"', '{statistic}', 300)",
                using_metrics={}, label=label, period=FAST,
            )

        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{self.cfg.name}-model")
        dashboard.add_widgets(
            cw.GraphWidget(title="Requests", left=[
                self._metric(pm.LATENCY, "SampleCount", FAST).with_(label="requests"),
                self._metric(pm.PREDICTIONS, "Sum", FAST).with_(label="predictions"),
            ]),
            cw.GraphWidget(title="Errors by code", left=[search(f"{pm.SERVICE},{pm.ERROR_CODE}", pm.ERRORS, "Sum", "")],
                           stacked=True),
            cw.GraphWidget(title="Latency (ms)", left=[
                self._metric(pm.LATENCY, stat, FAST).with_(label=stat) for stat in ("p50", "p99")
            ], left_annotations=[cw.HorizontalAnnotation(value=self.cfg.monitoring.alarm_latency_p99_ms, label="alarm")]),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="Top-1 confidence (percentiles)", left=[
                self._metric(pm.CONFIDENCE, stat, SLOW).with_(label=stat) for stat in ("p10", "p50", "p90")
            ], left_y_axis=cw.YAxisProps(min=0, max=1),
                left_annotations=[cw.HorizontalAnnotation(value=self.cfg.monitoring.alarm_min_confidence, label="alarm")]),
            cw.GraphWidget(title="Confidence by model version",
                           left=[search(f"{pm.SERVICE},{pm.MODEL_VERSION}", pm.CONFIDENCE, "Average", "")],
                           left_y_axis=cw.YAxisProps(min=0, max=1)),
            cw.GraphWidget(title="Entropy of the scores (nats)", left=[self._metric(pm.ENTROPY, "Average", SLOW)]),
            cw.GraphWidget(title="Class mix", left=[search(f"{pm.SERVICE},{pm.CLASS}", pm.CLASS_PREDICTED, "Sum", "")],
                           stacked=True),
        )
        dashboard.add_widgets(cw.AlarmStatusWidget(alarms=[self.error_rate, self.latency, self.confidence], title="Alarms"))
        return dashboard
