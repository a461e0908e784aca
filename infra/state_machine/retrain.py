"""Retrain: the final training job (.sync) with the tuned hyperparameters, and, with managed
Debugger rules that block, the wait for the rule jobs' verdicts."""
from __future__ import annotations

from infra import sagemaker_requests
from infra.config import Config
from infra.gate_checks import RULE_FOUND_ISSUES
from infra.state_machine.deployment import Deployment, job_locations
from infra.state_machine.placeholders import bind_placeholders, dynamic, placeholder, states_format
from infra.state_machine.quotas import retrain_quota
from infra.state_machine.vocabulary import (
    POLL_SECONDS,
    RETRY_SDK,
    SDK,
    SYNC,
    call,
    fail_path,
    job_failure_states,
    quota_fail,
    sagemaker_task,
)


def training_request(cfg: Config, dep: Deployment) -> tuple[dict, dict]:
    """(task parameters, the static hyperparameters the retrain starts from)."""
    request = sagemaker_requests.training_job_request(cfg, job_locations(dep), placeholder("trainingjob"), {})
    static = request["HyperParameters"]
    dynamic(request, ("HyperParameters",), "$.final.hyperparameters")
    return bind_placeholders(request), static


def retrain_states(cfg: Config, parameters: dict, after: str) -> dict:
    """The whole Describe response lands at $.training, then only what the run reads stays there.
    FinalMetricDataList is optional (botocore), and a selector on a missing member would end the
    run in an uncatchable States.Runtime; without it, the gate finds no metric reported."""
    result = {"job_name.$": "$.training.TrainingJobName", "model_data.$": "$.training.ModelArtifacts.S3ModelArtifacts"}
    return {
        **sagemaker_task(
            "Retrain", SYNC.format("createTrainingJob"), parameters, "MetricsReported?",
            failed="RetrainFailed?", over_quota="RetrainOverQuota", ResultPath="$.training",
        ),
        "RetrainOverQuota": quota_fail("Retrain", retrain_quota(cfg), "TrainingFailed"),
        **job_failure_states("Retrain", "training job", "$.names.training_job", "TrainingJobStatus"),
        "MetricsReported?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.training.FinalMetricDataList", "IsPresent": True, "Next": "ReadTrainingResult"}],
            "Default": "ReadTrainingResultWithoutMetrics",
        },
        "ReadTrainingResult": {
            "Type": "Pass",
            "Parameters": {**result, "metrics.$": "$.training.FinalMetricDataList"},
            "ResultPath": "$.training",
            "Next": after,
        },
        "ReadTrainingResultWithoutMetrics": {
            "Type": "Pass",
            "Parameters": {**result, "metrics": []},
            "ResultPath": "$.training",
            "Next": after,
        },
    }


def managed_rule_states(after: str) -> dict:
    """createTrainingJob.sync returns before the rule jobs end: poll until none is InProgress or
    Stopping. IssuesFound blocks; Error and Stopped are no verdict, never a pass, and so is a
    response without rule evaluations (DebugRuleEvaluationStatuses is optional in botocore: read
    from the whole response, after a check, never by a selector)."""
    return {
        "WaitForRules": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "DescribeRules"},
        **call(
            "DescribeRules",
            SDK.format("sagemaker", "describeTrainingJob"),
            {"TrainingJobName.$": "$.training.job_name"},
            "RulesReported?",
            RETRY_SDK,
            "GateFailed",
            ResultPath="$.rules",
        ),
        "RulesReported?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.rules.DebugRuleEvaluationStatuses[0]", "IsPresent": True, "Next": "ReadRules"}],
            "Default": "NoRuleVerdicts",
        },
        "NoRuleVerdicts": fail_path(
            "States.Format('training job {} reports no rule evaluations: no verdict, so no deployment', $.training.job_name)",
            "GateFailed",
        ),
        "ReadRules": {
            "Type": "Pass",
            "Parameters": {
                "statuses.$": "$.rules.DebugRuleEvaluationStatuses[*].RuleEvaluationStatus",
                "rules.$": "$.rules.DebugRuleEvaluationStatuses",
            },
            "ResultPath": "$.rules",
            "Next": "SummariseRules",
        },
        "SummariseRules": {
            "Type": "Pass",
            "Parameters": {
                "rules.$": "$.rules.rules",
                "running.$": "States.ArrayContains($.rules.statuses, 'InProgress')",
                "stopping.$": "States.ArrayContains($.rules.statuses, 'Stopping')",
                "issues.$": "States.ArrayContains($.rules.statuses, 'IssuesFound')",
                "errors.$": "States.ArrayContains($.rules.statuses, 'Error')",
                "stopped.$": "States.ArrayContains($.rules.statuses, 'Stopped')",
            },
            "ResultPath": "$.rules",
            "Next": "RulesDone?",
        },
        "RulesDone?": {
            "Type": "Choice",
            "Choices": [
                {
                    "Or": [
                        {"Variable": "$.rules.running", "BooleanEquals": True},
                        {"Variable": "$.rules.stopping", "BooleanEquals": True},
                    ],
                    "Next": "WaitForRules",
                },
                {"Variable": "$.rules.issues", "BooleanEquals": True, "Next": "NameRuleWithIssues"},
                {"Variable": "$.rules.errors", "BooleanEquals": True, "Next": "NameRuleWithError"},
                {"Variable": "$.rules.stopped", "BooleanEquals": True, "Next": "NameStoppedRule"},
            ],
            "Default": after,
        },
        **_rule_verdict_states("NameRuleWithIssues", "IssuesFound", "RuleFoundIssues", RULE_FOUND_ISSUES),
        **_rule_verdict_states("NameRuleWithError", "Error", "RuleErrored", "rule {} ended in Error: no verdict, so no deployment"),
        **_rule_verdict_states("NameStoppedRule", "Stopped", "RuleStopped", "rule {} was stopped: no verdict, so no deployment"),
    }


def _rule_verdict_states(name_state: str, status: str, fail_state: str, cause: str) -> dict:
    """The first rule whose evaluation ended `status`, named in the Fail cause (a one-slot template)."""
    return {
        name_state: {
            "Type": "Pass",
            "Parameters": {"names.$": f"$.rules.rules[?(@.RuleEvaluationStatus == '{status}')].RuleConfigurationName"},
            "Next": fail_state,
        },
        fail_state: fail_path(states_format(cause, "States.ArrayGetItem($.names, 0)"), "GateFailed"),
    }
