"""Before any training: a serverless stack whose endpoint exists as a real-time one stops here.

SageMaker cannot update a real-time endpoint to serverless ("Update a serverless endpoint" in the
SageMaker developer guide), so after `endpoint.mode` changed from realtime to serverless the
deployment at the end of the run could only fail, hours of training later. The run stops first,
with the steps to take. The other way, serverless to real-time, UpdateEndpoint supports.
"""
from __future__ import annotations

from infra.config import Config
from infra.endpoint_scaling import deregister_scalable_target_request
from infra.layout import endpoint_name
from infra.state_machine.vocabulary import ENDPOINT_NOT_FOUND, RETRY_SDK, SDK, call, fail, fail_path, task

#: The first state of the check.
START = "LookUpEndpoint"


def mode_switch_cause(cfg: Config) -> str:
    endpoint = endpoint_name(cfg)
    target = deregister_scalable_target_request(endpoint)
    return (
        f"endpoint {endpoint} is real-time, but endpoint.mode is now serverless, and SageMaker cannot update a "
        "real-time endpoint to serverless; nothing was trained. Either set endpoint.mode back to realtime and "
        "deploy the stack again, or delete the endpoint, then start the run again, which creates it serverless "
        "(the API answers 503 until that run deploys): "
        f"aws application-autoscaling deregister-scalable-target --service-namespace {target['ServiceNamespace']} "
        f"--resource-id {target['ResourceId']} --scalable-dimension {target['ScalableDimension']}; "
        f"aws sagemaker delete-endpoint --endpoint-name {endpoint}"
    )


def mode_check_states(cfg: Config, after: str) -> dict:
    """No endpoint yet, or one whose config is serverless: go on to `after`. The whole responses
    are read, since EndpointConfigName and ServerlessConfig are optional in them (botocore)."""
    endpoint = endpoint_name(cfg)
    return {
        START: task(
            SDK.format("sagemaker", "describeEndpoint"),
            {"EndpointName": endpoint},
            "EndpointConfigNamed?",
            RETRY_SDK,
            ResultPath="$.current",
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.lookup", "Next": "NoEndpointYet?"}],
        ),
        "NoEndpointYet?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.lookup.Cause", "StringMatches": ENDPOINT_NOT_FOUND, "Next": after}],
            "Default": "LookUpEndpointFailed",
        },
        "LookUpEndpointFailed": fail_path("States.Format('DescribeEndpoint failed: {}', $.lookup.Cause)", "DeployFailed"),
        # An endpoint that names no config is being created or deleted: the deploy stage waits for it.
        "EndpointConfigNamed?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.current.EndpointConfigName", "IsPresent": True, "Next": "DescribeCurrentConfig"}],
            "Default": after,
        },
        **call(
            "DescribeCurrentConfig",
            SDK.format("sagemaker", "describeEndpointConfig"),
            {"EndpointConfigName.$": "$.current.EndpointConfigName"},
            "ServerlessAlready?",
            RETRY_SDK,
            "DeployFailed",
            ResultPath="$.current",
        ),
        "ServerlessAlready?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.current.ProductionVariants[0].ServerlessConfig", "IsPresent": True, "Next": after}],
            "Default": "EndpointModeSwitch",
        },
        "EndpointModeSwitch": fail(mode_switch_cause(cfg), "DeployFailed"),
    }
