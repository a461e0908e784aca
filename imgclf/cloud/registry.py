"""The stack's model package group as the CLI sees it: its versions with their approval, their
evidence's headline figure and which one the endpoint serves (the endpoint's tag, written by the
pipeline's RecordServingVersion state), and approval decisions (infra/registry.approval_request)."""
from __future__ import annotations

import json

from imgclf.errors import UserError
from infra.layout import SERVING_PACKAGE_TAG
from infra.registry import approval_request


def _error(err) -> str:
    return err.response.get("Error", {}).get("Message", str(err))


class CloudRegistry:
    def __init__(self, sagemaker, s3, group: str, endpoint: str) -> None:
        self.sagemaker, self.s3, self.group, self.endpoint = sagemaker, s3, group, endpoint

    def summaries(self) -> list[dict]:
        """Every version of the group, oldest first."""
        from botocore.exceptions import ClientError

        found, token = [], None
        try:
            while True:
                page = self.sagemaker.list_model_packages(
                    ModelPackageGroupName=self.group, SortBy="CreationTime", SortOrder="Ascending", **({"NextToken": token} if token else {}))
                found += page["ModelPackageSummaryList"]
                token = page.get("NextToken")
                if not token:
                    return found
        except ClientError as err:
            raise UserError(f"cannot list the versions of {self.group}: {_error(err)}") from None

    def versions(self) -> list[dict]:
        """{version, approval, created, test_acc, arn} of each version."""
        return [{"version": s["ModelPackageVersion"], "approval": s.get("ModelApprovalStatus", "?"),
                 "created": s["CreationTime"].strftime("%Y-%m-%dT%H:%M:%SZ"), "test_acc": self._test_accuracy(s["ModelPackageArn"]), "arn": s["ModelPackageArn"]}
                for s in self.summaries()]

    def _test_accuracy(self, arn: str) -> float | None:
        """test_acc from the version's evidence file (its ModelMetrics); None when unreadable."""
        from botocore.exceptions import ClientError

        try:
            described = self.sagemaker.describe_model_package(ModelPackageName=arn)
            uri = described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            evidence = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except (ClientError, KeyError, ValueError):
            return None
        metrics = {m["MetricName"]: m["Value"] for m in evidence.get("final_metrics", [])}
        return metrics.get("test_acc")

    def arn_of(self, number: int) -> str:
        for summary in self.summaries():
            if summary["ModelPackageVersion"] == number:
                return summary["ModelPackageArn"]
        raise UserError(f"no version {number} in the model package group {self.group} (imgclf models list shows them)")

    def serving(self) -> str | None:
        """The ARN of the version the endpoint serves, or None (no endpoint yet, or no record)."""
        from botocore.exceptions import ClientError

        try:
            arn = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)["EndpointArn"]
            tags = self.sagemaker.list_tags(ResourceArn=arn)["Tags"]
        except ClientError as err:
            if "Could not find endpoint" in _error(err):
                return None
            raise UserError(f"cannot read the endpoint {self.endpoint}: {_error(err)}") from None
        return next((t["Value"] for t in tags if t["Key"] == SERVING_PACKAGE_TAG), None)

    def decide(self, number: int, decision: str, reason: str | None) -> str:
        """Approve or reject version `number`; its ARN."""
        from botocore.exceptions import ClientError

        arn = self.arn_of(number)
        try:
            self.sagemaker.update_model_package(**approval_request(arn, decision, reason))
        except ClientError as err:
            raise UserError(f"cannot {decision} version {number}: {_error(err)}") from None
        return arn
