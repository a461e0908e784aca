"""Deploy: CreateModel and CreateEndpointConfig, then create or update the stack's one endpoint,
wait until it serves this run's config, and (real-time) register its auto scaling.

Failures that leave the previous endpoint serving (update refused, update rolled back) re-register
its auto scaling (real-time) before the run fails, so a run never leaves scaling paused."""
from __future__ import annotations

from infra import endpoint_scaling, registry, sagemaker_requests
from infra.config import Config
from infra.layout import DATA_CAPTURE_PREFIX, SERVING_PACKAGE_TAG, endpoint_name
from infra.state_machine.deployment import Deployment, job_locations
from infra.state_machine.placeholders import bind_placeholders, escape_format, placeholder
from infra.state_machine.quotas import endpoint_quota, model_quota
from infra.state_machine.vocabulary import (
    CALL,
    ENDPOINT_NOT_FOUND,
    NO_CONFIG,
    POLL_SECONDS,
    RETRY_SDK,
    SDK,
    call,
    catch,
    fail_path,
    quota_cause,
    refused,
    response,
    sagemaker_call,
    sagemaker_task,
    task,
)

#: Endpoint statuses that end by themselves: wait for them before creating or updating.
TRANSIENT_ENDPOINT_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
#: The Fail every deployment failure ends in, with the cause recorded at $.outcome.cause.
_DEPLOY_FAILED = "DeployFailed"
#: Stand-ins for the optional members of a DescribeEndpoint response (vocabulary.FALLBACKS).
ENDPOINT_FALLBACK = "$.fallback.endpoint"


def _delete_hint(endpoint: str) -> str:
    return f"delete it (aws sagemaker delete-endpoint --endpoint-name {endpoint}) and start the run again"


def _outcome(cause: str, next_state: str) -> dict:
    """Record why the deployment failed at $.outcome.cause; `DeployFailed` reports it."""
    return {"Type": "Pass", "Parameters": {"cause.$": cause}, "ResultPath": "$.outcome", "Next": next_state}


def _model_states(cfg: Config, dep: Deployment, after: str) -> dict:
    """This run's model (the registered version's model data in the stack's serving container) and
    endpoint config, each named after the run."""
    model = sagemaker_requests.model_request(cfg, job_locations(dep), placeholder("model"), placeholder("modeldata"))
    capture = f"s3://{dep.bucket_name}/{DATA_CAPTURE_PREFIX}" if cfg.endpoint.data_capture_percent else None
    config = sagemaker_requests.endpoint_config_request(
        cfg, placeholder("endpointconfig"), placeholder("model"), data_capture_uri=capture
    )
    return {
        **sagemaker_call(
            "CreateModel", CALL.format("createModel"), bind_placeholders(model), "CreateEndpointConfig", _DEPLOY_FAILED,
            model_quota(), ResultPath=response("create_model"),
        ),
        **sagemaker_call(
            "CreateEndpointConfig", CALL.format("createEndpointConfig"), bind_placeholders(config), after, _DEPLOY_FAILED,
            model_quota(), ResultPath=response("create_endpoint_config"),
        ),
    }


def _find_endpoint_states(endpoint: str, update: str) -> dict:
    """Missing: create it. InService: update it (via `update`). Changing by itself: wait and look
    again. Failed, UpdateRollbackFailed, OutOfService: SageMaker cannot update it, and deleting a
    serving endpoint is for its owner to decide, not for a pipeline run."""
    return {
        "FindEndpoint": task(
            SDK.format("sagemaker", "describeEndpoint"),
            {"EndpointName": endpoint},
            "ExistingEndpoint?",
            RETRY_SDK,
            ResultSelector={"status.$": "$.EndpointStatus"},
            ResultPath="$.existing",
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.lookup", "Next": "EndpointMissing?"}],
        ),
        "EndpointMissing?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.lookup.Cause", "StringMatches": ENDPOINT_NOT_FOUND, "Next": "CreateEndpoint"}],
            "Default": "EndpointLookupFailed",
        },
        "EndpointLookupFailed": fail_path("States.Format('DescribeEndpoint failed: {}', $.lookup.Cause)", _DEPLOY_FAILED),
        "ExistingEndpoint?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.existing.status", "StringEquals": "InService", "Next": update},
                {
                    "Or": [{"Variable": "$.existing.status", "StringEquals": s} for s in TRANSIENT_ENDPOINT_STATUSES],
                    "Next": "WaitForExistingEndpoint",
                },
            ],
            "Default": "EndpointUnusable",
        },
        "WaitForExistingEndpoint": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "FindEndpoint"},
        "EndpointUnusable": fail_path(
            f"States.Format('endpoint {endpoint} is {{}} and cannot be updated: {escape_format(_delete_hint(endpoint))}', $.existing.status)",
            _DEPLOY_FAILED,
        ),
    }


def _create_or_update_states(cfg: Config, endpoint: str, restore: str) -> dict:
    """Point the endpoint at this run's config. An update is a blue/green deployment that the
    rollback alarms watch (registry.deployment_config); a refused or rolled-back update leaves the
    previous config serving."""
    request = {"EndpointName": endpoint, "EndpointConfigName.$": "$.names.endpoint_config"}
    quota = endpoint_quota(cfg)
    return {
        **sagemaker_call(
            "CreateEndpoint", CALL.format("createEndpoint"), request, "WaitForEndpoint", _DEPLOY_FAILED, quota,
            ResultPath=response("create_endpoint"),
        ),
        **sagemaker_task(
            "UpdateEndpoint", CALL.format("updateEndpoint"), {**request, "DeploymentConfig": registry.deployment_config(cfg)},
            "WaitForEndpoint",
            failed="UpdateEndpointRefused", over_quota="UpdateEndpointOverQuota", ResultPath=response("update_endpoint"),
        ),
        "UpdateEndpointRefused": _outcome(
            f"States.Format('UpdateEndpoint failed: {endpoint} still serves its previous config: {{}}', $.error.Cause)", restore
        ),
        "UpdateEndpointOverQuota": _outcome(
            quota_cause("UpdateEndpoint", f"{quota}; {endpoint} still serves its previous config"), restore
        ),
    }


def _wait_states(endpoint: str, serving: str) -> dict:
    """Poll until the endpoint is InService with this run's config (then `serving`), or has ended
    otherwise. The whole response is read and merged over stand-ins: EndpointConfigName and
    FailureReason are optional (botocore), and a selector on a missing member would end the run
    in an uncatchable States.Runtime."""
    return {
        "WaitForEndpoint": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "CheckEndpoint"},
        **call(
            "CheckEndpoint", SDK.format("sagemaker", "describeEndpoint"), {"EndpointName": endpoint}, "ReadEndpoint",
            RETRY_SDK, _DEPLOY_FAILED, ResultPath="$.endpoint",
        ),
        "ReadEndpoint": {
            "Type": "Pass",
            "Parameters": {
                "status.$": "$.endpoint.EndpointStatus",
                "reported.$": f"States.JsonMerge({ENDPOINT_FALLBACK}, $.endpoint, false)",
            },
            "ResultPath": "$.endpoint",
            "Next": "EndpointReady?",
        },
        "EndpointReady?": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.endpoint.status", "StringEquals": "InService"},
                        {"Variable": "$.endpoint.reported.EndpointConfigName", "StringEqualsPath": "$.names.endpoint_config"},
                    ],
                    "Next": serving,
                },
                {
                    "And": [
                        {"Variable": "$.endpoint.status", "StringEquals": "InService"},
                        {"Variable": "$.endpoint.reported.EndpointConfigName", "StringEquals": NO_CONFIG},
                    ],
                    "Next": "ConfigUnnamed",
                },
                {
                    "Or": [
                        {"Variable": "$.endpoint.status", "StringEquals": "InService"},
                        {"Variable": "$.endpoint.status", "StringEquals": "Failed"},
                        {"Variable": "$.endpoint.status", "StringEquals": "UpdateRollbackFailed"},
                        {"Variable": "$.endpoint.status", "StringEquals": "OutOfService"},
                    ],
                    "Next": "WhichFailure?",
                },
            ],
            "Default": "WaitForEndpoint",
        },
    }


def _failure_states(endpoint: str, restore: str) -> dict:
    """Why the endpoint did not come to serve this run's config, in the cause of DeployFailed.
    Failures that may leave a previous config serving go through `restore`."""
    delete_hint = escape_format(_delete_hint(endpoint))
    reason = "$.endpoint.reported.FailureReason"
    return {
        "WhichFailure?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.endpoint.status", "StringEquals": "InService", "Next": "UpdateRolledBack"},
                {"Variable": "$.endpoint.status", "StringEquals": "UpdateRollbackFailed", "Next": "RollbackFailed"},
            ],
            "Default": "EndpointFailed",
        },
        "ConfigUnnamed": _outcome(
            f"States.Format('endpoint {endpoint} is InService but DescribeEndpoint names no EndpointConfigName, so this run "
            f"cannot tell whether it serves {{}}: see aws sagemaker describe-endpoint --endpoint-name {endpoint}', $.names.endpoint_config)",
            restore,
        ),
        "UpdateRolledBack": _outcome(
            f"States.Format('endpoint update rolled back: {endpoint} still serves {{}}: {{}}', $.endpoint.reported.EndpointConfigName, {reason})",
            restore,
        ),
        "RollbackFailed": _outcome(
            f"States.Format('endpoint update rollback failed: {endpoint} is UpdateRollbackFailed: {{}}; {delete_hint}', {reason})",
            _DEPLOY_FAILED,
        ),
        "EndpointFailed": _outcome(
            f"States.Format('endpoint {endpoint} is {{}}: {{}}', $.endpoint.status, {reason})", _DEPLOY_FAILED
        ),
        _DEPLOY_FAILED: fail_path("$.outcome.cause", _DEPLOY_FAILED),
    }


def _scaling_states(cfg: Config, endpoint: str) -> dict:
    """Real-time target tracking: paused before an update, registered after it, whether the update
    succeeded (new config) or left the previous config serving ($.outcome set: then the run fails)."""
    after = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.scaling_error", "Next": "AfterScaling?"}]

    def register(api: str, request: dict, next_state: str, result: str) -> dict:
        return task(SDK.format("applicationautoscaling", api), request, next_state, RETRY_SDK, ResultPath=response(result), Catch=after)

    return {
        "PauseScaling": task(
            SDK.format("applicationautoscaling", "deregisterScalableTarget"),
            endpoint_scaling.deregister_scalable_target_request(endpoint),
            "UpdateEndpoint",
            RETRY_SDK,
            ResultPath=response("pause_scaling"),
            Catch=[
                # No target yet (first update, or scaling never registered): nothing to pause.
                {"ErrorEquals": ["ApplicationAutoScaling.ObjectNotFoundException"], "ResultPath": response("pause_scaling"), "Next": "UpdateEndpoint"},
                *catch("PauseScalingFailed"),
            ],
        ),
        "PauseScalingFailed": refused("PauseScaling", _DEPLOY_FAILED),
        "RegisterScaling": register(
            "registerScalableTarget", endpoint_scaling.register_scalable_target_request(cfg, endpoint), "PutScalingPolicy", "register_scaling"
        ),
        "PutScalingPolicy": register(
            "putScalingPolicy", endpoint_scaling.put_scaling_policy_request(cfg, endpoint), "AfterScaling?", "put_scaling_policy"
        ),
        "AfterScaling?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.outcome", "IsPresent": True, "Next": _DEPLOY_FAILED},
                {"Variable": "$.scaling_error", "IsPresent": True, "Next": "ScalingFailed"},
            ],
            "Default": "RecordServingVersion",
        },
        "ScalingFailed": fail_path(
            f"States.Format('endpoint {endpoint} serves this run, but registering its auto scaling failed: {{}}', $.scaling_error.Cause)",
            _DEPLOY_FAILED,
        ),
    }


def _deployed_states(endpoint: str) -> dict:
    """The endpoint's tag names the version it serves (`imgclf models list` reads it); then the
    execution's output: what this run made and deployed."""
    return {
        **call(
            "RecordServingVersion", SDK.format("sagemaker", "addTags"),
            {"ResourceArn.$": "$.endpoint.reported.EndpointArn", "Tags": [{"Key": SERVING_PACKAGE_TAG, "Value.$": "$.package.arn"}]},
            "Deployed", RETRY_SDK, _DEPLOY_FAILED, ResultPath=response("record_serving_version"),
        ),
        "Deployed": {
            "Type": "Pass",
            "Parameters": {
                "endpoint": endpoint,
                "endpoint_config.$": "$.names.endpoint_config",
                "model.$": "$.names.model",
                "training_job.$": "$.training.job_name",
                "tuning_job.$": "$.names.tuning_job",
                "hyperparameters.$": "$.tuning.tuned",
                "model_data.$": "$.training.model_data",
                "model_package.$": "$.package.arn",
            },
            "End": True,
        }
    }


def deploy_states(cfg: Config, dep: Deployment) -> dict:
    """Create or update the endpoint and wait until it serves this run's config."""
    endpoint = endpoint_name(cfg)
    realtime = cfg.endpoint.mode == "realtime"
    # Real-time: pause scaling before an update, and register it again whatever the outcome.
    restore = "RegisterScaling" if realtime else _DEPLOY_FAILED
    return {
        **_model_states(cfg, dep, "FindEndpoint"),
        **_find_endpoint_states(endpoint, "PauseScaling" if realtime else "UpdateEndpoint"),
        **_create_or_update_states(cfg, endpoint, restore),
        **_wait_states(endpoint, "RegisterScaling" if realtime else "RecordServingVersion"),
        **_failure_states(endpoint, restore),
        **(_scaling_states(cfg, endpoint) if realtime else {}),
        **_deployed_states(endpoint),
    }
