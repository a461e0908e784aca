"""The three roles: least privilege, no managed *FullAccess policies, no wildcard actions."""
from __future__ import annotations

import json

import pytest
from stack_samples import VARIANTS


def _statements(synth, role_fragment: str) -> list[dict]:
    (role_id,) = [k for k in synth.resources("AWS::IAM::Role") if role_fragment in k]
    found = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def _by_sid(statements: list[dict], sid: str) -> dict:
    (statement,) = [s for s in statements if s.get("Sid") == sid]
    return statement


def _actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_policy_grants_a_wildcard_action(synthesize, variant):
    synth = synthesize(variant)
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert not [a for a in _actions(statement) if "*" in a], statement


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_role_has_a_full_access_managed_policy(synthesize, variant):
    assert "FullAccess" not in json.dumps(synthesize(variant).resources("AWS::IAM::Role"))


def test_the_state_machine_passes_the_sagemaker_role_to_sagemaker_only(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "PassSageMakerRole")
    assert statement["Action"] == "iam:PassRole"
    assert statement["Resource"]["Fn::GetAtt"][0].startswith("PipelineSageMakerRole")
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_the_state_machine_manages_the_sync_event_rules(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "SyncEventRules")
    assert sorted(statement["Action"]) == ["events:DescribeRule", "events:PutRule", "events:PutTargets"]
    text = json.dumps(statement["Resource"])
    assert "rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule" in text
    assert "rule/StepFunctionsGetEventsForSageMakerTuningJobsRule" in text


def test_the_state_machine_touches_only_this_stacks_jobs(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "TrainingJobs")
    assert "sagemaker:StopTrainingJob" in statement["Action"]
    assert json.dumps(statement["Resource"]).endswith(':training-job/imgclf-*"]]}')


def test_the_front_door_may_only_invoke_and_describe_the_one_endpoint(default):
    statement = _by_sid(_statements(default, "FrontDoorRole"), "InvokeTheEndpoint")
    assert sorted(statement["Action"]) == ["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"]
    assert json.dumps(statement["Resource"]).endswith(':endpoint/imgclf-endpoint"]]}')


def test_the_sagemaker_role_writes_only_under_runs_and_capture(default):
    statement = _by_sid(_statements(default, "SageMakerRole"), "WriteRunOutput")
    suffixes = sorted(part["Fn::Join"][1][-1] for part in statement["Resource"])
    assert suffixes == ["/capture/*", "/runs/*"]


def test_the_sagemaker_role_pulls_only_the_images_the_jobs_name(default):
    statement = _by_sid(_statements(default, "SageMakerRole"), "PullImages")
    repositories = sorted(r.rsplit("/", 1)[1] for r in statement["Resource"])
    assert repositories == ["pytorch", "ray"]  # the AL2023 training image, the Ray Serve container


def test_the_sagemaker_role_reads_the_source_bundle_object(default):
    statement = _by_sid(_statements(default, "SageMakerRole"), "ReadSourceBundle")
    assert statement["Action"] == "s3:GetObject"
    assert json.dumps(statement["Resource"]).endswith('.gz"]]}')


def test_the_sagemaker_role_may_use_the_configured_kms_key(realtime):
    statements = _statements(realtime, "SageMakerRole")
    (kms,) = [s for s in statements if "kms:Decrypt" in _actions(s)]
    assert kms["Resource"] == realtime.cfg.kms_key_arn


def test_the_realtime_state_machine_may_register_endpoint_scaling(realtime):
    statement = _by_sid(_statements(realtime, "StateMachineRole"), "EndpointScaling")
    assert "application-autoscaling:RegisterScalableTarget" in statement["Action"]
    assert statement["Condition"] == {"StringEquals": {"application-autoscaling:service-namespace": "sagemaker"}}


def test_the_serverless_state_machine_has_no_scaling_permissions(default):
    assert not [s for s in _statements(default, "StateMachineRole") if s.get("Sid") == "EndpointScaling"]


def _resources(statement: dict) -> list[str]:
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return [json.dumps(r) for r in resources]


def test_the_state_machine_touches_only_this_stacks_tuning_jobs(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "TuningJobs")
    assert "sagemaker:CreateHyperParameterTuningJob" in statement["Action"]
    (resource,) = _resources(statement)
    assert resource.endswith(':hyper-parameter-tuning-job/imgclf-*"]]}')


def test_the_state_machine_creates_only_this_stacks_models_and_endpoint_configs(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "ModelsAndConfigs")
    assert sorted(r.rsplit(":", 1)[1] for r in _resources(statement)) == ['endpoint-config/imgclf-*"]]}', 'model/imgclf-*"]]}']


def test_the_state_machine_creates_and_updates_only_the_one_endpoint(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "Endpoint")
    assert "sagemaker:UpdateEndpoint" in statement["Action"]
    assert sorted(r.rsplit(":", 1)[1] for r in _resources(statement)) == ['endpoint-config/imgclf-*"]]}', 'endpoint/imgclf-endpoint"]]}']


def test_the_state_machine_may_read_job_tags_as_sync_tasks_need(default):
    statement = _by_sid(_statements(default, "StateMachineRole"), "SyncJobTags")
    assert (statement["Action"], statement["Resource"]) == ("sagemaker:ListTags", "*")


def _channels(value) -> list[dict]:
    """Every input channel of every SageMaker request in a definition."""
    if isinstance(value, list):
        return [c for v in value for c in _channels(v)]
    if not isinstance(value, dict):
        return []
    found = list(value["InputDataConfig"]) if isinstance(value.get("InputDataConfig"), list) else []
    return found + [c for v in value.values() for c in _channels(v)]


def test_the_sagemaker_role_reads_exactly_the_pretrained_weights_object_in_another_bucket(synthesize):
    nodebug = synthesize("nodebug")
    # What the tuning and retrain requests read is what the role may read.
    (uri,) = {c["DataSource"]["S3DataSource"]["S3Uri"] for c in _channels(nodebug.definition) if c["ChannelName"] == "pretrained"}
    assert uri == nodebug.cfg.training.pretrained_s3_uri
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    statements = _statements(nodebug, "SageMakerRole")
    read = _by_sid(statements, "ReadPretrainedWeights")
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"] == f"arn:aws:s3:::{bucket}/{key}"
    listing = _by_sid(statements, "ListPretrainedWeights")
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == f"arn:aws:s3:::{bucket}"
    assert listing["Condition"] == {"StringEquals": {"s3:prefix": key}}


def test_without_a_pretrained_channel_the_role_reads_no_other_bucket(default):
    assert not [s for s in _statements(default, "SageMakerRole") if "Pretrained" in s.get("Sid", "")]
