"""The pipeline's Step Functions definition (ASL), built as a plain dict from the config.

Tune -> merge tuned + static hyperparameters -> Retrain -> (managed: wait for the rule jobs) ->
Gate -> CreateModel -> CreateEndpointConfig -> create or update the endpoint -> wait InService
(-> real-time: register auto scaling). Every failure path ends in a Fail state whose cause says
what happened.

The SageMaker task parameters are the request builders' dicts (infra/requests.py), one source of
truth. Values known only at run time (names derived from the execution name, the dataset prefix
from the execution input, the model artifact of the retrain) are passed to the builders as
placeholders, and `bind_placeholders` turns each into a `Key.$` entry. Pure: no CDK here, so the
definition is unit-testable; CDK tokens (role ARN, bucket name, asset URL) pass through as strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from infra import endpoint_scaling, requests
from infra.config import Config
from training import metrics

#: `$$.Execution.Name`'s first dash-separated segment (8 hex digits for the default UUID names):
#: short enough that `<name>-<run>-tune` fits the 32-character tuning-job limit.
RUN_ID = "States.ArrayGetItem(States.StringSplit($$.Execution.Name, '-'), 0)"
#: Execution input a run may override, with the config value as default.
OVERRIDABLE = ("dataset_prefix", "epochs", "min_test_accuracy")
#: Output prefix of every job (models, managed debug output, per-job checkpoints).
OUTPUT_PREFIX = "runs"
DATA_CAPTURE_PREFIX = "capture"
#: Seconds between polls of the endpoint and of the managed rule jobs.
POLL_SECONDS = 30

_SYNC = "arn:aws:states:::sagemaker:{}.sync"
_CALL = "arn:aws:states:::sagemaker:{}"
_SDK = "arn:aws:states:::aws-sdk:{}:{}"
# Throttling surfaces under these names: optimised integrations wrap every SageMaker error in
# AmazonSageMakerException, SDK integrations prefix the service name.
_THROTTLED = ["ThrottlingException", "SageMaker.ThrottlingException"]
_RETRY_THROTTLED = [{"ErrorEquals": _THROTTLED, "IntervalSeconds": 5, "MaxAttempts": 5, "BackoffRate": 2.0}]
_RETRY_CALL = [
    {
        "ErrorEquals": [*_THROTTLED, "SageMaker.AmazonSageMakerException"],
        "IntervalSeconds": 5,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    }
]
_RETRY_SDK = [
    {
        "ErrorEquals": [*_THROTTLED, "SageMaker.SageMakerException", "ApplicationAutoScaling.ConcurrentUpdateException"],
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


def endpoint_name(cfg: Config) -> str:
    """Fixed per stack, so that the Lambda front door knows it before the first run."""
    return f"{cfg.name}-endpoint"


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
def _locations(dep: Deployment) -> requests.JobLocations:
    return requests.JobLocations(
        role_arn=dep.role_arn,
        source_bundle_uri=dep.source_bundle_uri,
        data_uri=placeholder("datauri"),
        output_uri=f"s3://{dep.bucket_name}/{OUTPUT_PREFIX}",
        region=dep.region,
    )


def _tuning_request(cfg: Config, dep: Deployment) -> tuple[dict, dict]:
    """(task parameters, the static hyperparameters the run starts from)."""
    request = requests.tuning_job_request(cfg, _locations(dep), placeholder("tuningjob"))
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    _dynamic(request, ("TrainingJobDefinition", "StaticHyperParameters"), "$.hyperparameters.tuning")
    return bind_placeholders(request), static


def _training_request(cfg: Config, dep: Deployment) -> tuple[dict, dict]:
    request = requests.training_job_request(cfg, _locations(dep), placeholder("trainingjob"), {})
    static = request["HyperParameters"]
    _dynamic(request, ("HyperParameters",), "$.final.hyperparameters")
    return bind_placeholders(request), static


def _model_request(cfg: Config, dep: Deployment) -> dict:
    request = requests.model_request(cfg, _locations(dep), placeholder("model"), placeholder("modeldata"))
    return bind_placeholders(request)


def _endpoint_config_request(cfg: Config, dep: Deployment) -> dict:
    capture = f"s3://{dep.bucket_name}/{DATA_CAPTURE_PREFIX}" if cfg.endpoint.data_capture_percent else None
    request = requests.endpoint_config_request(
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


def _task(resource: str, parameters: dict, next_state: str, retry: list, **fields: Any) -> dict:
    return {"Type": "Task", "Resource": resource, "Parameters": parameters, "Retry": retry, "Next": next_state, **fields}


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
            "'datasets/demo' (no s3://, no leading slash, no spaces)",
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
    def name(suffix: str) -> str:
        return f"States.Format('{cfg.name}-{{}}{suffix}', {RUN_ID})"

    return {
        "NameRun": {
            "Type": "Pass",
            "Comment": "Names derive from the execution name; the dataset URI from the input.",
            "Parameters": {
                "settings.$": "$.settings",
                "names": {
                    "tuning_job.$": name("-tune"),
                    "training_job.$": name("-final"),
                    "model.$": name(""),
                    "endpoint_config.$": name(""),
                },
                "data_uri.$": f"States.Format('s3://{dep.bucket_name}/{{}}', $.settings.dataset_prefix)",
                # MathAdd rounds a non-integer to the nearest integer.
                "overrides": {"epochs.$": "States.Format('{}', States.MathAdd($.settings.epochs, 0))"},
                "static": {"tuning": tuning_static, "training": training_static},
            },
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


def _training_states(cfg: Config, dep: Deployment, tuning: dict, training: dict, after: str) -> dict:
    return {
        "Tune": _task(
            _SYNC.format("createHyperParameterTuningJob"),
            tuning,
            "MergeHyperparameters",
            _RETRY_THROTTLED,
            ResultSelector={
                "best_training_job.$": "$.BestTrainingJob.TrainingJobName",
                "tuned.$": "$.BestTrainingJob.TunedHyperParameters",
                "objective.$": "$.BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric",
            },
            ResultPath="$.tuning",
        ),
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
            _RETRY_THROTTLED,
            ResultSelector={
                "job_name.$": "$.TrainingJobName",
                "model_data.$": "$.ModelArtifacts.S3ModelArtifacts",
                "metrics.$": "$.FinalMetricDataList",
            },
            ResultPath="$.training",
        ),
    }


def _managed_rule_states(after: str) -> dict:
    """createTrainingJob.sync returns before the rule jobs end: poll until none is InProgress or
    Stopping. IssuesFound blocks; Error is no verdict, never a pass."""
    return {
        "WaitForRules": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "DescribeRules"},
        "DescribeRules": _task(
            _SDK.format("sagemaker", "describeTrainingJob"),
            {"TrainingJobName.$": "$.training.job_name"},
            "SummariseRules",
            _RETRY_SDK,
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
            ],
            "Default": after,
        },
        "NameRuleWithIssues": {
            "Type": "Pass",
            "Parameters": {"names.$": "$.rules.rules[?(@.RuleEvaluationStatus == 'IssuesFound')].RuleConfigurationName"},
            "Next": "RuleFoundIssues",
        },
        "RuleFoundIssues": _fail_path("States.Format('rule {} found issues', States.ArrayGetItem($.names, 0))", "GateFailed"),
        "NameRuleWithError": {
            "Type": "Pass",
            "Parameters": {"names.$": "$.rules.rules[?(@.RuleEvaluationStatus == 'Error')].RuleConfigurationName"},
            "Next": "RuleErrored",
        },
        "RuleErrored": _fail_path(
            "States.Format('rule {} ended in Error: no verdict, so no deployment', States.ArrayGetItem($.names, 0))",
            "GateFailed",
        ),
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
    endpoint = endpoint_name(cfg)
    realtime = cfg.endpoint.mode == "realtime"
    scaling = endpoint_scaling
    states = {
        "CreateModel": _task(_CALL.format("createModel"), _model_request(cfg, dep), "CreateEndpointConfig", _RETRY_CALL, ResultPath=_response("create_model")),
        "CreateEndpointConfig": _task(
            _CALL.format("createEndpointConfig"), _endpoint_config_request(cfg, dep), "FindEndpoint", _RETRY_CALL, ResultPath=_response("create_endpoint_config")
        ),
        "FindEndpoint": _task(
            _SDK.format("sagemaker", "describeEndpoint"),
            {"EndpointName": endpoint},
            "PauseScaling" if realtime else "UpdateEndpoint",
            _RETRY_SDK,
            ResultSelector={"status.$": "$.EndpointStatus"},
            ResultPath="$.existing",
            Catch=[{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.lookup", "Next": "EndpointMissing?"}],
        ),
        "EndpointMissing?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.lookup.Cause", "StringMatches": "*Could not find endpoint*", "Next": "CreateEndpoint"}],
            "Default": "EndpointLookupFailed",
        },
        "EndpointLookupFailed": _fail_path("States.Format('DescribeEndpoint failed: {}', $.lookup.Cause)", "DeployFailed"),
        "CreateEndpoint": _task(
            _CALL.format("createEndpoint"),
            {"EndpointName": endpoint, "EndpointConfigName.$": "$.names.endpoint_config"},
            "WaitForEndpoint",
            _RETRY_CALL,
            ResultPath=_response("create_endpoint"),
        ),
        "UpdateEndpoint": _task(
            _CALL.format("updateEndpoint"),
            {"EndpointName": endpoint, "EndpointConfigName.$": "$.names.endpoint_config"},
            "WaitForEndpoint",
            _RETRY_CALL,
            ResultPath=_response("update_endpoint"),
        ),
        "WaitForEndpoint": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "CheckEndpoint"},
        "CheckEndpoint": _task(
            _SDK.format("sagemaker", "describeEndpoint"),
            {"EndpointName": endpoint},
            "EndpointReady?",
            _RETRY_SDK,
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
                    ],
                    "Next": "ReadFailureReason",
                },
            ],
            "Default": "WaitForEndpoint",
        },
        "ReadFailureReason": _task(
            _SDK.format("sagemaker", "describeEndpoint"),
            {"EndpointName": endpoint},
            "WhichFailure?",
            _RETRY_SDK,
            ResultSelector={"reason.$": "$.FailureReason"},
            ResultPath="$.failure",
        ),
        "WhichFailure?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.endpoint.status", "StringEquals": "InService", "Next": "UpdateRolledBack"},
                {"Variable": "$.endpoint.status", "StringEquals": "UpdateRollbackFailed", "Next": "RollbackFailed"},
            ],
            "Default": "EndpointFailed",
        },
        "UpdateRolledBack": _fail_path(
            f"States.Format('endpoint update rolled back: {endpoint} still serves {{}}: {{}}', $.endpoint.config, $.failure.reason)",
            "DeployFailed",
        ),
        "RollbackFailed": _fail_path(
            f"States.Format('endpoint update rollback failed: {endpoint}: {{}}', $.failure.reason)", "DeployFailed"
        ),
        "EndpointFailed": _fail_path(f"States.Format('endpoint {endpoint} failed: {{}}', $.failure.reason)", "DeployFailed"),
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
    if realtime:
        states.update(
            {
                "PauseScaling": _task(
                    _SDK.format("applicationautoscaling", "deregisterScalableTarget"),
                    scaling.deregister_scalable_target_request(endpoint),
                    "UpdateEndpoint",
                    _RETRY_SDK,
                    ResultPath=_response("pause_scaling"),
                    # No target yet (first update, or scaling never registered): nothing to pause.
                    Catch=[{"ErrorEquals": ["ApplicationAutoScaling.ObjectNotFoundException"], "ResultPath": _response("pause_scaling"), "Next": "UpdateEndpoint"}],
                ),
                "RegisterScaling": _task(
                    _SDK.format("applicationautoscaling", "registerScalableTarget"),
                    scaling.register_scalable_target_request(cfg, endpoint),
                    "PutScalingPolicy",
                    _RETRY_SDK,
                    ResultPath=_response("register_scaling"),
                ),
                "PutScalingPolicy": _task(
                    _SDK.format("applicationautoscaling", "putScalingPolicy"),
                    scaling.put_scaling_policy_request(cfg, endpoint),
                    "Deployed",
                    _RETRY_SDK,
                    ResultPath=_response("put_scaling_policy"),
                ),
            }
        )
    return states


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
    """An upper bound for a whole run: every tuning wave plus the retrain, each at its max wait,
    plus an hour for rules and deployment. A stuck run then ends (TIMED_OUT) and alerts."""
    t = cfg.training
    per_job = t.max_wait_seconds if t.spot else t.max_runtime_seconds
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
