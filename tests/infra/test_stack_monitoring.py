"""The served model's dashboard and alarms (infra/monitoring.py) and the front door's capture
permissions (infra/api.py), in the synthesized templates (cdk-nag and cfn-lint run over the same
variants in test_nag.py and test_cfn_lint.py)."""
from __future__ import annotations

import json
from fnmatch import fnmatch

from stack_samples import ACCOUNT, REGION, resolve_cfn

from imgclf_serving.frontdoor import prediction_metrics as pm
from infra.layout import FRONTDOOR_CAPTURE_PREFIX
from infra.monitoring import SERVER_ERROR_CODES


def _alarms(synth) -> dict[str, dict]:
    """The front door's alarms (the endpoint's rollback alarms are tests/infra/test_release_requests.py's)."""
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()
            if a["Properties"]["AlarmName"].startswith(f"{synth.cfg.name}-frontdoor-")}


def _statements(synth, sid: str) -> list[dict]:
    return [s for p in synth.resources("AWS::IAM::Policy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == sid]


def test_three_alarms_watch_the_front_door_and_tell_the_alerts_topic(synthesize):
    synth = synthesize("default")
    alarms = _alarms(synth)
    assert set(alarms) == {"imgclf-frontdoor-error-rate", "imgclf-frontdoor-latency-p99", "imgclf-frontdoor-low-confidence"}
    (topic,) = synth.resources("AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic}]
        assert alarm["TreatMissingData"] == "notBreaching"
    confidence = alarms["imgclf-frontdoor-low-confidence"]
    assert confidence["MetricName"] == pm.CONFIDENCE and confidence["ComparisonOperator"] == "LessThanThreshold"
    assert confidence["Threshold"] == synth.cfg.monitoring.alarm_min_confidence
    assert confidence["Dimensions"] == [{"Name": "service", "Value": "imgclf-frontdoor"}]
    latency = alarms["imgclf-frontdoor-latency-p99"]
    assert latency["ExtendedStatistic"] == "p99" and latency["Threshold"] == synth.cfg.monitoring.alarm_latency_p99_ms


def test_the_error_rate_alarm_counts_every_5xx_code_over_all_requests(synthesize):
    alarm = _alarms(synthesize("default"))["imgclf-frontdoor-error-rate"]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    codes = {d["Value"] for q in queries.values() if "MetricStat" in q
             for d in q["MetricStat"]["Metric"]["Dimensions"] if d["Name"] == "code"}
    assert codes == set(SERVER_ERROR_CODES) == {"internal_error", "model_error", "endpoint_unavailable", "endpoint_timeout"}
    (expression,) = [q for q in queries.values() if "Expression" in q]
    assert expression["ReturnData"] is True and expression["Expression"].endswith("/ requests")


def _cloudwatch_statements(policies) -> list[dict]:
    return [s for policy in policies for s in policy["Statement"]
            if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]


def test_this_stacks_alarms_only_may_publish_to_the_topic_and_use_its_key(synthesize):
    """The stack's topic policy replaces SNS's default one, so the alarms need their own Allow; the
    customer-managed key needs kms:Decrypt and kms:GenerateDataKey* for them (docs/monitoring.md)."""
    synth = synthesize("default")
    (publish,) = _cloudwatch_statements(p["Properties"]["PolicyDocument"] for p in synth.resources("AWS::SNS::TopicPolicy").values())
    (topic,) = synth.resources("AWS::SNS::Topic")
    assert (publish["Effect"], publish["Action"], publish["Resource"]) == ("Allow", "sns:Publish", {"Ref": topic})
    (use_key,) = _cloudwatch_statements(k["Properties"]["KeyPolicy"] for k in synth.resources("AWS::KMS::Key").values())
    assert (use_key["Effect"], sorted(use_key["Action"])) == ("Allow", ["kms:Decrypt", "kms:GenerateDataKey*"])
    for statement in (publish, use_key):
        arn = resolve_cfn(statement["Condition"]["ArnLike"]["aws:SourceArn"], synth.template)
        assert arn == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:imgclf-frontdoor-*"
        assert all(fnmatch(f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}", arn) for name in _alarms(synth))


def test_the_dashboard_shows_requests_errors_latency_confidence_and_class_mix(synthesize):
    synth = synthesize("default")
    body = json.loads(resolve_cfn(synth.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"], synth.template))
    titles = {w["properties"].get("title") for w in body["widgets"]}
    assert {"Requests", "Errors by code", "Latency (ms)", "Top-1 confidence (percentiles)", "Class mix"} <= titles
    (mix,) = [w for w in body["widgets"] if w["properties"].get("title") == "Class mix"]
    (query,) = mix["properties"]["metrics"]
    assert 'MetricName="ClassPredicted" service="imgclf-frontdoor"' in query[0]["expression"]


def test_capture_off_by_default_grants_nothing_and_sets_no_bucket(synthesize):
    synth = synthesize("default")
    assert not _statements(synth, "WriteCaptureRecords")
    (function,) = [f for f in synth.resources("AWS::Lambda::Function").values()
                   if "ENDPOINT_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})]
    assert "CAPTURE_BUCKET" not in function["Properties"]["Environment"]["Variables"]
    assert function["Properties"]["Environment"]["Variables"]["CAPTURE_PERCENT"] == "0"
    assert not [r for r in synth.resources("AWS::Events::Rule").values()
                if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]]


def test_capture_may_put_objects_under_its_prefix_only_encrypted_with_the_stacks_key(synthesize):
    synth = synthesize("realtime")
    (put,) = _statements(synth, "WriteCaptureRecords")
    assert put["Action"] == "s3:PutObject"
    assert resolve_cfn(put["Resource"], synth.template).endswith(f"/{FRONTDOOR_CAPTURE_PREFIX}/*")
    (encrypt,) = _statements(synth, "EncryptCaptureRecords")
    assert encrypt["Action"] == "kms:GenerateDataKey" and encrypt["Resource"] == synth.cfg.kms_key_arn
    (function,) = [f for f in synth.resources("AWS::Lambda::Function").values()
                   if "ENDPOINT_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["CAPTURE_KMS_KEY_ARN"] == synth.cfg.kms_key_arn and variables["CAPTURE_IMAGES"] == "true"
    assert variables["CAPTURE_PERCENT"] == "5" and variables["CAPTURE_PREFIX"] == FRONTDOOR_CAPTURE_PREFIX


def test_the_confidence_alarm_starts_the_pipeline_when_retrain_on_alarm_is_on(synthesize):
    synth = synthesize("realtime")
    (rule,) = [r["Properties"] for r in synth.resources("AWS::Events::Rule").values()
               if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]]
    assert rule["EventPattern"]["detail"] == {"state": {"value": ["ALARM"]}}
    (alarm_id,) = [k for k, a in synth.resources("AWS::CloudWatch::Alarm").items()
                   if a["Properties"]["AlarmName"].endswith("low-confidence")]
    assert rule["EventPattern"]["resources"] == [{"Fn::GetAtt": [alarm_id, "Arn"]}]
    (target,) = rule["Targets"]
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine")
    # An empty input: the run's defaults from the config, as a plain `imgclf start` (run_flow's {}).
    assert target["Arn"] == {"Ref": machine} and json.loads(target["Input"]) == {}
    role = target["RoleArn"]["Fn::GetAtt"][0]
    grants = [s for p in synth.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
              for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert grants == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine}}]


def _alarm_state_change(alarm_arn: str, state: str) -> dict:
    """A CloudWatch Alarm State Change event as EventBridge delivers it (the single-metric sample of
    the CloudWatch user guide, "Alarm events and EventBridge"), trimmed to what a pattern can read."""
    return {
        "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": ACCOUNT, "time": "2019-10-02T17:04:40Z", "region": REGION,
        "resources": [alarm_arn],
        "detail": {"alarmName": alarm_arn.rsplit(":", 1)[1],
                   "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2019-10-02T17:04:40.985+0000"},
                   "previousState": {"value": "OK", "reason": "Threshold Crossed", "timestamp": "2019-10-02T17:03:40.985+0000"}},
    }


def test_the_retrain_rule_matches_the_confidence_alarm_going_into_alarm_only(synthesize):
    """The synthesized pattern, matched by moto's EventBridge pattern engine against AWS's event shape."""
    from moto.events.models import EventPattern

    synth = synthesize("realtime")
    (rule,) = [r["Properties"] for r in synth.resources("AWS::Events::Rule").values()
               if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]]
    arns = {name: f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}" for name in _alarms(synth)}
    (alarm_id,) = [k for k, a in synth.resources("AWS::CloudWatch::Alarm").items()
                   if a["Properties"]["AlarmName"].endswith("low-confidence")]
    confidence = arns[synth.template["Resources"][alarm_id]["Properties"]["AlarmName"]]
    pattern = EventPattern.load(json.dumps({**rule["EventPattern"], "resources": [confidence]}))
    assert pattern.matches_event(_alarm_state_change(confidence, "ALARM"))
    assert not pattern.matches_event(_alarm_state_change(confidence, "OK"))
    assert not pattern.matches_event(_alarm_state_change(confidence, "INSUFFICIENT_DATA"))
    for other in set(arns.values()) - {confidence}:
        assert not pattern.matches_event(_alarm_state_change(other, "ALARM"))
