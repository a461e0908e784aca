"""The words every stage of the definition is written in: resources, retries, catches, Fail states.

Pure: plain dicts of Amazon States Language, no CDK.
"""
from __future__ import annotations

from typing import Any

from infra.state_machine.placeholders import states_format

#: Seconds between polls of the endpoint and of the managed rule jobs.
POLL_SECONDS = 30
#: Stands in for a FailureReason that SageMaker did not give (it gives one only on failure).
NO_REASON = "SageMaker gave no FailureReason"
#: Stands in for the EndpointConfigName a DescribeEndpoint response may lack.
NO_CONFIG = "a config SageMaker did not name"
#: Stand-ins merged under Describe responses that may lack them: a job's and an endpoint's.
#: NameRun puts them at $.fallback.
FALLBACKS = {
    "job": {"FailureReason": NO_REASON},
    "endpoint": {"FailureReason": NO_REASON, "EndpointConfigName": NO_CONFIG},
}

#: How DescribeEndpoint's refusal reads when the endpoint does not exist (a ValidationException).
ENDPOINT_NOT_FOUND = "*Could not find endpoint*"

#: Resource ARNs: an optimised SageMaker job that the task waits for, an optimised SageMaker call,
#: and an SDK integration call (service, action).
SYNC = "arn:aws:states:::sagemaker:{}.sync"
CALL = "arn:aws:states:::sagemaker:{}"
SDK = "arn:aws:states:::aws-sdk:{}:{}"

# Error names differ by integration. SDK integrations report <Service>.<ErrorCode>[Exception], and
# RETRY_SDK retries the throttling ones by name. The optimised SageMaker integrations (.sync and
# request-response) name only SageMaker's modelled errors, such as
# SageMaker.ResourceLimitExceededException (AWS's .sync example in the Step Functions developer
# guide catches it under that name); every other error, throttling and validation alike, is
# SageMaker.AmazonSageMakerException, with the error code only in the cause. A failed .sync job is
# not such an error: its Describe response arrives as the cause of a task failure.
#: A quota refused the call: nothing was created.
QUOTA_ERROR = "SageMaker.ResourceLimitExceededException"
#: Every other SageMaker error of an optimised integration.
SAGEMAKER_ERROR = "SageMaker.AmazonSageMakerException"
#: Causes of SAGEMAKER_ERROR that say the call was throttled (nothing was created).
THROTTLED_CAUSES = ("*ThrottlingException*", "*Rate exceeded*")
#: Throttled optimised calls a run retries in all, and the wait before each.
MAX_THROTTLED = 5
THROTTLED_WAIT_SECONDS = 15
RETRY_SDK = [
    {
        "ErrorEquals": [
            "SageMaker.ThrottlingException",
            "SageMaker.SageMakerException",
            "ApplicationAutoScaling.ThrottlingException",
            "ApplicationAutoScaling.ConcurrentUpdateException",
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    }
]

#: S3 through the SDK integration (the Java SDK v2): an error S3 does not model, SlowDown (its
#: throttling) and 5xx among them, arrives as S3.S3Exception. PutObject of a run's own key is
#: idempotent, so a retry cannot do harm.
RETRY_S3 = [{"ErrorEquals": ["S3.S3Exception"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0}]


def response(call: str) -> str:
    """Where a call's small response goes. Not `ResultPath: null`: CDK's token rendering
    (Stack.to_json_string) drops null values, and the response would replace the state."""
    return f"$.responses.{call}"


def fail(cause: str, error: str) -> dict:
    return {"Type": "Fail", "Error": error, "Cause": cause}


def fail_path(cause_path: str, error: str) -> dict:
    return {"Type": "Fail", "Error": error, "CausePath": cause_path}


def refused(task: str, error: str) -> dict:
    """The Fail for a call that SageMaker (or another service) refused: its cause as given."""
    return fail_path(f"States.Format('{task} failed: {{}}', $.error.Cause)", error)


def catch(next_state: str) -> list:
    """Whatever the retries did not absorb goes to `next_state`, with {Error, Cause} at $.error."""
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next_state}]


def task(resource: str, parameters: dict, next_state: str, retry: list, **fields: Any) -> dict:
    return {"Type": "Task", "Resource": resource, "Parameters": parameters, "Retry": retry, "Next": next_state, **fields}


def call(name: str, resource: str, parameters: dict, next_state: str, retry: list, error: str, **fields: Any) -> dict:
    """`name` and `<name>Failed`, a Fail whose cause is the refusal (error code and message)."""
    return {
        name: task(resource, parameters, next_state, retry, Catch=catch(f"{name}Failed"), **fields),
        f"{name}Failed": refused(name, error),
    }


def sagemaker_task(name: str, resource: str, parameters: dict, next_state: str, *, failed: str, over_quota: str, **fields: Any) -> dict:
    """An optimised SageMaker task that creates (or updates) something under the run's fixed name,
    so that a retry after a first call that created it could only meet the name taken. It retries
    only what created nothing: a throttled call, told by its cause, after THROTTLED_WAIT_SECONDS
    (at most MAX_THROTTLED times a run; $.throttled counts them). A quota goes to `over_quota`,
    anything else to `failed`, both with {Error, Cause} at $.error."""
    return {
        name: task(resource, parameters, next_state, [], Catch=[
            {"ErrorEquals": [QUOTA_ERROR], "ResultPath": "$.error", "Next": over_quota},
            {"ErrorEquals": [SAGEMAKER_ERROR], "ResultPath": "$.error", "Next": f"{name}Throttled?"},
            *catch(failed),
        ], **fields),
        f"{name}Throttled?": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Or": [{"Variable": "$.error.Cause", "StringMatches": p} for p in THROTTLED_CAUSES]},
                        {"Variable": "$.throttled.count", "NumericLessThan": MAX_THROTTLED},
                    ],
                    "Next": f"{name}BackOff",
                }
            ],
            "Default": failed,
        },
        f"{name}BackOff": {
            "Type": "Pass",
            "Parameters": {"count.$": "States.MathAdd($.throttled.count, 1)"},
            "ResultPath": "$.throttled",
            "Next": f"{name}AfterThrottling",
        },
        f"{name}AfterThrottling": {"Type": "Wait", "Seconds": THROTTLED_WAIT_SECONDS, "Next": name},
    }


def sagemaker_call(name: str, resource: str, parameters: dict, next_state: str, error: str, quota: str, **fields: Any) -> dict:
    """A sagemaker_task whose failures end the run: `<name>Failed` with the refusal as given, or
    `<name>OverQuota` naming `quota` (see quota_fail)."""
    return {
        **sagemaker_task(name, resource, parameters, next_state, failed=f"{name}Failed", over_quota=f"{name}OverQuota", **fields),
        f"{name}Failed": refused(name, error),
        f"{name}OverQuota": quota_fail(name, quota, error),
    }


def quota_cause(task_name: str, quota: str) -> str:
    """The cause for a call a SageMaker quota refused, as a States.Format of $.error.Cause."""
    return states_format(
        f"{task_name} failed: SageMaker refused it for a quota: {quota}. Request an increase in the Service Quotas "
        "console (AWS services, Amazon SageMaker), or wait until what uses the quota ends, then start the run "
        "again. SageMaker said: {}",
        "$.error.Cause",
    )


def quota_fail(task_name: str, quota: str, error: str) -> dict:
    return fail_path(quota_cause(task_name, quota), error)


def job_failure_states(name: str, kind: str, name_path: str, status_key: str) -> dict:
    """Where a .sync job task's Catch leads. A job that ended Failed or Stopped fails the task with
    its Describe response (JSON) as the cause: report the job's status and FailureReason. Anything
    else (the create call refused, permissions) is reported with its cause as is."""
    return {
        f"{name}Failed?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.error.Cause", "StringMatches": "{*", "Next": f"Read{name}Failure"}],
            "Default": f"{name}Refused",
        },
        f"Read{name}Failure": {
            "Type": "Pass",
            "Parameters": {"job.$": "States.JsonMerge($.fallback.job, States.StringToJson($.error.Cause), false)"},
            "ResultPath": "$.failure",
            "Next": f"{name}JobFailed",
        },
        f"{name}JobFailed": fail_path(
            f"States.Format('{kind} {{}} ended {{}}: {{}}', {name_path}, $.failure.job.{status_key}, $.failure.job.FailureReason)",
            "TrainingFailed",
        ),
        f"{name}Refused": refused(name, "TrainingFailed"),
    }
