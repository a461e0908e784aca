"""`imgclf start` against moto's CloudFormation and Step Functions."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from imgclf.cli import main

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sfn"


@pytest.fixture
def deployed(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(name="imgclf-pipeline", roleArn=ROLE,
                                       definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"StateMachineArn": {"Value": arn}, "BucketName": {"Value": "pipeline-bucket"},
                        "ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/prod/predict"}},
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(StackName="imgclf-stack", TemplateBody=json.dumps(template))
        yield sfn, arn


def _inputs(sfn, arn):
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    return [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions]


def test_start_finds_the_state_machine_in_the_stack_outputs_and_sends_the_validated_input(deployed, capsys):
    sfn, arn = deployed
    code = main(["start", "--dataset", "s3://pipeline-bucket/datasets/dogs/", "--overrides", "epochs=3",
                 "min_test_accuracy=0.9"])
    assert code == 0
    assert _inputs(sfn, arn) == [{"epochs": 3, "min_test_accuracy": 0.9, "dataset_prefix": "datasets/dogs"}]
    assert "imgclf status arn:aws:states:" in capsys.readouterr().out


def test_an_unknown_override_is_refused_before_anything_starts(deployed, capsys):
    sfn, arn = deployed
    assert main(["start", "--overrides", "lr=0.1"]) == 2
    assert "KEY one of dataset_prefix, epochs, min_test_accuracy" in capsys.readouterr().err
    assert _inputs(sfn, arn) == []


def test_an_out_of_range_value_is_refused_with_the_machines_limits(deployed, capsys):
    assert main(["start", "--overrides", "epochs=0"]) == 2
    assert "execution input epochs must be a number from 1 to 1000" in capsys.readouterr().err


def test_a_dataset_outside_the_pipeline_bucket_is_refused(deployed, capsys):
    assert main(["start", "--dataset", "s3://someone-else/datasets/x"]) == 2
    assert "must be in the pipeline bucket pipeline-bucket" in capsys.readouterr().err


def test_a_missing_stack_is_a_clear_error(deployed, capsys):
    assert main(["start", "--stack", "nope-stack"]) == 2
    assert "stack nope-stack not found" in capsys.readouterr().err
