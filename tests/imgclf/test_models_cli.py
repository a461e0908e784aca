"""`imgclf models list|approve|reject` and `imgclf rollback` against AWS-shaped responses (botocore
Stubber: every request is validated against botocore's model and compared with the expected one),
and the same `imgclf models` commands against a local registry."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from imgclf import cli
from imgclf.errors import UserError
from imgclf.local import registry

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
ACCOUNT, REGION = "123456789012", "us-east-1"
GROUP, ENDPOINT = "imgclf-models", "imgclf-endpoint"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:imgclf-pipeline"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
OUTPUTS = {"StateMachineArn": MACHINE, "EndpointName": ENDPOINT, "ModelPackageGroupName": GROUP, "BucketName": "imgclf-data"}


def _arn(version: int) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{version}"


def _summary(version: int, approval: str) -> dict:
    return {"ModelPackageGroupName": GROUP, "ModelPackageVersion": version, "ModelPackageArn": _arn(version),
            "CreationTime": T0, "ModelPackageStatus": "Completed", "ModelApprovalStatus": approval}


class Clients:
    """One stubbed client per service, handed out by `client(service, region)`."""

    def __init__(self) -> None:
        self.made = {s: boto3.client(s, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
                     for s in ("cloudformation", "sagemaker", "s3", "stepfunctions")}
        self.stubs = {s: Stubber(c) for s, c in self.made.items()}

    def __call__(self, service: str, region):
        return self.made[service]

    def stack(self) -> None:
        self.stubs["cloudformation"].add_response("describe_stacks", {"Stacks": [{
            "StackName": "imgclf-stack", "CreationTime": T0, "StackStatus": "CREATE_COMPLETE",
            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()]}]}, {"StackName": "imgclf-stack"})

    def versions(self, *summaries: dict) -> None:
        self.stubs["sagemaker"].add_response("list_model_packages", {"ModelPackageSummaryList": list(summaries)},
                                             {"ModelPackageGroupName": GROUP, "SortBy": "CreationTime", "SortOrder": "Ascending"})

    def serving(self, version: int | None) -> None:
        sm = self.stubs["sagemaker"]
        sm.add_response("describe_endpoint", {"EndpointName": ENDPOINT, "EndpointArn": ENDPOINT_ARN, "EndpointStatus": "InService",
                                              "CreationTime": T0, "LastModifiedTime": T0}, {"EndpointName": ENDPOINT})
        tags = [] if version is None else [{"Key": "imgclf:model-package", "Value": _arn(version)}]
        sm.add_response("list_tags", {"Tags": tags}, {"ResourceArn": ENDPOINT_ARN})

    def evidence(self, version: int, test_acc: float) -> None:
        key = f"runs/imgclf-{version:08d}-final/evidence/metrics.json"
        self.stubs["sagemaker"].add_response("describe_model_package", {
            "ModelPackageName": f"{GROUP}", "ModelPackageArn": _arn(version), "CreationTime": T0, "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://imgclf-data/{key}"}}},
        }, {"ModelPackageName": _arn(version)})
        body = json.dumps({"final_metrics": [{"MetricName": "test_acc", "Value": test_acc}]}).encode()
        self.stubs["s3"].add_response("get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))}, {"Bucket": "imgclf-data", "Key": key})

    def __enter__(self):
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            for stub in self.stubs.values():
                stub.assert_no_pending_responses()


@pytest.fixture
def clients(monkeypatch) -> Clients:
    made = Clients()
    monkeypatch.setattr("imgclf.cloud.models.client", made)
    monkeypatch.setattr("imgclf.cloud.rollback.client", made)
    return made


def test_models_list_shows_each_version_its_approval_accuracy_and_which_serves(clients, capsys):
    clients.stack()
    clients.serving(1)
    clients.versions(_summary(1, "Approved"), _summary(2, "PendingManualApproval"))
    clients.evidence(1, 0.91)
    clients.evidence(2, 0.94)
    with clients:
        assert cli.main(["models", "list", "--stack", "imgclf-stack"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["1", "Approved", "0.9100", "2026-12-01T10:00:00Z", "<-", "serving"]
    assert lines[2].split() == ["2", "PendingManualApproval", "0.9400", "2026-12-01T10:00:00Z"]


@pytest.mark.parametrize(("command", "status"), [("approve", "Approved"), ("reject", "Rejected")])
def test_approve_and_reject_update_the_versions_approval(clients, capsys, command, status):
    clients.stack()
    clients.versions(_summary(1, "Approved"), _summary(2, "PendingManualApproval"))
    clients.stubs["sagemaker"].add_response("update_model_package", {"ModelPackageArn": _arn(2)}, {
        "ModelPackageArn": _arn(2), "ModelApprovalStatus": status, "ApprovalDescription": "confusion matrix looked fine"})
    with clients:
        assert cli.main(["models", command, "2", "--reason", "confusion matrix looked fine", "--stack", "imgclf-stack"]) == 0
    assert capsys.readouterr().out.startswith(f"{_arn(2)}: {command}d")


def test_rollback_without_a_version_deploys_the_previous_approved_one_through_the_pipeline(clients, capsys):
    clients.stack()
    clients.versions(_summary(1, "Approved"), _summary(2, "Rejected"), _summary(3, "Approved"))
    clients.serving(3)
    clients.stack()
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:imgclf-pipeline:rollback"
    clients.stubs["stepfunctions"].add_response("start_execution", {"executionArn": execution, "startDate": T0},
                                                {"stateMachineArn": MACHINE, "input": json.dumps({"model_package_arn": _arn(1)})})
    with clients:
        assert cli.main(["rollback", "--stack", "imgclf-stack"]) == 0
    assert capsys.readouterr().out.startswith(f"deploying version 1: started {execution}")


def test_rollback_refuses_a_version_that_is_not_approved(clients, capsys):
    clients.stack()
    clients.versions(_summary(1, "Approved"), _summary(2, "PendingManualApproval"))
    clients.serving(1)
    with clients:
        assert cli.main(["rollback", "2", "--stack", "imgclf-stack"]) == 2
    assert "version 2 is PendingManualApproval: approve it first" in capsys.readouterr().err


def test_rollback_with_nothing_older_says_so(clients, capsys):
    clients.stack()
    clients.versions(_summary(1, "Approved"))
    clients.serving(1)
    with clients:
        assert cli.main(["rollback", "--stack", "imgclf-stack"]) == 2
    assert "no approved version older than the serving version 1" in capsys.readouterr().err


def _local(tmp_path: Path, approval: str, test_acc: float) -> int:
    tar = tmp_path / "model.tar.gz"
    tar.write_bytes(b"not really a model")
    return registry.register(tmp_path / "registry", approval, tar, {"final_metrics": {"test_acc": test_acc}})


def test_the_same_commands_work_on_the_local_registry(tmp_path, capsys):
    root = tmp_path / "registry"
    assert (_local(tmp_path, "auto", 0.90), _local(tmp_path, "manual", 0.95)) == (1, 2)
    registry.mark_serving(root, 1)
    assert cli.main(["models", "approve", "2", "--local", str(root), "--reason", "better"]) == 0
    assert registry.version(root, 2)["approval"] == "Approved" and registry.version(root, 2)["approval_description"] == "better"
    assert cli.main(["models", "reject", "1", "--local", str(root)]) == 0
    capsys.readouterr()
    assert cli.main(["models", "list", "--local", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["1", "Rejected", "0.9000"] and lines[1].endswith("<- serving")
    assert lines[2].split()[:3] == ["2", "Approved", "0.9500"] and not lines[2].endswith("serving")
    assert registry.approved_model(root, 2).read_bytes() == b"not really a model"
    with pytest.raises(UserError, match="version 1 is Rejected: only an Approved version is served"):
        registry.approved_model(root, 1)


def test_local_serve_of_a_version_that_is_not_approved_is_refused_before_serving(tmp_path, capsys):
    _local(tmp_path, "manual", 0.9)
    assert cli.main(["local", "serve", "--version", "1", "--registry", str(tmp_path / "registry")]) == 2
    assert "version 1 is PendingManualApproval" in capsys.readouterr().err
