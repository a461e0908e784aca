"""Target-tracking auto scaling of a real-time endpoint, as Application Auto Scaling requests.

The endpoint does not exist at deploy time: the state machine creates it on its first run. A
CloudFormation `ScalableTarget` would fail on the first deploy (RegisterScalableTarget checks that
the variant exists), so the state machine registers the target and its policy itself, through the
SDK integration, once the endpoint is InService. Before an update it deregisters the target: an
UpdateEndpoint that changes the instance type of an auto-scaled variant is refused.
Serverless endpoints scale by themselves and need none of this.
"""
from __future__ import annotations

from infra.config import Config
from infra.sagemaker_requests import VARIANT_NAME

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
POLICY_NAME = "invocations-per-instance"
#: Created by Application Auto Scaling on first use; the caller needs iam:CreateServiceLinkedRole.
SERVICE_LINKED_ROLE_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"


def resource_id(endpoint_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}"


def _target(endpoint_name: str) -> dict:
    return {
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": resource_id(endpoint_name),
        "ScalableDimension": SCALABLE_DIMENSION,
    }


def register_scalable_target_request(cfg: Config, endpoint_name: str) -> dict:
    ep = cfg.endpoint
    return {**_target(endpoint_name), "MinCapacity": ep.min_capacity, "MaxCapacity": ep.max_capacity}


def deregister_scalable_target_request(endpoint_name: str) -> dict:
    return _target(endpoint_name)


def put_scaling_policy_request(cfg: Config, endpoint_name: str) -> dict:
    return {
        **_target(endpoint_name),
        "PolicyName": POLICY_NAME,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(cfg.endpoint.target_invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    }
