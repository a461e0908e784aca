"""The data/artifact bucket and its access-log bucket.

One bucket holds datasets (`datasets/...`), job output (`runs/...`: models, managed debug output,
per-job checkpoints) and endpoint data capture (`capture/...`). Encryption is the configured KMS key
or S3-managed; the access-log bucket is always S3-managed, the only encryption S3 server access
logging can deliver to.
"""
from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import Config
from infra.layout import OUTPUT_PREFIX

#: Managed Debugger tensors and profiler traces: large, useful for days.
DEBUG_PREFIX = f"{OUTPUT_PREFIX}/debug/"
#: Spot checkpoints matter only while a job runs or resumes.
CHECKPOINT_PREFIX = f"{OUTPUT_PREFIX}/checkpoints/"
DEBUG_RETENTION = Duration.days(30)
CHECKPOINT_RETENTION = Duration.days(7)
NONCURRENT_RETENTION = Duration.days(30)
LOG_RETENTION = Duration.days(90)


class Storage(Construct):
    """`bucket` (data + artifacts), `log_bucket` (its access logs) and `key` (the KMS key or None)."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: Config) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.IKey | None = (
            kms.Key.from_key_arn(self, "DataKey", cfg.kms_key_arn) if cfg.kms_key_arn else None
        )
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=LOG_RETENTION, noncurrent_version_expiration=Duration.days(1))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.KMS if self.key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=self.key,
            bucket_key_enabled=bool(self.key),
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-debug-output", prefix=DEBUG_PREFIX, expiration=DEBUG_RETENTION),
                s3.LifecycleRule(id="expire-checkpoints", prefix=CHECKPOINT_PREFIX, expiration=CHECKPOINT_RETENTION),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=NONCURRENT_RETENTION,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            # Datasets and models outlive the stack: `cdk destroy` leaves the bucket (docs: destroy).
            removal_policy=RemovalPolicy.RETAIN,
        )

    def object_arn(self, prefix: str) -> str:
        """ARN pattern of the objects under `prefix` ('' for all)."""
        return self.bucket.arn_for_objects(f"{prefix}*")

