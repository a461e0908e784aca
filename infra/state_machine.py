"""The pipeline's Step Functions definition (ASL), built as a plain dict from the config.

Tune -> merge tuned + static hyperparameters -> Retrain -> (managed: wait for the rule jobs) ->
Gate -> CreateModel -> CreateEndpointConfig -> create or update the endpoint -> wait InService
(-> real-time: register auto scaling). Every task has a Catch, so every failure path ends in a
Fail state whose cause says what happened, never in a raw task error.

The SageMaker task parameters are the request builders' dicts (infra/sagemaker_requests.py), one source of
truth. Values known only at run time (names made from a run id, the dataset prefix
from the execution input, the model artifact of the retrain) are passed to the builders as
placeholders, and `bind_placeholders` turns each into a `Key.$` entry. Pure: no CDK here, so the
definition is unit-testable; CDK tokens (role ARN, bucket name, asset URL) pass through as strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from infra import endpoint_scaling, sagemaker_requests
from infra.config import Config
from infra.layout import DATA_CAPTURE_PREFIX, OUTPUT_PREFIX, endpoint_name
from training import metrics

#: The first group of a fresh UUID: 8 hex digits, so `<name>-<run>-tune` always fits the
#: 32-character tuning-job limit and SageMaker's name pattern, whatever the execution is called
#: (a custom execution name may hold underscores, dots or 80 characters). The names are in the
#: execution's history and output.
RUN_ID = "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0)"
#: Execution input a run may override, with the config value as default.
OVERRIDABLE = ("dataset_prefix", "epochs", "min_test_accuracy")
#: Seconds between polls of the endpoint and of the managed rule jobs.
POLL_SECONDS = 30
#: Endpoint statuses that end by themselves: wait for them before creating or updating.
TRANSIENT_ENDPOINT_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
#: Stands in for a FailureReason that SageMaker did not give (it gives one only on failure).
NO_REASON = "SageMaker gave no FailureReason"

_SYNC = "arn:aws:states:::sagemaker:{}.sync"
_CALL = "arn:aws:states:::sagemaker:{}"
_SDK = "arn:aws:states:::aws-sdk:{}:{}"
# Error names differ by integration. Optimised SageMaker integrations (.sync and request-response)
# report every SageMaker API error, throttling included, as SageMaker.AmazonSageMakerException
# (the error code is only in the cause); SDK integrations report <Service>.<ErrorCode>[Exception].
# A failed .sync job is not such an error: its Describe response arrives as the cause of a
# task failure, which the Catch blocks turn into a Fail state.
_RETRY_CALL = [
    {
        "ErrorEquals": ["SageMaker.AmazonSageMakerException", "ThrottlingException"],
        "IntervalSeconds": 5,
        "MaxAttempts": 5,
        "BackoffRate": 2.0,
    }
]
_RETRY_SDK = [
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


@dataclass(frozen=True)
class Deployment:
    """What the definition refers to that only the deployment knows: CDK tokens at synth time,
    plain sample values in unit tests."""

    region: str
    role_arn: str
    bucket_name: str
    source_bundle_uri: str


# --- placeholders -------------------------------------------------------------------------------
# A placeholder is a string the builders accept (it matches SageMaker's name pattern) and that
# appears nowhere else; `bind_placeholders` replaces it with the JSONPath holding the real value.
_PLACEHOLDER = re.compile(r"zzrun([a-z]+)zz")
_PATHS = {
    "tuningjob": "$.names.tuning_job",
    "trainingjob": "$.names.training_job",
    "model": "$.names.model",
    "endpointconfig": "$.names.endpoint_config",
    "datauri": "$.data_uri",
    "modeldata": "$.training.model_data",
}


def placeholder(key: str) -> str:
    if key not in _PATHS:
        raise KeyError(f"unknown placeholder {key!r}; known: {sorted(_PATHS)}")
    return f"zzrun{key}zz"


#: How a CDK token (a bucket name, an ARN) looks in a Python string before synthesis resolves it.
_CDK_TOKEN = re.compile(r"(\$\{Token\[[^\]]+\]\})")


def _escape_format(text: str) -> str:
    """Literal text inside States.Format: quote, braces and backslash are escaped, except inside
    CDK tokens, which must stay intact to resolve (to names without those characters)."""
    pieces = _CDK_TOKEN.split(text)
    return "".join(p if i % 2 else re.sub(r"([\\'{}])", r"\\\1", p) for i, p in enumerate(pieces))


def _bind_string(value: str) -> str | None:
    """JSONPath / intrinsic for a string holding placeholders, or None when it holds none."""
    parts = _PLACEHOLDER.split(value)
    if len(parts) == 1:
        return None
    literals, keys = parts[0::2], parts[1::2]
    if len(keys) == 1 and literals == ["", ""]:
        return _PATHS[keys[0]]
    template = "{}".join(_escape_format(text) for text in literals)
    return f"States.Format('{template}', {', '.join(_PATHS[k] for k in keys)})"


def bind_placeholders(value: Any) -> Any:
    """`value` with every placeholder-holding string `K: "..."` turned into `K.$: <path>`."""
    if isinstance(value, list):
        if any(isinstance(v, str) and _PLACEHOLDER.search(v) for v in value):
            raise ValueError(f"placeholders inside a list of strings cannot be bound: {value!r}")
        return [bind_placeholders(v) for v in value]
    if not isinstance(value, dict):
        return value
    bound = {}
    for key, item in value.items():
        path = _bind_string(item) if isinstance(item, str) else None
        if path is None:
            bound[key] = bind_placeholders(item)
        else:
            bound[f"{key}.$"] = path
    return bound


def _dynamic(request: dict, keys: tuple[str, ...], path: str) -> dict:
    """Replace the member at `keys` (a literal from the builder) with `<member>.$: path`."""
    parent = request
    for key in keys[:-1]:
        parent = parent[key]
    del parent[keys[-1]]
    parent[f"{keys[-1]}.$"] = path
    return request


# --- the requests, with their run-time parts bound ----------------------------------------------
def _locations(dep: Deployment) -> sagemaker_requests.JobLocations:
    return sagemaker_requests.JobLocations(
        role_arn=dep.role_arn,
        source_bundle_uri=dep.source_bundle_uri,
        data_uri=placeholder("datauri"),
        output_uri=f"s3://{dep.bucket_name}/{OUTPUT_PREFIX}",
        region=dep.region,
    )


def _tuning_request(cfg: Config, dep: Deployment) -> tuple[dict, dict]:
    """(task parameters, the static hyperparameters the run starts from)."""
    request = sagemaker_requests.tuning_job_request(cfg, _locations(dep), placeholder("tuningjob"))
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    _dynamic(request, ("TrainingJobDefinition", "StaticHyperParameters"), "$.hyperparameters.tuning")
    return bind_placeholders(request), static


def _training_request(cfg: Config, dep: Deployment) -> tuple[dict, dict]:
    request = sagemaker_requests.training_job_request(cfg, _locations(dep), placeholder("trainingjob"), {})
    static = request["HyperParameters"]
    _dynamic(request, ("HyperParameters",), "$.final.hyperparameters")
    return bind_placeholders(request), static


def _model_request(cfg: Config, dep: Deployment) -> dict:
    request = sagemaker_requests.model_request(cfg, _locations(dep), placeholder("model"), placeholder("modeldata"))
    return bind_placeholders(request)


def _endpoint_config_request(cfg: Config, dep: Deployment) -> dict:
    capture = f"s3://{dep.bucket_name}/{DATA_CAPTURE_PREFIX}" if cfg.endpoint.data_capture_percent else None
    request = sagemaker_requests.endpoint_config_request(
        cfg, placeholder("endpointconfig"), placeholder("model"), data_capture_uri=capture
    )
    return bind_placeholders(request)


# --- states ---------------------------------------------------------------------------------------
def _response(call: str) -> str:
    """Where a call's small response goes. Not `ResultPath: null`: CDK's token rendering
    (Stack.to_json_string) drops null values, and the response would replace the state."""
    return f"$.responses.{call}"


def _fail(cause: str, error: str) -> dict:
    return {"Type": "Fail", "Error": error, "Cause": cause}


def _fail_path(cause_path: str, error: str) -> dict:
    return {"Type": "Fail", "Error": error, "CausePath": cause_path}


def _refused(task: str, error: str) -> dict:
    """The Fail for a call that SageMaker (or another service) refused: its cause as given."""
    return _fail_path(f"States.Format('{task} failed: {{}}', $.error.Cause)", error)


def _catch(next_state: str) -> list:
    """Whatever the retries did not absorb goes to `next_state`, with {Error, Cause} at $.error."""
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next_state}]


def _task(resource: str, parameters: dict, next_state: str, retry: list, **fields: Any) -> dict:
    return {"Type": "Task", "Resource": resource, "Parameters": parameters, "Retry": retry, "Next": next_state, **fields}


def _call(task: str, resource: str, parameters: dict, next_state: str, retry: list, error: str, **fields: Any) -> dict:
    """`task` and `<task>Failed`, a Fail whose cause is the refusal (error code and message)."""
    return {
        task: _task(resource, parameters, next_state, retry, Catch=_catch(f"{task}Failed"), **fields),
        f"{task}Failed": _refused(task, error),
    }


def _present_and(field: str, *conditions: dict) -> dict:
    return {"And": [{"Variable": f"$.{field}", "IsPresent": True}, {"Or": list(conditions)}]}


def _input_states(cfg: Config) -> dict:
    """Validate the execution input by the machine itself, then merge it over the config defaults."""
    prefix, epochs, acc = "dataset_prefix", "epochs", "min_test_accuracy"
    choices = [
        {
            **_present_and(
                prefix,
                {"Not": {"Variable": f"$.{prefix}", "IsString": True}},
                {"Variable": f"$.{prefix}", "StringMatches": "s3:*"},
                {"Variable": f"$.{prefix}", "StringMatches": "/*"},
                # The channels append /train/ etc.: a trailing slash would make s3://b/x//train/.
                {"Variable": f"$.{prefix}", "StringMatches": "*/"},
                {"Variable": f"$.{prefix}", "StringMatches": "*//*"},
                {"Variable": f"$.{prefix}", "StringMatches": "* *"},
                {"Variable": f"$.{prefix}", "StringEquals": ""},
            ),
            "Next": "InvalidDatasetPrefix",
        },
        {
            **_present_and(
                epochs,
                {"Not": {"Variable": f"$.{epochs}", "IsNumeric": True}},
                {"Variable": f"$.{epochs}", "NumericLessThan": 1},
                {"Variable": f"$.{epochs}", "NumericGreaterThan": 1000},
            ),
            "Next": "InvalidEpochs",
        },
        {
            **_present_and(
                acc,
                {"Not": {"Variable": f"$.{acc}", "IsNumeric": True}},
                {"Variable": f"$.{acc}", "NumericLessThan": 0},
                {"Variable": f"$.{acc}", "NumericGreaterThan": 1},
            ),
            "Next": "InvalidMinTestAccuracy",
        },
    ]
    defaults = {prefix: cfg.dataset_prefix, epochs: cfg.training.epochs, acc: cfg.gate.min_test_accuracy}
    return {
        "ValidateInput": {"Type": "Choice", "Choices": choices, "Default": "ApplyDefaults"},
        "InvalidDatasetPrefix": _fail(
            "execution input dataset_prefix must be a key prefix in the pipeline bucket such as "
            "'datasets/demo' (no s3://, no leading, trailing or double slash, no spaces)",
            "InvalidInput",
        ),
        "InvalidEpochs": _fail("execution input epochs must be a number from 1 to 1000", "InvalidInput"),
        "InvalidMinTestAccuracy": _fail(
            "execution input min_test_accuracy must be a number from 0 to 1", "InvalidInput"
        ),
        "ApplyDefaults": {
            "Type": "Pass",
            "Parameters": {"defaults": defaults, "input.$": "$"},
            "Next": "MergeInput",
        },
        "MergeInput": {
            "Type": "Pass",
            "Parameters": {"settings.$": "States.JsonMerge($.defaults, $.input, false)"},
            "Next": "NameRun",
        },
    }


def _prepare_states(cfg: Config, dep: Deployment, tuning_static: dict, training_static: dict) -> dict:
    return {
        "NameRun": {
            "Type": "Pass",
            "Comment": "One run id for all names; the dataset URI from the input.",
            "Parameters": {
                "settings.$": "$.settings",
                "run_id.$": RUN_ID,
                "data_uri.$": f"States.Format('s3://{dep.bucket_name}/{{}}', $.settings.dataset_prefix)",
                # MathAdd rounds a non-integer to the nearest integer.
                "overrides": {"epochs.$": "States.Format('{}', States.MathAdd($.settings.epochs, 0))"},
                "static": {"tuning": tuning_static, "training": training_static},
                # Merged under a Describe response that may lack FailureReason (see _failure_reason).
                "fallback": {"FailureReason": NO_REASON},
            },
            "Next": "NameJobs",
        },
        "NameJobs": {
            "Type": "Pass",
            "Parameters": {
                "tuning_job.$": f"States.Format('{cfg.name}-{{}}-tune', $.run_id)",
                "training_job.$": f"States.Format('{cfg.name}-{{}}-final', $.run_id)",
                "model.$": f"States.Format('{cfg.name}-{{}}', $.run_id)",
                "endpoint_config.$": f"States.Format('{cfg.name}-{{}}', $.run_id)",
            },
            "ResultPath": "$.names",
            "Next": "ApplyOverrides",
        },
        "ApplyOverrides": {
            "Type": "Pass",
            "Parameters": {
                "tuning.$": "States.JsonMerge($.static.tuning, $.overrides, false)",
                "training.$": "States.JsonMerge($.static.training, $.overrides, false)",
            },
            "ResultPath": "$.hyperparameters",
            "Next": "Tune",
        },
    }


def _job_failure_states(task: str, kind: str, name_path: str, status_key: str) -> dict:
    """Where a .sync job task's Catch leads. A job that ended Failed or Stopped fails the task with
    its Describe response (JSON) as the cause: report the job's status and FailureReason. Anything
    else (the create call refused, permissions) is reported with its cause as is."""
    return {
        f"{task}Failed?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.error.Cause", "StringMatches": "{*", "Next": f"Read{task}Failure"}],
            "Default": f"{task}Refused",
        },
        f"Read{task}Failure": {
            "Type": "Pass",
            "Parameters": {"job.$": "States.JsonMerge($.fallback, States.StringToJson($.error.Cause), false)"},
            "ResultPath": "$.failure",
            "Next": f"{task}JobFailed",
        },
        f"{task}JobFailed": _fail_path(
            f"States.Format('{kind} {{}} ended {{}}: {{}}', {name_path}, $.failure.job.{status_key}, $.failure.job.FailureReason)",
            "TrainingFailed",
        ),
        f"{task}Refused": _refused(task, "TrainingFailed"),
    }


def _training_states(cfg: Config, dep: Deployment, tuning: dict, training: dict, after: str) -> dict:
    return {
        "Tune": _task(
            _SYNC.format("createHyperParameterTuningJob"),
            tuning,
            "MergeHyperparameters",
            _RETRY_CALL,
            ResultSelector={
                "best_training_job.$": "$.BestTrainingJob.TrainingJobName",
                "tuned.$": "$.BestTrainingJob.TunedHyperParameters",
                "objective.$": "$.BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric",
            },
            ResultPath="$.tuning",
            Catch=_catch("TuneFailed?"),
        ),
        **_job_failure_states("Tune", "tuning job", "$.names.tuning_job", "HyperParameterTuningJobStatus"),
        "MergeHyperparameters": {
            "Type": "Pass",
            "Comment": "TunedHyperParameters holds only the tuned values: merge them over the static ones.",
            "Parameters": {"hyperparameters.$": "States.JsonMerge($.hyperparameters.training, $.tuning.tuned, false)"},
            "ResultPath": "$.final",
            "Next": "Retrain",
        },
        "Retrain": _task(
            _SYNC.format("createTrainingJob"),
            training,
            after,
            _RETRY_CALL,
            ResultSelector={
                "job_name.$": "$.TrainingJobName",
                "model_data.$": "$.ModelArtifacts.S3ModelArtifacts",
                "metrics.$": "$.FinalMetricDataList",
            },
            ResultPath="$.training",
            Catch=_catch("RetrainFailed?"),
        ),
        **_job_failure_states("Retrain", "training job", "$.names.training_job", "TrainingJobStatus"),
    }


def _managed_rule_states(after: str) -> dict:
    """createTrainingJob.sync returns before the rule jobs end: poll until none is InProgress or
    Stopping. IssuesFound blocks; Error and Stopped are no verdict, never a pass."""
    return {
        "WaitForRules": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "DescribeRules"},
        **_call(
            "DescribeRules",
            _SDK.format("sagemaker", "describeTrainingJob"),
            {"TrainingJobName.$": "$.training.job_name"},
            "SummariseRules",
            _RETRY_SDK,
            "GateFailed",
            ResultSelector={
                "statuses.$": "$.DebugRuleEvaluationStatuses[*].RuleEvaluationStatus",
                "rules.$": "$.DebugRuleEvaluationStatuses",
            },
            ResultPath="$.rules",
        ),
        "SummariseRules": {
            "Type": "Pass",
            "Parameters": {
                "rules.$": "$.rules.rules",
                "running.$": "States.ArrayContains($.rules.statuses, 'InProgress')",
                "stopping.$": "States.ArrayContains($.rules.statuses, 'Stopping')",
                "issues.$": "States.ArrayContains($.rules.statuses, 'IssuesFound')",
                "errors.$": "States.ArrayContains($.rules.statuses, 'Error')",
                "stopped.$": "States.ArrayContains($.rules.statuses, 'Stopped')",
            },
            "ResultPath": "$.rules",
            "Next": "RulesDone?",
        },
        "RulesDone?": {
            "Type": "Choice",
            "Choices": [
                {
                    "Or": [
                        {"Variable": "$.rules.running", "BooleanEquals": True},
                        {"Variable": "$.rules.stopping", "BooleanEquals": True},
                    ],
                    "Next": "WaitForRules",
                },
                {"Variable": "$.rules.issues", "BooleanEquals": True, "Next": "NameRuleWithIssues"},
                {"Variable": "$.rules.errors", "BooleanEquals": True, "Next": "NameRuleWithError"},
                {"Variable": "$.rules.stopped", "BooleanEquals": True, "Next": "NameStoppedRule"},
            ],
            "Default": after,
        },
        **_rule_verdict_states("NameRuleWithIssues", "IssuesFound", "RuleFoundIssues", "found issues"),
        **_rule_verdict_states("NameRuleWithError", "Error", "RuleErrored", "ended in Error: no verdict, so no deployment"),
        **_rule_verdict_states("NameStoppedRule", "Stopped", "RuleStopped", "was stopped: no verdict, so no deployment"),
    }


def _rule_verdict_states(name_state: str, status: str, fail_state: str, what: str) -> dict:
    """The first rule whose evaluation ended `status`, named in the Fail cause."""
    return {
        name_state: {
            "Type": "Pass",
            "Parameters": {"names.$": f"$.rules.rules[?(@.RuleEvaluationStatus == '{status}')].RuleConfigurationName"},
            "Next": fail_state,
        },
        fail_state: _fail_path(f"States.Format('rule {{}} {what}', States.ArrayGetItem($.names, 0))", "GateFailed"),
    }


def _gate_states(cfg: Config, after: str) -> dict:
    """Portable rules (`rule_<Name>` = 1 means an issue) and test_acc, from FinalMetricDataList.
    A metric that was never reported is no verdict, never a pass."""
    rules = list(metrics.RULE_NAMES) if cfg.debugger.mode == "portable" and cfg.gate.block_on_rules else []
    required = [*(metrics.rule_metric_name(r) for r in rules), "test_acc"]
    presence = {f"{m}.$": f"States.ArrayContains($.gate.reported, '{m}')" for m in required}
    values = {f"{m}.$": f"$.training.metrics[?(@.MetricName == '{m}')].Value" for m in required}
    missing = [
        {"Variable": f"$.gate.present.{m}", "BooleanEquals": False, "Next": f"NoVerdict_{m}"} for m in required
    ]
    verdicts = [
        {"Variable": f"$.gate.values.{metrics.rule_metric_name(r)}[0]", "NumericGreaterThanEquals": 1, "Next": f"RuleFailed_{r}"}
        for r in rules
    ]
    verdicts.append(
        {"Variable": "$.gate.values.test_acc[0]", "NumericLessThanPath": "$.settings.min_test_accuracy", "Next": "AccuracyTooLow"}
    )
    states = {
        "GateMetrics": {
            "Type": "Pass",
            "Parameters": {"reported.$": "$.training.metrics[*].MetricName"},
            "ResultPath": "$.gate",
            "Next": "GatePresence",
        },
        "GatePresence": {"Type": "Pass", "Parameters": presence, "ResultPath": "$.gate.present", "Next": "AllReported?"},
        "AllReported?": {"Type": "Choice", "Choices": missing, "Default": "GateValues"},
        "GateValues": {"Type": "Pass", "Parameters": values, "ResultPath": "$.gate.values", "Next": "Gate"},
        "Gate": {"Type": "Choice", "Choices": verdicts, "Default": after},
        "AccuracyTooLow": _fail_path(
            "States.Format('test_acc {} < {}', $.gate.values.test_acc[0], $.settings.min_test_accuracy)", "GateFailed"
        ),
    }
    for m in required:
        states[f"NoVerdict_{m}"] = _fail(f"{m} was not reported by the training job: no verdict, so no deployment", "GateFailed")
    for r in rules:
        states[f"RuleFailed_{r}"] = _fail(f"rule {r} found issues", "GateFailed")
    return states



def _deploy_states(cfg: Config, dep: Deployment) -> dict:
    """Create or update the endpoint, wait until it serves this run's config. Failures that leave
    the previous endpoint serving (update refused, update rolled back) re-register its auto scaling
    (real-time) before the run fails, so a run never leaves scaling paused."""
    endpoint = endpoint_name(cfg)
    realtime = cfg.endpoint.mode == "realtime"
    restore = "RegisterScaling" if realtime else "DeployFailed"
    delete_hint = f"delete it (aws sagemaker delete-endpoint --endpoint-name {endpoint}) and start the run again"
    return {
        **_call(
            "CreateModel", _CALL.format("createModel"), _model_request(cfg, dep), "CreateEndpointConfig", _RETRY_CALL,
            "DeployFailed", ResultPath=_response("create_model"),
        ),
        **_call(
            "CreateEndpointConfig", _CALL.format("createEndpointConfig"), _endpoint_config_request(cfg, dep), "FindEndpoint",
            _RETRY_CALL, "DeployFailed", ResultPath=_response("create_endpoint_config"),
        ),
        "FindEndpoint": _task(
            _SDK.format("sagemaker", "describeEndpoint"),
            {"EndpointName": endpoint},
            "ExistingEndpoint?",
            _RETRY_SDK,
            ResultSelector={"status.$": "$.EndpointStatus"},
            ResultPath="$.existing",
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.lookup", "Next": "EndpointMissing?"}],
        ),
        "EndpointMissing?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.lookup.Cause", "StringMatches": "*Could not find endpoint*", "Next": "CreateEndpoint"}],
            "Default": "EndpointLookupFailed",
        },
        "EndpointLookupFailed": _fail_path("States.Format('DescribeEndpoint failed: {}', $.lookup.Cause)", "DeployFailed"),
        "ExistingEndpoint?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.existing.status", "StringEquals": "InService", "Next": "PauseScaling" if realtime else "UpdateEndpoint"},
                {
                    "Or": [{"Variable": "$.existing.status", "StringEquals": s} for s in TRANSIENT_ENDPOINT_STATUSES],
                    "Next": "WaitForExistingEndpoint",
                },
            ],
            "Default": "EndpointUnusable",
        },
        "WaitForExistingEndpoint": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "FindEndpoint"},
        # Failed, UpdateRollbackFailed, OutOfService: SageMaker cannot update it. Deleting a serving
        # endpoint is for its owner to decide, not for a pipeline run.
        "EndpointUnusable": _fail_path(
            f"States.Format('endpoint {endpoint} is {{}} and cannot be updated: {_escape_format(delete_hint)}', $.existing.status)",
            "DeployFailed",
        ),
        **_call(
            "CreateEndpoint", _CALL.format("createEndpoint"),
            {"EndpointName": endpoint, "EndpointConfigName.$": "$.names.endpoint_config"},
            "WaitForEndpoint", _RETRY_CALL, "DeployFailed", ResultPath=_response("create_endpoint"),
        ),
        "UpdateEndpoint": _task(
            _CALL.format("updateEndpoint"),
            {"EndpointName": endpoint, "EndpointConfigName.$": "$.names.endpoint_config"},
            "WaitForEndpoint",
            _RETRY_CALL,
            ResultPath=_response("update_endpoint"),
            Catch=_catch("UpdateEndpointRefused"),
        ),
        "UpdateEndpointRefused": _outcome(f"States.Format('UpdateEndpoint failed: {endpoint} still serves its previous config: {{}}', $.error.Cause)", restore),
        "WaitForEndpoint": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "CheckEndpoint"},
        **_call(
            "CheckEndpoint", _SDK.format("sagemaker", "describeEndpoint"), {"EndpointName": endpoint}, "EndpointReady?",
            _RETRY_SDK, "DeployFailed",
            ResultSelector={"status.$": "$.EndpointStatus", "config.$": "$.EndpointConfigName"},
            ResultPath="$.endpoint",
        ),
        "EndpointReady?": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.endpoint.status", "StringEquals": "InService"},
                        {"Variable": "$.endpoint.config", "StringEqualsPath": "$.names.endpoint_config"},
                    ],
                    "Next": "RegisterScaling" if realtime else "Deployed",
                },
                {
                    "Or": [
                        {"Variable": "$.endpoint.status", "StringEquals": "InService"},
                        {"Variable": "$.endpoint.status", "StringEquals": "Failed"},
                        {"Variable": "$.endpoint.status", "StringEquals": "UpdateRollbackFailed"},
                        {"Variable": "$.endpoint.status", "StringEquals": "OutOfService"},
                    ],
                    "Next": "ReadFailureReason",
                },
            ],
            "Default": "WaitForEndpoint",
        },
        # The whole response, not a selector on FailureReason: SageMaker returns it only for some
        # statuses, and a selector on a missing field is an uncatchable States.Runtime error.
        **_call(
            "ReadFailureReason", _SDK.format("sagemaker", "describeEndpoint"), {"EndpointName": endpoint},
            "MergeFailureReason", _RETRY_SDK, "DeployFailed", ResultPath="$.described",
        ),
        "MergeFailureReason": {
            "Type": "Pass",
            "Parameters": {"reason.$": "States.JsonMerge($.fallback, $.described, false)"},
            "ResultPath": "$.failure",
            "Next": "WhichFailure?",
        },
        "WhichFailure?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.endpoint.status", "StringEquals": "InService", "Next": "UpdateRolledBack"},
                {"Variable": "$.endpoint.status", "StringEquals": "UpdateRollbackFailed", "Next": "RollbackFailed"},
            ],
            "Default": "EndpointFailed",
        },
        "UpdateRolledBack": _outcome(
            f"States.Format('endpoint update rolled back: {endpoint} still serves {{}}: {{}}', $.endpoint.config, $.failure.reason.FailureReason)",
            restore,
        ),
        "RollbackFailed": _outcome(
            f"States.Format('endpoint update rollback failed: {endpoint} is UpdateRollbackFailed: {{}}; {_escape_format(delete_hint)}', $.failure.reason.FailureReason)",
            "DeployFailed",
        ),
        "EndpointFailed": _outcome(
            f"States.Format('endpoint {endpoint} is {{}}: {{}}', $.endpoint.status, $.failure.reason.FailureReason)", "DeployFailed"
        ),
        "DeployFailed": _fail_path("$.outcome.cause", "DeployFailed"),
        **(_scaling_states(cfg, endpoint) if realtime else {}),
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
            },
            "End": True,
        },
    }


def _outcome(cause: str, next_state: str) -> dict:
    """Record why the deployment failed at $.outcome.cause; `DeployFailed` reports it."""
    return {"Type": "Pass", "Parameters": {"cause.$": cause}, "ResultPath": "$.outcome", "Next": next_state}


def _scaling_states(cfg: Config, endpoint: str) -> dict:
    """Real-time target tracking: paused before an update, registered after it, whether the update
    succeeded (new config) or left the previous config serving ($.outcome set: then the run fails)."""
    scaling = endpoint_scaling
    after = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.scaling_error", "Next": "AfterScaling?"}]

    def register(api: str, request: dict, next_state: str, response: str) -> dict:
        return _task(_SDK.format("applicationautoscaling", api), request, next_state, _RETRY_SDK, ResultPath=_response(response), Catch=after)
    return {
        "PauseScaling": _task(
            _SDK.format("applicationautoscaling", "deregisterScalableTarget"),
            scaling.deregister_scalable_target_request(endpoint),
            "UpdateEndpoint",
            _RETRY_SDK,
            ResultPath=_response("pause_scaling"),
            Catch=[
                # No target yet (first update, or scaling never registered): nothing to pause.
                {"ErrorEquals": ["ApplicationAutoScaling.ObjectNotFoundException"], "ResultPath": _response("pause_scaling"), "Next": "UpdateEndpoint"},
                *_catch("PauseScalingFailed"),
            ],
        ),
        "PauseScalingFailed": _refused("PauseScaling", "DeployFailed"),
        "RegisterScaling": register("registerScalableTarget", scaling.register_scalable_target_request(cfg, endpoint), "PutScalingPolicy", "register_scaling"),
        "PutScalingPolicy": register("putScalingPolicy", scaling.put_scaling_policy_request(cfg, endpoint), "AfterScaling?", "put_scaling_policy"),
        "AfterScaling?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.outcome", "IsPresent": True, "Next": "DeployFailed"},
                {"Variable": "$.scaling_error", "IsPresent": True, "Next": "ScalingFailed"},
            ],
            "Default": "Deployed",
        },
        "ScalingFailed": _fail_path(
            f"States.Format('endpoint {endpoint} serves this run, but registering its auto scaling failed: {{}}', $.scaling_error.Cause)",
            "DeployFailed",
        ),
    }


def build_definition(cfg: Config, dep: Deployment) -> dict:
    """The whole ASL definition for `cfg`, with `dep`'s values (tokens or samples) embedded."""
    tuning, tuning_static = _tuning_request(cfg, dep)
    training, training_static = _training_request(cfg, dep)
    managed = cfg.debugger.mode == "managed" and cfg.gate.block_on_rules
    states = {
        **_input_states(cfg),
        **_prepare_states(cfg, dep, tuning_static, training_static),
        **_training_states(cfg, dep, tuning, training, "WaitForRules" if managed else "GateMetrics"),
        **(_managed_rule_states("GateMetrics") if managed else {}),
        **_gate_states(cfg, "CreateModel"),
        **_deploy_states(cfg, dep),
    }
    return {
        "Comment": f"{cfg.name}: tune, retrain, gate and deploy an image classifier",
        "StartAt": "ValidateInput",
        "TimeoutSeconds": _timeout_seconds(cfg),
        "States": states,
    }


def _timeout_seconds(cfg: Config) -> int:
    """An upper bound for a whole run: every tuning wave plus the retrain, each at its max wait
    and with every RetryStrategy attempt (each attempt may run that long again), plus an hour for
    rules and deployment. A stuck run then ends (TIMED_OUT) and alerts."""
    t = cfg.training
    per_job = (t.max_wait_seconds if t.spot else t.max_runtime_seconds) * (t.max_retry_attempts + 1)
    waves = -(-cfg.tuning.max_jobs // cfg.tuning.max_parallel_jobs)
    return per_job * (waves + 1) + 3600


def sagemaker_tasks(definition: dict) -> dict[str, tuple[str, dict]]:
    """{state name: (SageMaker operation name, parameters)} for every SageMaker task."""
    tasks = {}
    for name, state in definition["States"].items():
        resource = state.get("Resource", "")
        match = re.fullmatch(r"arn:aws:states:::(?:aws-sdk:)?sagemaker:(\w+?)(?:\.sync)?", resource)
        if state.get("Type") == "Task" and match:
            action = match.group(1)
            tasks[name] = (action[0].upper() + action[1:], state["Parameters"])
    return tasks
