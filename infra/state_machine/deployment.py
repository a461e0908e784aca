"""What the definition refers to that only the deployment knows, and where a run's jobs read and write."""
from __future__ import annotations

from dataclasses import dataclass

from infra import sagemaker_requests
from infra.layout import OUTPUT_PREFIX
from infra.state_machine.placeholders import placeholder


@dataclass(frozen=True)
class Deployment:
    """CDK tokens at synth time, plain sample values in unit tests."""

    region: str
    role_arn: str
    bucket_name: str
    source_bundle_uri: str


def job_locations(dep: Deployment) -> sagemaker_requests.JobLocations:
    """The jobs' locations; the dataset URI comes from the execution input (a placeholder)."""
    return sagemaker_requests.JobLocations(
        role_arn=dep.role_arn,
        source_bundle_uri=dep.source_bundle_uri,
        data_uri=placeholder("datauri"),
        output_uri=f"s3://{dep.bucket_name}/{OUTPUT_PREFIX}",
        region=dep.region,
    )
