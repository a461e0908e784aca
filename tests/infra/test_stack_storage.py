"""The data bucket and its access-log bucket."""
from __future__ import annotations

from aws_cdk.assertions import Match, Template


def _data_bucket(synth) -> dict:
    (bucket,) = [r for r in synth.resources("AWS::S3::Bucket").values() if "LoggingConfiguration" in r["Properties"]]
    return bucket["Properties"]


def test_the_data_bucket_is_s3_managed_encrypted_by_default(default):
    rule = _data_bucket(default)["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_the_data_bucket_uses_the_configured_kms_key(realtime):
    rule = _data_bucket(realtime)["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": realtime.cfg.kms_key_arn}


def test_every_bucket_blocks_public_access(default):
    for bucket in default.resources("AWS::S3::Bucket").values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        }


def test_every_bucket_refuses_requests_without_tls(default):
    policies = default.resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        Template.from_json({"Resources": {"P": policy}}).has_resource_properties(
            "AWS::S3::BucketPolicy",
            {"PolicyDocument": {"Statement": Match.array_with([Match.object_like(
                {"Effect": "Deny", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
            )])}},
        )


def test_the_data_bucket_is_versioned(default):
    assert _data_bucket(default)["VersioningConfiguration"] == {"Status": "Enabled"}


def test_the_data_bucket_logs_access_to_the_log_bucket(default):
    logging = _data_bucket(default)["LoggingConfiguration"]
    (log_bucket_id,) = [k for k, r in default.resources("AWS::S3::Bucket").items() if "LoggingConfiguration" not in r["Properties"]]
    assert logging["DestinationBucketName"] == {"Ref": log_bucket_id}


def test_debug_output_and_checkpoints_expire(default):
    rules = {r["Id"]: r for r in _data_bucket(default)["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-debug-output"]["Prefix"] == "runs/debug/"
    assert rules["expire-debug-output"]["ExpirationInDays"] == 30
    assert rules["expire-checkpoints"]["Prefix"] == "runs/checkpoints/"
    assert rules["expire-checkpoints"]["ExpirationInDays"] == 7


def test_the_data_bucket_outlives_the_stack(default):
    (bucket,) = [r for r in default.resources("AWS::S3::Bucket").values() if "LoggingConfiguration" in r["Properties"]]
    assert bucket["DeletionPolicy"] == "Retain"
