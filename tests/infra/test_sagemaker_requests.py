"""The SageMaker request builders: shapes valid for every config switch, and each behaviour."""
from __future__ import annotations

import itertools

import pytest
import smdebug_rulesconfig
from sagemaker_validator import validate

from infra import images
from infra.config import load_config
from infra.hyperparameters import RETRAIN_ONLY, decode, decoded
from sample_locations import LOC
from infra.sagemaker_requests import (
    endpoint_config_request,
    model_request,
    static_hyperparameters,
    training_job_request,
    tuning_job_request,
)
from training import metrics

KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WEIGHTS = "s3://imgclf-data/weights/resnet50.pth"
TUNED = {"lr": "0.001", "batch-size": "64"}


def _cfg(**overrides):
    return load_config(overrides)


def _switches():
    """Every combination of the switches that change a request's shape."""
    for debugger, spot, endpoint, kms, pretrained in itertools.product(
        ("portable", "managed", "off"), (True, False), ("serverless", "realtime"), (None, KMS), ("none", "channel")
    ):
        cfg = {
            "debugger": {"mode": debugger},
            "training": {"spot": spot, "pretrained": pretrained, "unfreeze": "all" if pretrained == "none" else "last"},
            "endpoint": {"mode": endpoint, "data_capture_percent": 20 if endpoint == "realtime" else 0},
            "kms_key_arn": kms,
        }
        if pretrained == "channel":
            cfg["training"]["pretrained_s3_uri"] = WEIGHTS
        yield pytest.param(cfg, id=f"{debugger}-spot{int(spot)}-{endpoint}-kms{int(bool(kms))}-{pretrained}")


@pytest.mark.parametrize("overrides", list(_switches()))
def test_every_builder_output_validates_against_the_service_model_for_every_switch(overrides):
    cfg = load_config(overrides)
    requests = {
        "CreateHyperParameterTuningJob": tuning_job_request(cfg, LOC, "imgclf-0f6a1c2e"),
        "CreateTrainingJob": training_job_request(cfg, LOC, "imgclf-0f6a1c2e-train", TUNED),
        "CreateModel": model_request(cfg, LOC, "imgclf-0f6a1c2e", "s3://imgclf-data/runs/x/output/model.tar.gz"),
        "CreateEndpointConfig": endpoint_config_request(
            cfg, "imgclf-0f6a1c2e", "imgclf-0f6a1c2e", data_capture_uri="s3://imgclf-data/capture"
        ),
    }
    problems = {op: validate(op, request) for op, request in requests.items()}
    assert problems == {op: [] for op in requests}


def test_metric_definitions_are_the_training_package_ones_in_both_jobs():
    cfg = _cfg()
    tuning = tuning_job_request(cfg, LOC, "t1")["TrainingJobDefinition"]["AlgorithmSpecification"]
    training = training_job_request(cfg, LOC, "j1", TUNED)["AlgorithmSpecification"]
    assert tuning["MetricDefinitions"] == training["MetricDefinitions"] == metrics.metric_definitions()


def test_tuning_objective_is_the_training_package_objective():
    objective = tuning_job_request(_cfg(), LOC, "t1")["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    assert objective == {"Type": metrics.OBJECTIVE_TYPE, "MetricName": metrics.OBJECTIVE_METRIC}


def test_tuning_ranges_come_from_the_config():
    cfg = _cfg(tuning={"lr_min": 0.0005, "lr_max": 0.05, "batch_sizes": [16, 48]})
    ranges = tuning_job_request(cfg, LOC, "t1")["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.0005", "MaxValue": "0.05", "ScalingType": "Logarithmic"}
    ]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "batch-size", "Values": ["16", "48"]}]


def test_tuning_limits_strategy_and_early_stopping_come_from_the_config():
    cfg = _cfg(tuning={"max_jobs": 6, "max_parallel_jobs": 3, "strategy": "Random", "early_stopping": "Off"})
    job = tuning_job_request(cfg, LOC, "t1")["HyperParameterTuningJobConfig"]
    assert job["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3}
    assert (job["Strategy"], job["TrainingJobEarlyStoppingType"]) == ("Random", "Off")
    assert "StrategyConfig" not in job


def test_hyperband_gets_its_epoch_budget_from_the_static_epochs():
    cfg = _cfg(tuning={"strategy": "Hyperband", "early_stopping": "Off"}, training={"epochs": 7})
    job = tuning_job_request(cfg, LOC, "t1")["HyperParameterTuningJobConfig"]
    assert job["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 7}}


def test_tuning_trials_run_without_debugger_and_without_the_tuned_hyperparameters_fixed():
    request = tuning_job_request(_cfg(debugger={"mode": "managed"}), LOC, "t1")
    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert decode(static["debugger"]) == "off"
    searched = {r["Name"] for ranges in request["HyperParameterTuningJobConfig"]["ParameterRanges"].values() for r in ranges}
    assert searched == {"lr", "batch-size"} and not searched & set(static)
    assert not [k for k in definition if k.startswith(("Debug", "Profiler"))]


def test_tuning_may_search_the_backbone_which_then_is_not_static():
    cfg = _cfg(tuning={"archs": ["resnet50", "mobilenet_v3_large", "efficientnet_b0"]})
    request = tuning_job_request(cfg, LOC, "t1")
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]["CategoricalParameterRanges"]
    assert {"Name": "arch", "Values": ["resnet50", "mobilenet_v3_large", "efficientnet_b0"]} in ranges
    assert "arch" not in request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert validate("CreateHyperParameterTuningJob", request) == []


def test_the_retrain_takes_the_best_trials_backbone():
    cfg = _cfg(tuning={"archs": ["resnet50", "mobilenet_v3_large"]})
    hp = training_job_request(cfg, LOC, "j1", {**TUNED, "arch": "mobilenet_v3_large"})["HyperParameters"]
    assert decode(hp["arch"]) == "mobilenet_v3_large"


def test_a_trials_static_hyperparameters_hold_none_of_the_retrain_only_ones_and_the_retrains_hold_them_all():
    cfg = _cfg(endpoint={"optimize": "int8"})  # not isolated: the retrain uploads its evaluation too
    trial = tuning_job_request(cfg, LOC, "t1")["TrainingJobDefinition"]["StaticHyperParameters"]
    retrain = training_job_request(cfg, LOC, "j1", TUNED)["HyperParameters"]
    assert RETRAIN_ONLY == {"optimize", "max-optimized-accuracy-drop", "min-optimized-agreement", "serving-python",
                            "evaluation-prefix"}
    assert not RETRAIN_ONLY & trial.keys()
    assert RETRAIN_ONLY <= retrain.keys() and decode(retrain["optimize"]) == "int8"
    # Everything else the retrain is given, bar the tuned values and the debugger, a trial gets alike.
    assert {k: v for k, v in retrain.items() if k not in RETRAIN_ONLY | TUNED.keys() | {"debugger"}} == \
        {k: v for k, v in trial.items() if k != "debugger"}


def test_without_them_train_py_gives_a_trial_no_optimized_forward_and_no_upload(tmp_path, monkeypatch):
    """The trial's hyperparameters as the toolkit decodes and renders them, parsed by train.py."""
    from sagemaker_training import mapping

    from training.train import parse_args

    monkeypatch.setenv("TRAINING_JOB_NAME", "t1-001-abcdef12")  # SageMaker names every trial
    trial = decoded({**tuning_job_request(_cfg(), LOC, "t1")["TrainingJobDefinition"]["StaticHyperParameters"], **TUNED})
    args = parse_args([*mapping.to_cmd_args({k: v for k, v in trial.items() if not k.startswith("sagemaker_")}),
                       "--model-dir", str(tmp_path / "model")])
    assert (args.optimize, args.serving_python, args.evaluation_prefix, args.evaluation_uri) == ("none", None, None, None)


def test_the_retrain_gets_the_default_int8_forward_and_the_limits_it_must_hold_to_ship():
    hp = training_job_request(_cfg(gate={"min_optimized_agreement": 0.99}), LOC, "j1", TUNED)["HyperParameters"]
    assert {k: decode(hp[k]) for k in ("optimize", "max-optimized-accuracy-drop", "min-optimized-agreement")} == {
        "optimize": "int8", "max-optimized-accuracy-drop": 0.005, "min-optimized-agreement": 0.99}
    fp32 = training_job_request(_cfg(endpoint={"optimize": "none"}), LOC, "j1", TUNED)["HyperParameters"]
    assert "max-optimized-accuracy-drop" not in fp32 and "min-optimized-agreement" not in fp32


def test_only_the_retrain_uploads_its_evaluation_under_the_job_output_prefix():
    assert training_job_request(_cfg(), LOC, "j1", TUNED)["HyperParameters"]["evaluation-prefix"] == f'"{LOC.output_uri}"'
    assert "evaluation-prefix" not in tuning_job_request(_cfg(), LOC, "t1")["TrainingJobDefinition"]["StaticHyperParameters"]


def test_an_isolated_retrain_which_cannot_reach_s3_gets_no_evaluation_prefix():
    cfg = _cfg(training_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
               training={"network_isolation": True, "pretrained": "none", "unfreeze": "all"})
    assert "evaluation-prefix" not in training_job_request(cfg, LOC, "j1", TUNED)["HyperParameters"]


def test_tuning_trials_share_no_checkpoint_location():
    definition = tuning_job_request(_cfg(training={"spot": True}), LOC, "t1")["TrainingJobDefinition"]
    assert "CheckpointConfig" not in definition


def test_static_hyperparameters_carry_script_mode_and_are_all_json_text():
    encoded = static_hyperparameters(_cfg(training={"epochs": 3, "image_size": 64}), LOC)
    assert all(isinstance(v, str) for v in encoded.values())
    hp = decoded(encoded)
    assert hp["sagemaker_program"] == "training/train.py"
    assert hp["sagemaker_submit_directory"] == LOC.source_bundle_uri
    assert hp["sagemaker_region"] == "us-east-1"
    assert (hp["epochs"], hp["image-size"], hp["sagemaker_container_log_level"]) == (3, 64, 20)
    assert (encoded["optimizer"], encoded["epochs"]) == ('"sgd"', "3")  # as the SageMaker SDK encodes them


def test_an_isolated_job_reads_the_source_bundle_from_its_code_channel():
    cfg = _cfg(training_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
               training={"network_isolation": True, "pretrained": "none", "unfreeze": "all"})
    request = training_job_request(cfg, LOC, "j1", TUNED)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["code"] == LOC.source_bundle_uri
    name = LOC.source_bundle_uri.rsplit("/", 1)[1]
    assert decode(request["HyperParameters"]["sagemaker_submit_directory"]) == f"/opt/ml/input/data/code/{name}"
    assert "code" not in {c["ChannelName"] for c in training_job_request(_cfg(), LOC, "j1", TUNED)["InputDataConfig"]}


def test_training_job_merges_tuned_values_over_the_static_ones():
    hp = training_job_request(_cfg(), LOC, "j1", {"lr": "0.0042", "batch-size": "128", "epochs": "9"})["HyperParameters"]
    assert (hp["lr"], hp["batch-size"], hp["epochs"]) == ("0.0042", "128", "9")
    assert decode(hp["sagemaker_program"]) == "training/train.py"


def test_training_job_debugger_hyperparameter_always_follows_the_config():
    hp = training_job_request(_cfg(debugger={"mode": "portable"}), LOC, "j1", {**TUNED, "debugger": "off"})
    assert decode(hp["HyperParameters"]["debugger"]) == "portable"


def test_training_job_refuses_hyperparameters_that_are_not_strings():
    with pytest.raises(ValueError, match="strings"):
        training_job_request(_cfg(), LOC, "j1", {"lr": 0.001})


@pytest.mark.parametrize("mode", ["portable", "off"])
def test_training_job_has_no_managed_debugger_fields_outside_managed_mode(mode):
    request = training_job_request(_cfg(debugger={"mode": mode}), LOC, "j1", TUNED)
    assert decode(request["HyperParameters"]["debugger"]) == mode
    assert not [k for k in request if k.startswith(("Debug", "Profiler"))]


def test_managed_mode_saves_the_portable_hook_collections():
    request = training_job_request(_cfg(debugger={"mode": "managed", "save_interval": 25}), LOC, "j1", TUNED)
    hook = request["DebugHookConfig"]
    collections = {c["CollectionName"]: c["CollectionParameters"] for c in hook["CollectionConfigurations"]}
    assert collections["losses"]["include_regex"] == ".*CrossEntropyLoss_output.*"
    assert collections["gradients"]["save_interval"] == "25"
    assert {"weights", "relu_input"} <= set(collections)
    assert hook["S3OutputPath"] == "s3://imgclf-data/runs/debug"


def test_managed_relu_inputs_are_raw_and_follow_an_overridden_poor_weight_initialization_window():
    cfg = _cfg(debugger={"mode": "managed", "rule_parameters": {"PoorWeightInitialization": {"steps": 3}}})
    request = training_job_request(cfg, LOC, "j1", TUNED)
    collections = {c["CollectionName"]: c["CollectionParameters"]
                   for c in request["DebugHookConfig"]["CollectionConfigurations"]}
    rule = next(r for r in request["DebugRuleConfigurations"] if r["RuleConfigurationName"] == "PoorWeightInitialization")
    assert rule["RuleParameters"]["steps"] == collections["relu_input"]["train.end_step"] == "3"
    assert "reductions" not in collections["relu_input"]


def test_managed_mode_runs_the_five_rules_in_the_regions_rule_image():
    request = training_job_request(_cfg(debugger={"mode": "managed"}), LOC, "j1", TUNED)
    rules = request["DebugRuleConfigurations"]
    assert [r["RuleConfigurationName"] for r in rules] == list(metrics.RULE_NAMES)
    assert {r["RuleEvaluatorImage"] for r in rules} == {images.rule_evaluator_image("us-east-1")}


@pytest.mark.parametrize(
    "rule, helper",
    [
        ("VanishingGradient", smdebug_rulesconfig.vanishing_gradient),
        ("Overfit", smdebug_rulesconfig.overfit),
        ("Overtraining", smdebug_rulesconfig.overtraining),
        ("PoorWeightInitialization", smdebug_rulesconfig.poor_weight_initialization),
        ("LossNotDecreasing", smdebug_rulesconfig.loss_not_decreasing),
    ],
)
def test_managed_rule_parameters_include_the_rule_configs_helpers_parameters(rule, helper):
    rules = training_job_request(_cfg(debugger={"mode": "managed"}), LOC, "j1", TUNED)["DebugRuleConfigurations"]
    params = next(r["RuleParameters"] for r in rules if r["RuleConfigurationName"] == rule)
    expected = helper()["DebugRuleConfiguration"]["RuleParameters"]
    assert params.items() >= expected.items()


def test_managed_mode_adds_the_profiler_and_its_report_rule():
    request = training_job_request(_cfg(debugger={"mode": "managed"}), LOC, "j1", TUNED)
    assert request["ProfilerConfig"]["S3OutputPath"] == "s3://imgclf-data/runs/debug"
    [report] = request["ProfilerRuleConfigurations"]
    assert report["RuleConfigurationName"] == "ProfilerReport"
    assert report["RuleParameters"] == {"rule_to_invoke": "ProfilerReport"}


def test_spot_training_sets_a_wait_limit_and_spot_off_does_not():
    spot = training_job_request(_cfg(training={"spot": True, "max_wait_seconds": 9000}), LOC, "j1", TUNED)
    on_demand = training_job_request(_cfg(training={"spot": False}), LOC, "j1", TUNED)
    assert spot["EnableManagedSpotTraining"] is True
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 9000}
    assert on_demand["EnableManagedSpotTraining"] is False
    assert on_demand["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_training_job_checkpoints_to_a_prefix_of_its_own():
    a = training_job_request(_cfg(), LOC, "run-a", TUNED)["CheckpointConfig"]
    b = training_job_request(_cfg(), LOC, "run-b", TUNED)["CheckpointConfig"]
    assert a == {"S3Uri": "s3://imgclf-data/runs/checkpoints/run-a", "LocalPath": "/opt/ml/checkpoints"}
    assert a["S3Uri"] != b["S3Uri"]


def test_training_job_retries_as_configured():
    request = training_job_request(_cfg(training={"max_retry_attempts": 3}), LOC, "j1", TUNED)
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": 3}


def test_data_channels_are_prefixes_that_end_with_a_slash():
    channels = training_job_request(_cfg(), LOC, "j1", TUNED)["InputDataConfig"]
    uris = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in channels}
    assert uris == {
        "train": "s3://imgclf-data/datasets/demo/train/",
        "valid": "s3://imgclf-data/datasets/demo/valid/",
        "test": "s3://imgclf-data/datasets/demo/test/",
    }


def test_pretrained_channel_mode_adds_the_weights_channel():
    cfg = _cfg(training={"pretrained": "channel", "pretrained_s3_uri": WEIGHTS})
    channels = tuning_job_request(cfg, LOC, "t1")["TrainingJobDefinition"]["InputDataConfig"]
    assert channels[-1]["ChannelName"] == "pretrained"
    assert channels[-1]["DataSource"]["S3DataSource"]["S3Uri"] == WEIGHTS


def test_kms_key_encrypts_the_output_and_the_volume_of_an_instance_without_local_storage():
    cfg = _cfg(kms_key_arn=KMS, training={"instance_type": "ml.m5.xlarge"})
    request = training_job_request(cfg, LOC, "j1", TUNED)
    assert request["OutputDataConfig"]["KmsKeyId"] == KMS
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == KMS


def test_kms_key_is_not_set_on_the_volume_of_an_instance_with_local_nvme_storage():
    request = training_job_request(_cfg(kms_key_arn=KMS, training={"instance_type": "ml.g4dn.xlarge"}), LOC, "j1", TUNED)
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]


@pytest.mark.parametrize("name", ["a" * 33, "bad_name", "-leading", "trailing-"])
def test_tuning_job_name_must_fit_the_32_character_pattern(name):
    with pytest.raises(ValueError, match="tuning job name"):
        tuning_job_request(_cfg(), LOC, name)


def test_tuning_job_name_of_exactly_32_characters_is_accepted():
    assert tuning_job_request(_cfg(), LOC, "a" * 32)["HyperParameterTuningJobName"] == "a" * 32


@pytest.mark.parametrize(
    "build",
    [
        lambda name: training_job_request(_cfg(), LOC, name, TUNED),
        lambda name: model_request(_cfg(), LOC, name, "s3://b/model.tar.gz"),
        lambda name: endpoint_config_request(_cfg(), name, "m1"),
    ],
    ids=["training job", "model", "endpoint config"],
)
def test_other_names_must_fit_63_characters(build):
    build("a" * 63)
    with pytest.raises(ValueError, match="at most 63"):
        build("a" * 64)


def test_model_runs_the_tarball_in_the_ray_serve_container_with_top_k_and_one_serverless_replica():
    container = model_request(_cfg(endpoint={"top_k": 5}), LOC, "m1", "s3://b/model.tar.gz")["PrimaryContainer"]
    assert "/ray:serve-ml-sagemaker-cpu-" in container["Image"]
    assert container["Environment"] == {"SAGEMAKER_REGION": "us-east-1", "TOP_K": "5",
                                        "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    assert container["ModelDataUrl"] == "s3://b/model.tar.gz"


def test_a_torchserve_model_runs_the_bundled_inference_script_through_the_toolkit():
    container = model_request(_cfg(endpoint={"container": "torchserve", "top_k": 5}), LOC, "m1",
                              "s3://b/model.tar.gz")["PrimaryContainer"]
    env = container["Environment"]
    assert "/pytorch-inference:2.6-" in container["Image"]
    assert (env["SAGEMAKER_PROGRAM"], env["SAGEMAKER_SUBMIT_DIRECTORY"]) == ("inference.py", "/opt/ml/model/code")
    assert env["TOP_K"] == "5"


def test_serverless_model_uses_the_cpu_inference_image_and_no_network_isolation():
    cfg = _cfg(training_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
               training={"network_isolation": True, "pretrained": "none", "unfreeze": "all"}, endpoint={"mode": "serverless"})
    request = model_request(cfg, LOC, "m1", "s3://b/model.tar.gz")
    assert "-cpu-" in request["PrimaryContainer"]["Image"]
    assert request["EnableNetworkIsolation"] is False


def test_realtime_model_is_network_isolated_when_configured():
    cfg = _cfg(training_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
               training={"network_isolation": True, "pretrained": "none", "unfreeze": "all"}, endpoint={"mode": "realtime"})
    assert model_request(cfg, LOC, "m1", "s3://b/model.tar.gz")["EnableNetworkIsolation"] is True


def test_serverless_endpoint_config_has_memory_and_concurrency_and_nothing_serverless_refuses():
    cfg = _cfg(kms_key_arn=KMS, endpoint={"mode": "serverless", "memory_mb": 2048, "max_concurrency": 7})
    request = endpoint_config_request(cfg, "c1", "m1", data_capture_uri="s3://b/capture")
    [variant] = request["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 7}
    assert "InstanceType" not in variant
    assert "KmsKeyId" not in request and "DataCaptureConfig" not in request


def test_realtime_endpoint_config_has_instances_and_the_kms_key():
    cfg = _cfg(kms_key_arn=KMS, endpoint={"mode": "realtime", "instance_type": "ml.c5.xlarge", "initial_instance_count": 2})
    request = endpoint_config_request(cfg, "c1", "m1")
    [variant] = request["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"], variant["ModelName"]) == ("ml.c5.xlarge", 2, "m1")
    assert request["KmsKeyId"] == KMS
    assert "DataCaptureConfig" not in request


def test_realtime_data_capture_samples_the_configured_percentage():
    cfg = _cfg(endpoint={"mode": "realtime", "data_capture_percent": 15})
    capture = endpoint_config_request(cfg, "c1", "m1", data_capture_uri="s3://b/capture")["DataCaptureConfig"]
    assert (capture["InitialSamplingPercentage"], capture["DestinationS3Uri"]) == (15, "s3://b/capture")
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}


def test_data_capture_without_a_destination_is_refused():
    cfg = _cfg(endpoint={"mode": "realtime", "data_capture_percent": 15})
    with pytest.raises(ValueError, match="data capture"):
        endpoint_config_request(cfg, "c1", "m1")


def test_rule_parameter_overrides_reach_the_portable_trainer_as_one_json_hyperparameter():
    import string

    from training.rule_overrides_argument import from_argument

    cfg = _cfg(debugger={"mode": "portable", "rule_parameters": {"Overfit": {"patience": 3}}})
    static = static_hyperparameters(cfg, LOC)
    assert from_argument(decode(static["rule-params"])) == {"Overfit": {"patience": 3}}
    assert set(decode(static["rule-params"])) <= set(string.ascii_letters + string.digits + "%._~-")  # shell-safe
    assert "rule-params" not in static_hyperparameters(_cfg(), LOC)


def test_rule_parameter_overrides_reach_the_managed_rule_jobs():
    cfg = _cfg(debugger={"mode": "managed", "rule_parameters": {"Overfit": {"patience": 3}}})
    rules = {r["RuleConfigurationName"]: r["RuleParameters"] for r in training_job_request(cfg, LOC, "imgclf-job", {})["DebugRuleConfigurations"]}
    assert rules["Overfit"]["patience"] == "3"
    assert rules["Overfit"]["ratio_threshold"] == "0.1"  # the rest keep AWS's defaults
