"""The SageMaker request validator: it catches what botocore's own validation lets through."""
from __future__ import annotations

import copy

import botocore.session
import pytest
from botocore.validate import ParamValidator
from sagemaker_validator import (
    check,
    check_state_machine,
    evaluate,
    operation_for_resource,
    validate,
)

from infra.config import load_config
from sample_locations import LOC
from infra.sagemaker_requests import training_job_request, tuning_job_request

ENDPOINT_CONFIG = {
    "EndpointConfigName": "imgclf-cfg",
    "ProductionVariants": [
        {
            "VariantName": "AllTraffic",
            "ModelName": "imgclf-model",
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
        }
    ],
}


@pytest.fixture(scope="module")
def tuning_request():
    return tuning_job_request(load_config(), LOC, "imgclf-0f6a1c2e")


def _botocore_errors(operation: str, params: dict) -> str:
    model = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation)
    return ParamValidator().validate(params, model.input_shape).generate_report()


def test_a_valid_request_has_no_problems(tuning_request):
    assert validate("CreateHyperParameterTuningJob", tuning_request) == []


def test_an_unknown_field_is_caught(tuning_request):
    bad = copy.deepcopy(tuning_request)
    bad["TrainingJobDefinition"]["ResourceConfig"]["InstanceCnt"] = 1
    assert validate("CreateHyperParameterTuningJob", bad) == [
        "CreateHyperParameterTuningJob.TrainingJobDefinition.ResourceConfig: unknown member 'InstanceCnt' "
        "(allowed: InstanceType, InstanceCount, VolumeSizeInGB, VolumeKmsKeyId, KeepAlivePeriodInSeconds, "
        "InstanceGroups, TrainingPlanArn, InstancePlacementConfig, InstancePreferences, SelectedInstanceType, "
        "SelectedInstanceCount)"
    ]


def test_a_tuning_job_name_over_32_characters_is_caught_where_botocore_sees_nothing(tuning_request):
    bad = {**tuning_request, "HyperParameterTuningJobName": "imgclf-" + "x" * 26}
    problems = validate("CreateHyperParameterTuningJob", bad)
    assert any("HyperParameterTuningJobName: length 33 is above the maximum 32" in p for p in problems)
    assert _botocore_errors("CreateHyperParameterTuningJob", bad) == ""


def test_a_bad_enum_is_caught_where_botocore_sees_nothing(tuning_request):
    bad = copy.deepcopy(tuning_request)
    bad["HyperParameterTuningJobConfig"]["Strategy"] = "Bayes"
    problems = validate("CreateHyperParameterTuningJob", bad)
    assert problems == [
        "CreateHyperParameterTuningJob.HyperParameterTuningJobConfig.Strategy: 'Bayes' is not one of the "
        "allowed values (Bayesian, Random, Hyperband, Grid)"
    ]
    assert _botocore_errors("CreateHyperParameterTuningJob", bad) == ""


def test_a_name_that_breaks_the_pattern_is_caught(tuning_request):
    bad = {**tuning_request, "HyperParameterTuningJobName": "imgclf_run"}
    assert any("does not match the pattern" in p for p in validate("CreateHyperParameterTuningJob", bad))


def test_a_missing_required_member_is_caught(tuning_request):
    bad = copy.deepcopy(tuning_request)
    del bad["TrainingJobDefinition"]["StoppingCondition"]
    assert validate("CreateHyperParameterTuningJob", bad) == [
        "CreateHyperParameterTuningJob.TrainingJobDefinition: missing required member 'StoppingCondition'"
    ]


def test_a_number_above_its_maximum_is_caught():
    bad = copy.deepcopy(ENDPOINT_CONFIG)
    bad["ProductionVariants"][0]["ServerlessConfig"]["MaxConcurrency"] = 201
    assert validate("CreateEndpointConfig", bad) == [
        "CreateEndpointConfig.ProductionVariants[0].ServerlessConfig.MaxConcurrency: "
        "value 201 is above the maximum 200"
    ]


def test_a_number_below_its_minimum_is_caught():
    bad = copy.deepcopy(ENDPOINT_CONFIG)
    bad["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] = 512
    assert any("value 512 is below the minimum 1024" in p for p in validate("CreateEndpointConfig", bad))


def test_a_wrong_type_is_caught():
    bad = copy.deepcopy(ENDPOINT_CONFIG)
    bad["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] = "2048"
    assert any("expected an integer, got str" in p for p in validate("CreateEndpointConfig", bad))


def test_a_boolean_is_not_accepted_as_an_integer():
    bad = copy.deepcopy(ENDPOINT_CONFIG)
    bad["ProductionVariants"][0]["ServerlessConfig"]["MaxConcurrency"] = True
    assert any("expected an integer, got bool" in p for p in validate("CreateEndpointConfig", bad))


def test_an_empty_list_below_its_minimum_length_is_caught():
    bad = {**ENDPOINT_CONFIG, "ProductionVariants": []}
    assert validate("CreateEndpointConfig", bad) == [
        "CreateEndpointConfig.ProductionVariants: length 0 is below the minimum 1"
    ]


def test_a_map_with_too_many_entries_is_caught():
    request = training_job_request(load_config(), LOC, "j1", {f"h{i}": "1" for i in range(100)})
    assert any("HyperParameters: number of entries" in p for p in validate("CreateTrainingJob", request))


def test_an_unknown_operation_is_a_problem():
    assert validate("CreateTrainingJobs", {}) == ["unknown SageMaker operation 'CreateTrainingJobs'"]


def test_a_dynamic_name_is_resolved_from_the_execution_name():
    params = {
        **ENDPOINT_CONFIG,
        "EndpointConfigName.$": "States.Format('imgclf-{}', States.ArrayGetItem(States.StringSplit($$.Execution.Name, '-'), 0))",
    }
    del params["EndpointConfigName"]
    report = check("CreateEndpointConfig", params)
    assert (report.problems, report.notes) == ([], [])


def test_a_dynamic_name_that_comes_out_too_long_is_caught(tuning_request):
    params = {k: v for k, v in tuning_request.items() if k != "HyperParameterTuningJobName"}
    params["HyperParameterTuningJobName.$"] = "States.Format('imgclf-{}', $$.Execution.Name)"
    problems = validate("CreateHyperParameterTuningJob", params)
    assert any("length 43 is above the maximum 32" in p for p in problems)


def test_a_dynamic_value_is_read_from_the_sample_execution_input():
    params = {**ENDPOINT_CONFIG, "ProductionVariants.$": "$.variants"}
    del params["ProductionVariants"]
    problems = validate("CreateEndpointConfig", params, execution_input={"variants": [{"VariantName": "bad_name"}]})
    assert any("ProductionVariants[0].VariantName: 'bad_name' does not match" in p for p in problems)


def test_merged_hyperparameters_are_checked_after_the_merge():
    request = training_job_request(load_config(), LOC, "j1", {"lr": "0.001", "batch-size": "32"})
    static = request.pop("HyperParameters")
    request["HyperParameters.$"] = "States.JsonMerge($.static, $.tuned, false)"
    problems = validate("CreateTrainingJob", request, execution_input={"static": static, "tuned": {"lr": 0.01}})
    assert problems == ["CreateTrainingJob.HyperParameters['lr']: expected a string, got float 0.01"]


def test_a_path_missing_from_the_sample_input_is_skipped_with_a_note():
    params = {**ENDPOINT_CONFIG, "EndpointConfigName.$": "$.Tune.Name"}
    del params["EndpointConfigName"]
    report = check("CreateEndpointConfig", params)
    assert report.problems == []
    assert report.notes == [
        "EndpointConfigName: dynamic value '$.Tune.Name' not checked "
        "($.Tune.Name is not in the sample execution input)"
    ]


def test_a_required_member_given_only_dynamically_counts_as_present():
    params = {"ProductionVariants": ENDPOINT_CONFIG["ProductionVariants"], "EndpointConfigName.$": "$.unknown"}
    assert validate("CreateEndpointConfig", params) == []


def test_a_member_given_both_literally_and_dynamically_is_a_problem():
    params = {**ENDPOINT_CONFIG, "EndpointConfigName.$": "$$.Execution.Name"}
    assert validate("CreateEndpointConfig", params) == [
        "EndpointConfigName: given both as 'EndpointConfigName' and as 'EndpointConfigName.$'"
    ]


def test_format_keeps_escaped_braces_literal():
    assert evaluate(r"States.Format('a\{b\}-{}', $.x)", {"x": 3}) == "a{b}-3"


def test_string_split_splits_on_each_delimiter_character():
    assert evaluate("States.StringSplit($.s, '.+')", {"s": "a.b+c"}) == ["a", "b", "c"]


def test_array_get_item_reads_an_index():
    assert evaluate("States.ArrayGetItem($.a, 1)", {"a": ["x", "y"]}) == "y"


def test_a_java_style_unicode_class_pattern_is_checked_too():
    tagged = {**ENDPOINT_CONFIG, "Tags": [{"Key": "owner!", "Value": "team"}]}
    assert validate("CreateEndpointConfig", tagged) == [
        "CreateEndpointConfig.Tags[0].Key: 'owner!' does not match the pattern '([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)'"
    ]


def test_sagemaker_task_resources_map_to_api_operations():
    assert operation_for_resource("arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync") == (
        "CreateHyperParameterTuningJob")
    assert operation_for_resource("arn:aws-cn:states:::aws-sdk:sagemaker:describeEndpoint") == "DescribeEndpoint"
    assert operation_for_resource("arn:aws:states:::lambda:invoke") is None


def test_a_state_machine_definition_is_checked_task_by_task_including_parallel_branches():
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {"StartAt": "Cfg", "States": {"Cfg": {
                        "Type": "Task", "Resource": "arn:aws:states:::sagemaker:createEndpointConfig",
                        "Parameters": {**ENDPOINT_CONFIG, "EndpointConfigName": "bad_name"}, "End": True}}},
                    {"StartAt": "Describe", "States": {"Describe": {
                        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
                        "Parameters": {"EndpointName.$": "$.endpoint"}, "End": True}}},
                    {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 5, "End": True}}},
                ],
            }
        },
    }
    reports = check_state_machine(definition, state_inputs={"Describe": {"endpoint": "imgclf"}})
    assert set(reports) == {"Cfg", "Describe"}
    assert reports["Describe"].ok
    assert reports["Cfg"].problems == [
        "CreateEndpointConfig.EndpointConfigName: 'bad_name' does not match the pattern '[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}'"
    ]
