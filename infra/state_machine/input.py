"""The run's start: the execution input validated by the machine itself (from the limits in
infra/layout.py, which `imgclf start` checks with too), merged over the config defaults, and the
run's names and hyperparameter overrides derived from it."""
from __future__ import annotations

from infra.config import Config
from infra.layout import (
    DATASET_PREFIX,
    DATASET_PREFIX_MESSAGE,
    DATASET_PREFIX_REFUSED,
    MODEL_PACKAGE,
    NUMBER_LIMITS,
    OVERRIDABLE,
    model_package_group_name,
)
from infra.state_machine.deployment import Deployment
from infra.state_machine.vocabulary import FALLBACKS, RETRY_SDK, SDK, call, fail, fail_path

#: The first group of a fresh UUID: 8 hex digits, so `<name>-<run>-tune` always fits the
#: 32-character tuning-job limit and SageMaker's name pattern, whatever the execution is called
#: (a custom execution name may hold underscores, dots or 80 characters). The names are in the
#: execution's history and output.
RUN_ID = "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0)"


def _refusal_state(key: str) -> str:
    """`min_test_accuracy` -> `InvalidMinTestAccuracy`."""
    return "Invalid" + "".join(word.capitalize() for word in key.split("_"))


def _present_and(key: str, *conditions: dict) -> dict:
    return {"And": [{"Variable": f"$.{key}", "IsPresent": True}, {"Or": list(conditions)}]}


def package_arn_pattern(cfg: Config) -> str:
    """`StringMatches` pattern of a version of this stack's group (and of no other group)."""
    return f"arn:aws*:sagemaker:*:*:model-package/{model_package_group_name(cfg)}/*"


def package_arn_message(cfg: Config) -> str:
    return (f"execution input {MODEL_PACKAGE} must be the ARN of a version of the model package group "
            f"{model_package_group_name(cfg)} (imgclf models list shows them)")


def _choices(cfg: Config) -> list[dict]:
    package = f"$.{MODEL_PACKAGE}"
    choices = [{
        "And": [{"Variable": package, "IsPresent": True}, {"Variable": package, "IsString": True},
                {"Variable": package, "StringMatches": package_arn_pattern(cfg)}],
        "Next": "DescribePackage",
    }, {"Variable": package, "IsPresent": True, "Next": _refusal_state(MODEL_PACKAGE)}]
    return choices + _override_choices()


def _override_choices() -> list[dict]:
    variable = f"$.{DATASET_PREFIX}"
    prefix = _present_and(
        DATASET_PREFIX,
        {"Not": {"Variable": variable, "IsString": True}},
        *({"Variable": variable, "StringMatches": pattern} for pattern in DATASET_PREFIX_REFUSED),
        {"Variable": variable, "StringEquals": ""},
    )
    choices = [{**prefix, "Next": _refusal_state(DATASET_PREFIX)}]
    for limit in NUMBER_LIMITS:
        variable = f"$.{limit.key}"
        number = _present_and(
            limit.key,
            {"Not": {"Variable": variable, "IsNumeric": True}},
            {"Variable": variable, "NumericLessThan": limit.low},
            {"Variable": variable, "NumericGreaterThan": limit.high},
        )
        choices.append({**number, "Next": _refusal_state(limit.key)})
    return choices


def _defaults(cfg: Config) -> dict:
    """The config value each execution-input key overrides."""
    defaults = {
        DATASET_PREFIX: cfg.dataset_prefix,
        "epochs": cfg.training.epochs,
        "min_test_accuracy": cfg.gate.min_test_accuracy,
    }
    assert tuple(defaults) == OVERRIDABLE, "every overridable key needs its config default"
    return defaults


def input_states(cfg: Config, after: str) -> dict:
    """Validate the execution input by the machine itself, then merge it over the config defaults."""
    refusals = {_refusal_state(DATASET_PREFIX): fail(DATASET_PREFIX_MESSAGE, "InvalidInput")}
    refusals.update({_refusal_state(limit.key): fail(limit.message, "InvalidInput") for limit in NUMBER_LIMITS})
    refusals[_refusal_state(MODEL_PACKAGE)] = fail(package_arn_message(cfg), "InvalidInput")
    return {
        "ValidateInput": {"Type": "Choice", "Choices": _choices(cfg), "Default": "ApplyDefaults"},
        **refusals,
        "ApplyDefaults": {
            "Type": "Pass",
            "Parameters": {"defaults": _defaults(cfg), "input.$": "$"},
            "Next": "MergeInput",
        },
        "MergeInput": {
            "Type": "Pass",
            "Parameters": {"settings.$": "States.JsonMerge($.defaults, $.input, false)"},
            "Next": after,
        },
    }


def naming_states(cfg: Config, dep: Deployment, tuning_static: dict, training_static: dict, after: str) -> dict:
    """NameRun -> NameJobs -> ApplyOverrides: the run id and names, the dataset URI, and the
    static hyperparameters of both job kinds with the input's epochs."""
    return {
        "NameRun": {
            "Type": "Pass",
            "Comment": "One run id for all names; the dataset URI from the input.",
            "Parameters": {
                "settings.$": "$.settings",
                "run_id.$": RUN_ID,
                "data_uri.$": f"States.Format('s3://{dep.bucket_name}/{{}}', $.settings.dataset_prefix)",
                # MathAdd rounds a non-integer to the nearest integer.
                "epochs.$": "States.MathAdd($.settings.epochs, 0)",
                "overrides": {"epochs.$": "States.Format('{}', States.MathAdd($.settings.epochs, 0))"},
                "static": {"tuning": tuning_static, "training": training_static},
                "fallback": FALLBACKS,
                # Throttled SageMaker calls retried so far (vocabulary.sagemaker_task).
                "throttled": {"count": 0},
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
            "Next": after,
        },
    }


def package_states(cfg: Config, deploy: str) -> dict:
    """An input that names a version deploys it, training nothing (the approval rule, `imgclf
    rollback`): it must be Approved and registered by this pipeline, whose metadata names the jobs
    that made it; the run's names then come from a fresh run id, as for a trained model."""
    metadata = "$.described.CustomerMetadataProperties"
    return {
        **call(
            "DescribePackage", SDK.format("sagemaker", "describeModelPackage"), {"ModelPackageName.$": f"$.{MODEL_PACKAGE}"},
            "PackageApproved?", RETRY_SDK, "InvalidInput", ResultPath="$.described",
        ),
        "PackageApproved?": {
            "Type": "Choice",
            "Choices": [{
                "And": [
                    {"Variable": "$.described.ModelApprovalStatus", "IsPresent": True},
                    {"Variable": "$.described.ModelApprovalStatus", "StringEquals": "Approved"},
                    {"Variable": f"{metadata}.training_job", "IsPresent": True},
                    {"Variable": f"{metadata}.tuning_job", "IsPresent": True},
                    {"Variable": "$.described.ModelMetrics.ModelQuality.Statistics.S3Uri", "IsPresent": True},
                ],
                "Next": "NamePackageRun",
            }],
            "Default": "PackageNotDeployable",
        },
        "PackageNotDeployable": fail_path(
            f"States.Format('model package {{}} cannot be deployed: only an Approved version that this pipeline "
            f"registered can (approve it with imgclf models approve)', $.{MODEL_PACKAGE})",
            "InvalidInput",
        ),
        "NamePackageRun": {
            "Type": "Pass",
            "Comment": "The deploy states read what a training run leaves: the version's model data and provenance.",
            "Parameters": {
                "run_id.$": RUN_ID,
                "package": {"arn.$": "$.described.ModelPackageArn"},
                "training": {"job_name.$": f"{metadata}.training_job"},
                "container.$": "States.ArrayGetItem($.described.InferenceSpecification.Containers, 0)",
                # The tuned values are in the version's evidence file; the output names it.
                "tuning": {"tuned": {"evidence.$": "$.described.ModelMetrics.ModelQuality.Statistics.S3Uri"}},
                "tuning_job.$": f"{metadata}.tuning_job",
                "fallback": FALLBACKS,
                "throttled": {"count": 0},
            },
            "Next": "NamePackageJobs",
        },
        "NamePackageJobs": {
            "Type": "Pass",
            "Parameters": {
                "tuning_job.$": "$.tuning_job",
                "training_job.$": "$.training.job_name",
                "model.$": f"States.Format('{cfg.name}-{{}}', $.run_id)",
                "endpoint_config.$": f"States.Format('{cfg.name}-{{}}', $.run_id)",
            },
            "ResultPath": "$.names",
            "Next": "PackageModelData",
        },
        "PackageModelData": {"Type": "Pass", "InputPath": "$.container.ModelDataUrl", "ResultPath": "$.training.model_data", "Next": deploy},
    }
