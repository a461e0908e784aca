"""Scale-out requests: instance count, torchrun through the container's torch_distributed switch,
and the input mode, in both jobs, validated against botocore's SageMaker model."""
from __future__ import annotations

import pytest
from sagemaker_validator import validate

from infra.config import ConfigError, load_config
from infra.hyperparameters import decoded
from infra.sagemaker_requests import TORCH_DISTRIBUTED, training_job_request, tuning_job_request
from sample_locations import LOC

TUNED = {"lr": "0.001", "batch-size": "64"}


def _requests(**training):
    cfg = load_config({"training": training})
    tuning = tuning_job_request(cfg, LOC, "imgclf-0f6a1c2e")
    retrain = training_job_request(cfg, LOC, "imgclf-0f6a1c2e-train", TUNED)
    return tuning, retrain


@pytest.mark.parametrize("training", [
    {"instance_count": 4, "instance_type": "ml.g5.12xlarge", "tuning_instance_type": "ml.g5.2xlarge",
     "input_mode": "FastFile"},
    {"instance_count": 2, "instance_type": "ml.c5.2xlarge", "tuning_instance_type": "ml.c5.2xlarge"},
    {"instance_count": 1, "instance_type": "ml.m5.xlarge", "tuning_instance_type": "ml.m5.xlarge", "input_mode": "File"},
], ids=["gpu-4-instances-fastfile", "cpu-2-instances", "cpu-1-instance"])
def test_scale_out_requests_validate_against_the_service_model(training):
    tuning, retrain = _requests(**training)
    assert validate("CreateHyperParameterTuningJob", tuning) == []
    assert validate("CreateTrainingJob", retrain) == []


def test_the_instance_count_and_input_mode_apply_to_the_retrain_and_to_every_tuning_trial():
    tuning, retrain = _requests(instance_count=3, input_mode="FastFile")
    for job in (tuning["TrainingJobDefinition"], retrain):
        assert job["ResourceConfig"]["InstanceCount"] == 3
        assert job["AlgorithmSpecification"]["TrainingInputMode"] == "FastFile"


def test_several_instances_launch_torchrun_as_the_sdks_torch_distributed_setting_does():
    tuning, retrain = _requests(instance_count=2, instance_type="ml.c5.4xlarge", tuning_instance_type="ml.c5.xlarge")
    # What the toolkit reads after its json.loads of every value: True and the instance type.
    assert decoded(retrain["HyperParameters"])[TORCH_DISTRIBUTED] is True
    assert decoded(retrain["HyperParameters"])["sagemaker_instance_type"] == "ml.c5.4xlarge"
    trials = decoded(tuning["TrainingJobDefinition"]["StaticHyperParameters"])
    assert trials[TORCH_DISTRIBUTED] is True and trials["sagemaker_instance_type"] == "ml.c5.xlarge"


def test_a_gpu_instance_runs_torchrun_for_its_gpus_and_one_cpu_instance_one_plain_process():
    tuning, retrain = _requests(instance_type="ml.g5.12xlarge", tuning_instance_type="ml.m5.xlarge")
    assert decoded(retrain["HyperParameters"])[TORCH_DISTRIBUTED] is True
    assert TORCH_DISTRIBUTED not in tuning["TrainingJobDefinition"]["StaticHyperParameters"]


@pytest.mark.parametrize("training, message", [
    ({"instance_count": 0}, "training.instance_count"),
    ({"input_mode": "Pipe"}, "training.input_mode"),
])
def test_a_bad_instance_count_or_input_mode_fails_with_the_field_name(training, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"training": training})
