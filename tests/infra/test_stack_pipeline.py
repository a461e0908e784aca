"""The state machine resource, its logs, tracing and failure alerts, and the stack outputs."""
from __future__ import annotations

import json

from stack_samples import ACCOUNT, REGION, ROOT

from infra.log_groups import key_policy_statement


def test_the_state_machine_logs_everything_to_its_log_group(default):
    logging = default.only("AWS::StepFunctions::StateMachine")["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    log_group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert default.template["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"


def test_the_state_machine_is_traced(default):
    assert default.only("AWS::StepFunctions::StateMachine")["Properties"]["TracingConfiguration"] == {"Enabled": True}


def test_failed_timed_out_and_aborted_runs_alert_the_topic(default):
    rule = default.only("AWS::Events::Rule")["Properties"]
    assert rule["EventPattern"]["detail"]["status"] == ["FAILED", "TIMED_OUT", "ABORTED"]
    (topic_id,) = default.resources("AWS::SNS::Topic")
    assert rule["Targets"][0]["Arn"] == {"Ref": topic_id}


def test_the_alerts_topic_is_kms_encrypted_and_ssl_only(default):
    topic = default.only("AWS::SNS::Topic")["Properties"]
    assert topic["KmsMasterKeyId"]["Fn::GetAtt"][1] == "Arn"
    policy = json.dumps(default.only("AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"])
    assert '"aws:SecureTransport": "false"' in policy


def test_the_alerts_key_lets_eventbridge_publish(default):
    key = default.only("AWS::KMS::Key")["Properties"]
    assert key["EnableKeyRotation"] is True
    assert any(
        s.get("Principal") == {"Service": "events.amazonaws.com"} for s in key["KeyPolicy"]["Statement"]
    )


def test_the_stack_outputs_what_the_cli_needs(default):
    assert {"ApiUrl", "PageUrl", "StateMachineArn", "BucketName", "EndpointName", "ApiKeyId"} <= set(default.template["Outputs"])
    assert default.template["Outputs"]["EndpointName"]["Value"] == "imgclf-endpoint"


def test_no_api_key_output_with_iam_auth(realtime):
    assert "ApiKeyId" not in realtime.template["Outputs"]


def test_the_endpoint_is_created_by_the_state_machine_not_by_cloudformation(realtime):
    assert not realtime.resources("AWS::SageMaker::Endpoint")
    assert not realtime.resources("AWS::ApplicationAutoScaling::ScalableTarget")
    states = realtime.definition["States"]
    assert states["PutScalingPolicy"]["Parameters"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }


def test_the_alerts_keys_grant_to_eventbridge_has_no_source_condition_which_sns_does_not_support(default):
    """SNS developer guide, "Key management": aws:SourceArn / aws:SourceAccount in the key policy are
    not supported for EventBridge-to-encrypted topics; with one, every alert would be dropped."""
    key = default.only("AWS::KMS::Key")["Properties"]
    (statement,) = [s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert "Condition" not in statement


def test_the_state_machine_timeout_covers_every_job_at_its_stopping_condition(default):
    # Defaults: spot, 7200 s max wait for all of a job's attempts together; 4 trials 2 at a time
    # -> 2 waves, plus the retrain; plus an hour for rules and deployment: 7 h.
    assert default.definition["TimeoutSeconds"] == 7200 * (2 + 1) + 3600 == 7 * 3600


def _state_machine_log_group(synth) -> dict:
    logging = synth.only("AWS::StepFunctions::StateMachine")["Properties"]["LoggingConfiguration"]
    return synth.template["Resources"][logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]]


def test_the_state_machines_log_group_is_a_vended_logs_group(default):
    # Step Functions developer guide: outside /aws/vendedlogs/, each log group is added to the
    # account's CloudWatch Logs resource policy, whose 5,120-character limit then fails deploys.
    name = _state_machine_log_group(default)["Properties"]["LogGroupName"]
    assert name.startswith("/aws/vendedlogs/states/") and name.endswith(f"{default.cfg.name}-pipeline")


def test_every_log_group_is_encrypted_with_the_configured_key(realtime):
    groups = realtime.resources("AWS::Logs::LogGroup").values()
    assert len(groups) == 3
    assert all(g["Properties"]["KmsKeyId"] == realtime.cfg.kms_key_arn for g in groups)


def test_without_a_key_log_groups_use_cloudwatch_logs_own_encryption(default):
    assert not [g for g in default.resources("AWS::Logs::LogGroup").values() if "KmsKeyId" in g["Properties"]]


def test_the_documented_key_policy_statement_covers_exactly_the_stacks_log_groups(realtime):
    statement = key_policy_statement(realtime.cfg.name, REGION, ACCOUNT)
    allowed = statement["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    names = {g["Properties"]["LogGroupName"] for g in realtime.resources("AWS::Logs::LogGroup").values()}
    assert sorted(allowed) == sorted(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}" for name in names)
    assert statement["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}
    documented = json.dumps(key_policy_statement("<name>", "<region>", "<account-id>"), indent=2)
    assert documented in (ROOT / "docs" / "infrastructure.md").read_text()
