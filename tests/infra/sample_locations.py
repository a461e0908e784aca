"""The job locations the request-builder and validator tests build requests with: S3 URIs and a
role ARN in the shapes a deployment gives them."""
from infra.sagemaker_requests import JobLocations

LOC = JobLocations(
    role_arn="arn:aws:iam::123456789012:role/imgclf-sagemaker",
    source_bundle_uri="s3://imgclf-data/assets/source.tar.gz",
    data_uri="s3://imgclf-data/datasets/demo",
    output_uri="s3://imgclf-data/runs",
    region="us-east-1",
)
