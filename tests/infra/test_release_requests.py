"""The release requests and stack plumbing: every new SageMaker request valid against botocore's
model (sagemaker_validator: types, required members, patterns, enums, limits), the approval rule's
pattern and input, the rollback alarms, and IAM scoped to the stack's group and endpoint."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sagemaker_validator import validate
from stack_samples import ACCOUNT, REGION, Synth, load_app
from sample_locations import LOC
from test_stack_iam import _by_sid, _statements

from infra.config import load_config
from infra.layout import MODEL_PACKAGE, endpoint_name, model_package_group_name, rollback_alarm_name, string_matches
from infra.registry import (
    approval_event_pattern,
    approval_request,
    deployment_config,
    model_package_group_request,
    model_package_request,
    rollback_alarm_names,
)
from infra.state_machine.input import package_arn_pattern

PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/imgclf-models/3"
METADATA = {"execution": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:imgclf-pipeline:0f6a1c2e", "training_job": "imgclf-0f6a1c2e-final",
            "tuning_job": "imgclf-0f6a1c2e-tune"}
MODES = ("serverless", "realtime")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("approval", ("auto", "manual"))
def test_create_model_package_and_its_group_are_valid(mode, approval):
    cfg = load_config({"endpoint": {"mode": mode}, "release": {"approval": approval}})
    request = model_package_request(cfg, LOC, "s3://imgclf-data/runs/j/output/model.tar.gz", "s3://imgclf-data/runs/j/evidence/metrics.json", METADATA)
    assert validate("CreateModelPackage", request) == []
    assert request["ModelApprovalStatus"] == {"auto": "Approved", "manual": "PendingManualApproval"}[approval]
    assert validate("CreateModelPackageGroup", model_package_group_request(cfg)) == []


def test_the_evidence_names_the_retrains_evaluation_or_says_it_is_inside_an_isolated_jobs_model():
    """An isolated job cannot reach S3, so its evaluation.json travels only inside model.tar.gz."""
    from test_state_machine_flow import DEPLOYMENT

    from infra.state_machine.register import evaluation_evidence

    assert evaluation_evidence(load_config({}), DEPLOYMENT) == {
        "evaluation_uri.$": "States.Format('s3://imgclf-data/runs/{}/evidence/evaluation.json', $.names.training_job)"}
    isolated = load_config({"training_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
                            "training": {"network_isolation": True, "pretrained": "none", "unfreeze": "all"}})
    assert evaluation_evidence(isolated, DEPLOYMENT) == {"evaluation_in_model_data": "evaluation.json"}


def test_metadata_the_validator_refuses_is_caught():
    """JSON is not allowed in CustomerMetadataProperties (why the hyperparameters stay in the evidence file)."""
    request = model_package_request(load_config({}), LOC, "s3://b/m.tar.gz", "s3://b/e.json", {"hyperparameters": '{"lr": "0.1"}'})
    assert any("CustomerMetadataProperties" in p for p in validate("CreateModelPackage", request))


@pytest.mark.parametrize("decision", ("approve", "reject"))
def test_update_model_package_is_valid(decision):
    assert validate("UpdateModelPackage", approval_request(PACKAGE_ARN, decision, "looked at the confusion matrix")) == []


@pytest.mark.parametrize("mode", MODES)
def test_update_endpoint_with_the_deployment_config_is_valid(mode):
    cfg = load_config({"endpoint": {"mode": mode}, "release": {"bake_minutes": 60, "canary_percent": 50}})
    request = {"EndpointName": endpoint_name(cfg), "EndpointConfigName": "imgclf-0f6a1c2e", "DeploymentConfig": deployment_config(cfg)}
    assert validate("UpdateEndpoint", request) == []
    routing = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == {"realtime": "CANARY", "serverless": "ALL_AT_ONCE"}[mode]
    assert [a["AlarmName"] for a in request["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]] == rollback_alarm_names(cfg)


def _package_state_change(group: str, version: int, approval: str) -> dict:
    """The "Model package state change" example event of the SageMaker developer guide
    (awsdocs/amazon-sagemaker-developer-guide, automating-sagemaker-with-eventbridge.md), whole,
    with this group, version and approval status in it (and one "source": the example repeats it)."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"
    return {
        "version": "0", "id": "844e2571-85d4-695f-b930-0153b71dcb42", "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker", "account": ACCOUNT, "time": "2021-02-24T17:00:14Z", "region": REGION, "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group, "ModelPackageVersion": version, "ModelPackageArn": arn,
            "CreationTime": "2021-02-24T17:00:14Z",
            "InferenceSpecification": {
                "Containers": [{"Image": "257758044811.dkr.ecr.us-east-2.amazonaws.com/sagemaker-xgboost:1.0-1-cpu-py3",
                                "ImageDigest": "sha256:4dc8a7e4a010a19bb9e0a6b063f355393f6e623603361bd8b105f554d4f0c004",
                                "ModelDataUrl": f"s3://sagemaker-project/{group}/output/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
            "ModelPackageStatus": "Completed", "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CertifyForMarketplace": False, "ModelApprovalStatus": approval,
            "MetadataProperties": {"GeneratedBy": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{group}/execution/4r83jejmhorv"},
            "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                              "S3Uri": f"s3://sagemaker-project/{group}/evaluation.json"}}},
            "LastModifiedTime": "2021-02-24T17:00:14Z",
        },
    }


@pytest.fixture(scope="module")
def manual() -> Synth:
    """A real-time stack with manual approval (the only kind with an approval rule)."""
    import tempfile

    outdir = Path(tempfile.mkdtemp(prefix="imgclf-release-"))
    app = load_app().build_app({"imgclf": {"endpoint": {"mode": "realtime"}, "release": {"approval": "manual"}}, "region": REGION}, str(outdir))
    stack = app.node.children[0]  # synthesis runs cdk-nag: an error-level finding fails it
    return Synth("manual", stack.cfg, app.synth().get_stack_by_name(stack.stack_name).template, outdir)


def test_cfn_lint_finds_no_error_with_manual_approval(manual):
    """The approval rule, its target role and the rollback alarms, linted as tests/infra/test_cfn_lint.py does."""
    template = next(manual.outdir.glob("*.template.json"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", "--ignore-checks", "W3005", "--", str(template)],
        capture_output=True, text=True,
    )
    assert result.returncode & ~(4 | 8) == 0, result.stdout + result.stderr


def _approval_rule(synth: Synth) -> dict:
    (rule,) = [r["Properties"] for r in synth.resources("AWS::Events::Rule").values()
               if r["Properties"].get("EventPattern", {}).get("source") == ["aws.sagemaker"]]
    return rule


def test_the_approval_rule_matches_an_approved_version_of_this_stacks_group_only(manual):
    from moto.events.models import EventPattern

    rule = _approval_rule(manual)
    assert rule["EventPattern"] == approval_event_pattern(manual.cfg)
    pattern = EventPattern.load(json.dumps(rule["EventPattern"]))
    group = model_package_group_name(manual.cfg)
    assert pattern.matches_event(_package_state_change(group, 3, "Approved"))
    assert not pattern.matches_event(_package_state_change(group, 3, "PendingManualApproval"))
    assert not pattern.matches_event(_package_state_change(group, 3, "Rejected"))
    assert not pattern.matches_event(_package_state_change("other-models", 3, "Approved"))


def test_the_approval_rule_starts_the_machine_with_an_input_its_check_accepts(manual):
    """EventBridge's input transformer, applied to the event: the execution input names the version,
    and the machine's ValidateInput pattern accepts it (a deployment, nothing trained)."""
    (target,) = _approval_rule(manual)["Targets"]
    assert target["Arn"]["Ref"].startswith("PipelineStateMachine")
    transformer = target["InputTransformer"]
    event = _package_state_change(model_package_group_name(manual.cfg), 3, "Approved")
    template = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        value = event
        for key in path.removeprefix("$.").split("."):
            value = value[key]
        # In a JSON template EventBridge inserts a string variable quoted (CDK writes it bare).
        template = template.replace(f"<{name}>", json.dumps(value))
    execution_input = json.loads(template)
    assert execution_input == {MODEL_PACKAGE: event["detail"]["ModelPackageArn"]}
    assert string_matches(execution_input[MODEL_PACKAGE], package_arn_pattern(manual.cfg))


def test_auto_approval_has_no_approval_rule_so_a_version_is_deployed_once(realtime):
    assert not [r for r in realtime.resources("AWS::Events::Rule").values()
                if r["Properties"].get("EventPattern", {}).get("source") == ["aws.sagemaker"]]


def test_the_stack_has_the_group_and_the_rollback_alarms_on_the_endpoint(manual):
    assert manual.only("AWS::SageMaker::ModelPackageGroup")["Properties"]["ModelPackageGroupName"] == "imgclf-models"
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in manual.resources("AWS::CloudWatch::Alarm").values()}
    for metric in ("Invocation5XXErrors", "ModelLatency"):
        alarm = alarms[rollback_alarm_name(manual.cfg, metric)]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SageMaker", metric)
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"EndpointName": endpoint_name(manual.cfg), "VariantName": "AllTraffic"}
    assert alarms[rollback_alarm_name(manual.cfg, "ModelLatency")]["Threshold"] == 2_000_000  # 2000 ms in microseconds
    # Every alarm the deployment watches exists in the stack (the front door's comes from monitoring).
    assert set(rollback_alarm_names(manual.cfg)) <= set(alarms)


def test_the_state_machine_registers_only_in_this_stacks_group(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "RegisterVersions")
    assert sorted(statement["Action"]) == ["sagemaker:AddTags", "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"]
    text = json.dumps(statement["Resource"])
    assert text.count(":model-package-group/imgclf-models") == 1 and text.count(":model-package/imgclf-models/*") == 1
    assert len(statement["Resource"]) == 2


def test_the_state_machine_writes_only_evidence_files_and_reads_only_the_rollback_alarms(default):
    statements = _statements(default, "StateMachineRole")
    evidence = _by_sid(statements, "WriteEvidence")
    assert evidence["Action"] == "s3:PutObject"
    assert json.dumps(evidence["Resource"]).endswith('/runs/*/evidence/metrics.json*"]]}')
    alarms = _by_sid(statements, "RollbackAlarms")
    assert alarms["Action"] == "cloudwatch:DescribeAlarms"
    names = {re.search(r"alarm:([^\"]+)\"", json.dumps(r)).group(1) for r in alarms["Resource"]}
    assert names == set(rollback_alarm_names(default.cfg))


def test_the_approval_rule_may_start_only_this_stacks_state_machine(manual):
    """The rule's role (made by CDK's SfnStateMachine target) starts executions of one machine."""
    (target,) = _approval_rule(manual)["Targets"]
    role = target["RoleArn"]["Fn::GetAtt"][0]
    grants = [s for p in manual.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
              for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert grants == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": target["Arn"]["Ref"]}}]
