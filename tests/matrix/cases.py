"""The config matrix: cases that set every config field to a non-default value, and for each field
a probe that finds the value where it must arrive.

A case sets several fields that do not interact, so that one synth and one pair of training jobs
serve them all. Each probe looks at one field in one case, in what the real code paths produced
(matrix_run.CaseRun): the synthesized template, the requests the state machine sent, the training
jobs the toolkit ran, or the served answer. A config field without a probe fails
test_every_config_field_has_a_case.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Callable

import torch
from matrix_run import Case, CaseRun, JobRun, passing_scenario
from machine_requests import run_machine

from infra import hyperparameters as codec
from infra.layout import endpoint_name
from training.monitoring_baseline import BASELINE_FILE
from training.rule_overrides_argument import from_argument

ACCOUNT = "123456789012"
KMS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TRAINING_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/imgclf-trainer:matrix"
INFERENCE_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/imgclf-server:matrix"
CORS_ORIGIN = "https://example.com"

#: Every case starts here: small images and a small random backbone, so a job takes seconds on a
#: CPU. These values are themselves non-default, and the `base` case probes them.
ARCH = "resnet18"
# fp32 serving unless a case asks for an optimized forward: an export per retrain costs minutes here.
BASE = {"training": {"arch": ARCH, "image_size": 32, "pretrained": "none", "unfreeze": "all"},
        "endpoint": {"optimize": "none"}}
#: The backbone the tuner picks in the case that searches backbones.
TUNED_ARCH = "mobilenet_v3_large"
#: Where the `pretrained` channel's weights are (the base backbone's, tests/matrix/conftest.py).
WEIGHTS_URI = f"s3://imgclf-matrix-weights/{ARCH}/backbone.pth"

CASES = {
    c.name: c
    for c in (
        Case("base", {}),
        # Knobs the trainer, the tuner and the endpoint read; two epochs from the config.
        Case("trainer", {
            "dataset_prefix": "datasets/matrix",
            "training": {"epochs": 2, "optimizer": "adamw", "input_mode": "FastFile", "max_wait_seconds": 5000},
            "tuning": {"lr_min": 0.002, "lr_max": 0.02, "batch_sizes": [8, 16], "strategy": "Random",
                       "max_jobs": 3, "max_parallel_jobs": 3, "early_stopping": "Off", "archs": [TUNED_ARCH, ARCH]},
            "debugger": {"save_interval": 2, "profile_steps": 3, "rule_parameters": {"Overfit": {"patience": 3}}},
            "gate": {"block_on_rules": False},
            "endpoint": {"top_k": 2},
            "api": {"rate_limit": 5, "burst_limit": 7, "quota_per_day": 500},
        }, execution_input={}),
        # No network in the jobs: the code through its channel, weights from a channel, a frozen
        # backbone; a real-time endpoint, the only kind whose model can be isolated too.
        Case("isolated", {
            "training_image": TRAINING_IMAGE,
            "training": {"network_isolation": True, "pretrained": "channel", "pretrained_s3_uri": WEIGHTS_URI,
                         "unfreeze": "head"},
            "endpoint": {"mode": "realtime", "instance_type": "ml.c5.xlarge", "initial_instance_count": 2,
                         "min_capacity": 2, "max_capacity": 4, "target_invocations_per_instance": 50,
                         "data_capture_percent": 20},
            # Registered PendingManualApproval, approved, then deployed by the approval's run.
            "release": {"approval": "manual", "canary_percent": 25, "bake_minutes": 3, "max_model_latency_ms": 900},
        }),
        # SageMaker's rule jobs judge; the endpoint serves an ONNX forward from TorchServe's container.
        Case("managed", {"debugger": {"mode": "managed"}, "tuning": {"strategy": "Hyperband", "early_stopping": "Off"},
                         "endpoint": {"container": "torchserve", "optimize": "graph"},
                         "gate": {"max_optimized_accuracy_drop": 0.25, "min_optimized_agreement": 0.75}}),
        Case("unguarded", {"debugger": {"mode": "off"}, "gate": {"min_test_accuracy": 0.05},
                           "endpoint": {"inference_framework_version": "1.3"},
                           # The front door's monitoring: read from the template (this case serves no front door).
                           "monitoring": {"capture_percent": 2.5, "capture_images": True, "capture_max_bytes": 100_000,
                                          "alarm_error_rate_percent": 2, "alarm_latency_p99_ms": 3000,
                                          "alarm_min_confidence": 0.6, "retrain_on_alarm": True}}),
        # Names, images, limits and the front door; and two instances per job, which SageMaker starts
        # as two containers that the toolkit's torchrun joins.
        Case("service", {
            "name": "matrixb",
            "kms_key_arn": KMS_KEY,
            "inference_image": INFERENCE_IMAGE,
            "log_execution_data": False,
            "training": {"instance_count": 2, "instance_type": "ml.c5.2xlarge", "tuning_instance_type": "ml.m5.xlarge", "volume_size_gb": 50,
                         "framework_version": "2.10", "py_version": "py313", "spot": False, "max_runtime_seconds": 1800,
                         "max_retry_attempts": 4},
            "endpoint": {"memory_mb": 2048, "max_concurrency": 3},
            "api": {"auth": "iam", "cors_origins": [CORS_ORIGIN], "reserved_concurrency": 2, "max_body_bytes": 100_000},
        }),
    )
}



# --- what the probes read -------------------------------------------------------------------------
def _training(run: CaseRun) -> dict:
    return run.request("CreateTrainingJob")


def _trial_definition(run: CaseRun) -> dict:
    return run.request("CreateHyperParameterTuningJob")["TrainingJobDefinition"]


def _tuning_config(run: CaseRun) -> dict:
    return run.request("CreateHyperParameterTuningJob")["HyperParameterTuningJobConfig"]


def _both(run: CaseRun) -> list[dict]:
    """The job definitions of the trials and of the retrain."""
    return [_trial_definition(run), _training(run)]


def _channels(request: dict) -> dict[str, str]:
    return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}


def _variant(run: CaseRun) -> dict:
    (variant,) = run.request("CreateEndpointConfig")["ProductionVariants"]
    return variant


def _completed(*jobs: JobRun) -> None:
    for job in jobs:
        assert job.result.status == "Completed", f"{job.name}: {job.result.failure_reason}\n{job.log[-3000:]}"


def _rule_lines(job: JobRun) -> set[str]:
    return {name for name in job.result.metrics if name.startswith("rule_")}


def _frontdoor_function(run: CaseRun) -> dict:
    (function,) = [f for f in run.stack.resources("AWS::Lambda::Function")
                   if "ENDPOINT_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})]
    return function["Properties"]


def _state_machine(run: CaseRun) -> dict:
    return run.stack.only("AWS::StepFunctions::StateMachine")["Properties"]


def _saved_steps(job: JobRun, mode: str, prefix: str) -> set[int]:
    """Steps of `mode` at which the debug hook saved a tensor named `prefix`... (the trial's
    index files, smdebug's layout)."""
    steps = set()
    for index in (job.folder / "checkpoints" / "debug-tensors" / "index").rglob("*.json"):
        saved = json.loads(index.read_text())
        if saved["meta"]["mode"] == mode and any(t["tensorname"].startswith(prefix) for t in saved["tensor_payload"]):
            steps.add(saved["meta"]["mode_step"])
    return steps


def _replay(run: CaseRun, execution_input: dict):
    """The machine again, fed what the real retrain reported, as DescribeTrainingJob would."""
    real = {name: run.retrain.final(name) for name in run.retrain.result.metrics}
    scenario = passing_scenario(run.cfg)
    scenario.metrics = real
    return run_machine(run.stack.definition, scenario, execution_input, endpoint_name(run.cfg)).run


# --- probes: field -> (case, check) ---------------------------------------------------------------
def _name(run: CaseRun) -> None:
    assert run.request("CreateHyperParameterTuningJob")["HyperParameterTuningJobName"].startswith("matrixb-")
    assert _training(run)["TrainingJobName"].startswith("matrixb-")
    assert run.machine.run.endpoint["EndpointName"] == "matrixb-endpoint"
    assert _state_machine(run)["StateMachineName"] == "matrixb-pipeline"


def _dataset_prefix(run: CaseRun) -> None:
    for request in _both(run):
        for split in ("train", "valid", "test"):
            assert _channels(request)[split].endswith(f"/datasets/matrix/{split}/")
    _completed(run.trial, run.retrain)  # they found their data at that prefix


def _kms_key(run: CaseRun) -> None:
    for request in _both(run):
        assert request["OutputDataConfig"]["KmsKeyId"] == KMS_KEY
    (bucket,) = [b for b in run.stack.resources("AWS::S3::Bucket")
                 if "KMSMasterKeyID" in json.dumps(b["Properties"].get("BucketEncryption", {}))]
    assert KMS_KEY in json.dumps(bucket["Properties"]["BucketEncryption"])


def _training_image(run: CaseRun) -> None:
    for request in _both(run):
        assert request["AlgorithmSpecification"]["TrainingImage"] == TRAINING_IMAGE


def _inference_image(run: CaseRun) -> None:
    assert run.request("CreateModel")["PrimaryContainer"]["Image"] == INFERENCE_IMAGE


def _log_execution_data(run: CaseRun) -> None:
    assert _state_machine(run)["LoggingConfiguration"]["IncludeExecutionData"] is False


def _lr_range(run: CaseRun) -> None:
    (lr,) = _tuning_config(run)["ParameterRanges"]["ContinuousParameterRanges"]
    assert (float(lr["MinValue"]), float(lr["MaxValue"])) == (0.002, 0.02)
    _completed(run.trial)
    assert 0.002 <= float(run.trial.args["--lr"]) <= 0.02


def _batch_sizes(run: CaseRun) -> None:
    ranges = _tuning_config(run)["ParameterRanges"]["CategoricalParameterRanges"]
    assert {"Name": "batch-size", "Values": ["8", "16"]} in ranges
    _completed(run.trial, run.retrain)
    assert run.trial.args["--batch-size"] == run.retrain.args["--batch-size"] == "8"


def _strategy(expected: str) -> Callable[[CaseRun], None]:
    def check(run: CaseRun) -> None:
        config = _tuning_config(run)
        assert config["Strategy"] == expected
        if expected == "Hyperband":  # a trial's epochs: the run's, from its input or the config
            epochs = run.case.execution_input.get("epochs", run.cfg.training.epochs)
            assert config["StrategyConfig"]["HyperbandStrategyConfig"]["MaxResource"] == epochs
    return check


def _limits(run: CaseRun) -> None:
    assert _tuning_config(run)["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 3}


def _early_stopping(run: CaseRun) -> None:
    assert _tuning_config(run)["TrainingJobEarlyStoppingType"] == "Off"


def _instance_type(run: CaseRun) -> None:
    assert _training(run)["ResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"
    _completed(run.retrain)


def _tuning_instance_type(run: CaseRun) -> None:
    assert _trial_definition(run)["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    _completed(run.trial)


def _instance_count(run: CaseRun) -> None:
    """Both jobs ran on two instances, as two ranks of one torchrun job."""
    for request in _both(run):
        assert request["ResourceConfig"]["InstanceCount"] == 2
    _completed(run.trial, run.retrain)
    for job in (run.trial, run.retrain):
        assert codec.decode(job.request_hyperparameters()["sagemaker_torch_distributed_enabled"]) is True
        assert "--nnodes 2" in job.log and "--node_rank 0" in job.log, job.log[-2000:]
        other = job.folder.parent / "algo-2"
        assert json.loads((other / "describe.json").read_text())["TrainingJobStatus"] == "Completed"
        assert "--node_rank 1" in (other / "training.log").read_text()
    assert run.served[0] == 200, run.served
    # The drift report's baseline covers the whole test split, not rank 0's shard of it.
    baseline = json.loads((run.model_dir / BASELINE_FILE).read_text())
    tested = int(re.search(r"test (\d+) images", run.retrain.log).group(1))
    assert baseline["count"] == tested >= 2, (baseline, tested)


def _input_mode(run: CaseRun) -> None:
    for request in _both(run):
        assert request["AlgorithmSpecification"]["TrainingInputMode"] == "FastFile"
    _completed(run.trial, run.retrain)
    assert {c["TrainingInputMode"] for c in run.retrain.config_file("inputdataconfig.json").values()} == {"FastFile"}


def _volume(run: CaseRun) -> None:
    for request in _both(run):
        assert request["ResourceConfig"]["VolumeSizeInGB"] == 50


def _framework(run: CaseRun) -> None:
    for request in _both(run):
        assert "pytorch-training:2.10" in request["AlgorithmSpecification"]["TrainingImage"]


def _py_version(run: CaseRun) -> None:
    for request in _both(run):
        assert "-py313" in request["AlgorithmSpecification"]["TrainingImage"]


def _arch(run: CaseRun) -> None:
    _completed(run.trial, run.retrain)
    assert run.trial.args["--arch"] == run.retrain.args["--arch"] == ARCH
    assert json.loads((run.model_dir / "model-meta.json").read_text())["arch"] == ARCH
    assert run.served[0] == 200, run.served


def _archs(run: CaseRun) -> None:
    """The tuner searches the backbones; the retrain and the served model take the trial's pick."""
    ranges = _tuning_config(run)["ParameterRanges"]["CategoricalParameterRanges"]
    assert {"Name": "arch", "Values": [TUNED_ARCH, ARCH]} in ranges
    _completed(run.trial, run.retrain)
    assert run.trial.args["--arch"] == run.retrain.args["--arch"] == TUNED_ARCH
    assert json.loads((run.model_dir / "model-meta.json").read_text())["arch"] == TUNED_ARCH
    assert run.served[0] == 200, run.served


def _epochs(run: CaseRun) -> None:
    _completed(run.trial, run.retrain)
    for job in (run.trial, run.retrain):
        assert job.args["--epochs"] == "2"
        assert len(job.result.metrics["valid_loss"]) == 2 and job.identity["epochs"] == 2


def _image_size(run: CaseRun) -> None:
    _completed(run.retrain)
    assert run.retrain.identity["image_size"] == 32
    assert json.loads((run.model_dir / "model-meta.json").read_text())["image_size"] == 32
    assert run.served[0] == 200, run.served  # the served model takes what it was trained on


def _pretrained_none(run: CaseRun) -> None:
    _completed(run.trial, run.retrain)
    assert run.retrain.args["--pretrained"] == "none"
    assert "pretrained" not in _channels(_training(run))


def _pretrained_channel(run: CaseRun) -> None:
    """The backbone came from the channel: with the head alone trainable, the served model's first
    convolution is exactly the weights file's."""
    _completed(run.trial, run.retrain)
    assert _channels(_training(run))["pretrained"] == WEIGHTS_URI
    assert run.retrain.args["--pretrained"] == "channel"
    served = torch.load(run.model_dir / "model.pth", map_location="cpu", weights_only=True)
    weights = torch.load(run.retrain.folder / "input" / "data" / "pretrained" / WEIGHTS_URI.rsplit("/", 1)[1],
                         map_location="cpu", weights_only=True)
    assert torch.equal(served["conv1.weight"], weights["conv1.weight"])


def _unfreeze(expected: str) -> Callable[[CaseRun], None]:
    def check(run: CaseRun) -> None:
        _completed(run.retrain)
        assert run.retrain.identity["unfreeze"] == expected
        if expected == "head":
            _pretrained_channel(run)  # layer1 and below stayed as loaded
    return check


def _optimizer(run: CaseRun) -> None:
    _completed(run.retrain)
    assert run.retrain.identity["optimizer"] == "adamw"
    assert "exp_avg" in run.retrain.optimizer_state and "momentum_buffer" not in run.retrain.optimizer_state


def _spot_off(run: CaseRun) -> None:
    for request in _both(run):
        assert request["EnableManagedSpotTraining"] is False
        assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    _completed(run.retrain)


def _max_runtime(run: CaseRun) -> None:
    for request in _both(run):
        assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 1800


def _max_wait(run: CaseRun) -> None:
    for request in _both(run):
        assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] == 5000


def _retries(run: CaseRun) -> None:
    for request in _both(run):
        assert request["RetryStrategy"]["MaximumRetryAttempts"] == 4


def _network_isolation(run: CaseRun) -> None:
    """Both jobs ran with no network at all, their code from the `code` channel."""
    for request in _both(run):
        assert request["EnableNetworkIsolation"] is True
        assert _channels(request)["code"].startswith("s3://")
    for job in (run.trial, run.retrain):
        assert job.isolated
        submit = codec.decode(job.request_hyperparameters()["sagemaker_submit_directory"])
        assert submit.startswith("/opt/ml/input/data/code/")
    # It cannot reach S3 to upload its test evaluation, which stays inside model.tar.gz.
    assert "evaluation-prefix" not in run.retrain.request_hyperparameters()
    _completed(run.trial, run.retrain)
    assert run.request("CreateModel")["EnableNetworkIsolation"] is True
    assert run.served[0] == 200, run.served


def _debugger_managed(run: CaseRun) -> None:
    request = _training(run)
    assert {"DebugHookConfig", "DebugRuleConfigurations", "ProfilerConfig"} <= set(request)
    _completed(run.retrain)
    assert run.retrain.config_file("debughookconfig.json")["CollectionConfigurations"]
    assert any((run.retrain.folder / "output" / "tensors").rglob("*.tfevents")), "the managed hook wrote no tensors"
    assert not _rule_lines(run.retrain)  # SageMaker's rule jobs judge, not the trainer
    assert "DescribeRules" in run.machine.run.visited


def _debugger_off(run: CaseRun) -> None:
    _completed(run.retrain)
    assert run.retrain.args["--debugger"] == "off"
    assert not run.retrain.output_file("debugger-report.json").exists() and not _rule_lines(run.retrain)
    assert not [s for s in run.stack.definition["States"] if s.startswith("RuleFailed_")]


def _save_interval(run: CaseRun) -> None:
    _completed(run.retrain)
    assert run.retrain.args["--save-interval"] == "2"
    train_steps = _saved_steps(run.retrain, "TRAIN", "CrossEntropyLoss_output")  # losses: every step
    assert len(train_steps) >= 3
    assert _saved_steps(run.retrain, "TRAIN", "gradient/") == {s for s in train_steps if s % 2 == 0}


def _profile_steps(run: CaseRun) -> None:
    _completed(run.retrain)
    summary = json.loads(run.retrain.output_file("profiler-summary.json").read_text())
    assert summary["window"]["active"] == 3


def _rule_parameters(run: CaseRun) -> None:
    """The overrides, JSON themselves, survived the toolkit's decoding and its launch of the script
    (through torchrun here) and reached the rules."""
    _completed(run.trial, run.retrain)
    assert from_argument(run.retrain.args["--rule-params"]) == {"Overfit": {"patience": 3}}
    report = json.loads(run.retrain.output_file("debugger-report.json").read_text())
    (overfit,) = [r for r in report["rules"] if r["rule"] == "Overfit"]
    assert overfit["parameters"]["patience"] == 3


def _block_on_rules_off(run: CaseRun) -> None:
    """With the real retrain's metrics, whatever its rules said, only accuracy can stop the run."""
    assert not [s for s in run.stack.definition["States"] if s.startswith("RuleFailed_")]
    replayed = _replay(run, {"min_test_accuracy": 0})
    assert replayed.status == "SUCCEEDED", replayed.cause
    assert _rule_lines(run.retrain)  # the rules did report


def _min_test_accuracy(run: CaseRun) -> None:
    """The machine's gate applies 0.05 to the real retrain's test accuracy."""
    assert run.stack.definition["States"]["ApplyDefaults"]["Parameters"]["defaults"]["min_test_accuracy"] == 0.05
    accuracy = run.retrain.final("test_acc")
    replayed = _replay(run, {})
    if accuracy >= 0.05:
        assert replayed.status == "SUCCEEDED", replayed.cause
    else:
        assert replayed.status == "FAILED" and replayed.cause == f"test_acc {accuracy} < 0.05"


def _endpoint_realtime(run: CaseRun) -> None:
    assert "ServerlessConfig" not in _variant(run)
    assert "SAGEMAKER_MODEL_SERVER_WORKERS" not in run.request("CreateModel")["PrimaryContainer"]["Environment"]
    assert run.machine.run.scalable_targets, "no auto scaling registered"
    assert run.served[0] == 200, run.served


def _inference_version(run: CaseRun) -> None:
    tag = run.request("CreateModel")["PrimaryContainer"]["Image"].rsplit(":", 1)[1]
    assert tag.endswith("-v1.3"), tag


def _torchserve(run: CaseRun) -> None:
    """The PyTorch inference image, told to run the model's code/inference.py."""
    primary = run.request("CreateModel")["PrimaryContainer"]
    assert "/pytorch-inference:" in primary["Image"], primary["Image"]
    assert (primary["Environment"]["SAGEMAKER_PROGRAM"], primary["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]) == (
        "inference.py", "/opt/ml/model/code")
    assert (run.model_dir / "code" / "inference.py").is_file()
    assert run.served[0] == 200, run.served


def _optimize(run: CaseRun) -> None:
    """The retrain produced the ONNX forward, measured it against fp32, kept it, and it is what serves."""
    _completed(run.retrain)
    assert run.retrain.args["--optimize"] == "graph"
    assert {"optimized_acc_drop", "optimized_agreement"} <= set(run.retrain.result.metrics)
    assert run.retrain.final("optimized_kept") == 1
    assert json.loads((run.model_dir / "model-meta.json").read_text())["optimize"] == "graph"
    assert (run.model_dir / "model.onnx").is_file()
    # The request names the serving image's Python (TorchServe 2.6: 3.12, infra/images.py); the local
    # job, whose containers serve on this machine's Python, ships ONNX Runtime for that one in code/.
    assert codec.decode(_training(run)["HyperParameters"]["serving-python"]) == "3.12"
    assert run.retrain.args["--serving-python"] == "{}.{}".format(*sys.version_info[:2])
    assert (run.model_dir / "code" / "onnxruntime" / "__init__.py").is_file()
    assert run.served[0] == 200, run.served


def _optimized_gate(flag: str, limit: float) -> Callable[[CaseRun], None]:
    """The configured limit reaches the real retrain, which ships the forward only within both limits."""
    def check(run: CaseRun) -> None:
        assert float(run.retrain.args[flag]) == limit
        drop, agreement = run.retrain.final("optimized_acc_drop"), run.retrain.final("optimized_agreement")
        kept = drop <= 0.25 and agreement >= 0.75
        assert run.retrain.final("optimized_kept") == float(kept), (drop, agreement)
        assert json.loads((run.model_dir / "model-meta.json").read_text())["optimize"] == ("graph" if kept else "none")
    return check


def _serverless(run: CaseRun) -> None:
    assert _variant(run)["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 3}


def _realtime_variant(run: CaseRun) -> None:
    variant = _variant(run)
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 2)


def _capacity(run: CaseRun) -> None:
    target = run.machine.scaling["RegisterScalableTarget"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)


def _target_invocations(run: CaseRun) -> None:
    policy = run.machine.scaling["PutScalingPolicy"]["TargetTrackingScalingPolicyConfiguration"]
    assert policy["TargetValue"] == 50


def _data_capture(run: CaseRun) -> None:
    assert run.request("CreateEndpointConfig")["DataCaptureConfig"]["InitialSamplingPercentage"] == 20


def _top_k(run: CaseRun) -> None:
    assert run.request("CreateModel")["PrimaryContainer"]["Environment"]["TOP_K"] == "2"
    assert _frontdoor_function(run)["Environment"]["Variables"]["TOP_K"] == "2"
    status, answer = run.served
    assert status == 200 and len(answer["predictions"] if isinstance(answer, dict) else answer) == 2, answer


def _auth_iam(run: CaseRun) -> None:
    methods = [m["Properties"] for m in run.stack.resources("AWS::ApiGateway::Method") if m["Properties"]["HttpMethod"] == "POST"]
    assert methods and all(m["AuthorizationType"] == "AWS_IAM" for m in methods)
    assert not run.stack.resources("AWS::ApiGateway::ApiKey")


def _usage_plan(run: CaseRun) -> dict:
    return run.stack.only("AWS::ApiGateway::UsagePlan")["Properties"]


def _rate_limit(run: CaseRun) -> None:
    assert _usage_plan(run)["Throttle"]["RateLimit"] == 5


def _burst_limit(run: CaseRun) -> None:
    assert _usage_plan(run)["Throttle"]["BurstLimit"] == 7


def _quota(run: CaseRun) -> None:
    assert _usage_plan(run)["Quota"] == {"Limit": 500, "Period": "DAY"}


def _reserved_concurrency(run: CaseRun) -> None:
    assert _frontdoor_function(run)["ReservedConcurrentExecutions"] == 2


def _cors(run: CaseRun) -> None:
    assert run.frontdoor["image"]["headers"].get("access-control-allow-origin") == CORS_ORIGIN


def _max_body(run: CaseRun) -> None:
    assert run.frontdoor["image"]["status"] == 200, run.frontdoor["image"]
    assert run.frontdoor["too_large"]["status"] == 413, run.frontdoor["too_large"]


def _capture_environment(run: CaseRun) -> None:
    variables = _frontdoor_function(run)["Environment"]["Variables"]
    assert (variables["CAPTURE_PERCENT"], variables["CAPTURE_IMAGES"], variables["CAPTURE_MAX_BYTES"]) == ("2.5", "true", "100000")
    statements = [s for p in run.stack.resources("AWS::IAM::Policy") for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert [s for s in statements if s.get("Sid") == "WriteCaptureRecords"]


def _alarm(suffix: str, threshold: float) -> Callable[[CaseRun], None]:
    def probe(run: CaseRun) -> None:
        (alarm,) = [a["Properties"] for a in run.stack.resources("AWS::CloudWatch::Alarm")
                    if a["Properties"]["AlarmName"].endswith(suffix)]
        assert alarm["Threshold"] == threshold
    return probe


def _manual_approval(run: CaseRun) -> None:
    """The run registers the version PendingManualApproval; the deployment is the approved version's."""
    registered = run.machine.run.requests["CreateModelPackage"][0]  # the run's own (then the approved one deploys)
    assert registered["ModelApprovalStatus"] == "PendingManualApproval"
    assert run.request("CreateModel")["PrimaryContainer"]["ModelDataUrl"] == registered["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert "DescribePackage" in run.machine.run.visited


def _deployment_config(run: CaseRun) -> None:
    config = run.stack.definition["States"]["UpdateEndpoint"]["Parameters"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert config["TrafficRoutingConfiguration"] == {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                                                     "WaitIntervalInSeconds": 180}
    assert config["TerminationWaitInSeconds"] == 180


def _retrain_on_alarm(run: CaseRun) -> None:
    (rule,) = [r["Properties"] for r in run.stack.resources("AWS::Events::Rule")
               if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": next(k for k, r in run.stack.template["Resources"].items()
                                         if r["Type"] == "AWS::StepFunctions::StateMachine")}


PROBES: dict[str, list[tuple[str, Callable[[CaseRun], None]]]] = {
    "name": [("service", _name)],
    "dataset_prefix": [("trainer", _dataset_prefix)],
    "kms_key_arn": [("service", _kms_key)],
    "training_image": [("isolated", _training_image)],
    "inference_image": [("service", _inference_image)],
    "log_execution_data": [("service", _log_execution_data)],
    "tuning.lr_min": [("trainer", _lr_range)],
    "tuning.lr_max": [("trainer", _lr_range)],
    "tuning.batch_sizes": [("trainer", _batch_sizes)],
    "tuning.strategy": [("trainer", _strategy("Random")), ("managed", _strategy("Hyperband"))],
    "tuning.max_jobs": [("trainer", _limits)],
    "tuning.max_parallel_jobs": [("trainer", _limits)],
    "tuning.early_stopping": [("trainer", _early_stopping), ("managed", _early_stopping)],
    "training.instance_type": [("service", _instance_type)],
    "training.tuning_instance_type": [("service", _tuning_instance_type)],
    "training.instance_count": [("service", _instance_count)],
    "training.input_mode": [("trainer", _input_mode)],
    "training.volume_size_gb": [("service", _volume)],
    "training.framework_version": [("service", _framework)],
    "training.py_version": [("service", _py_version)],
    "training.epochs": [("trainer", _epochs)],
    "training.image_size": [("base", _image_size)],
    "training.arch": [("base", _arch)],
    "tuning.archs": [("trainer", _archs)],
    "training.pretrained": [("base", _pretrained_none), ("isolated", _pretrained_channel)],
    "training.pretrained_s3_uri": [("isolated", _pretrained_channel)],
    "training.unfreeze": [("base", _unfreeze("all")), ("isolated", _unfreeze("head"))],
    "training.optimizer": [("trainer", _optimizer)],
    "training.spot": [("service", _spot_off)],
    "training.max_runtime_seconds": [("service", _max_runtime)],
    "training.max_wait_seconds": [("trainer", _max_wait)],
    "training.max_retry_attempts": [("service", _retries)],
    "training.network_isolation": [("isolated", _network_isolation)],
    "debugger.mode": [("managed", _debugger_managed), ("unguarded", _debugger_off)],
    "debugger.save_interval": [("trainer", _save_interval)],
    "debugger.profile_steps": [("trainer", _profile_steps)],
    "debugger.rule_parameters": [("trainer", _rule_parameters)],
    "gate.min_test_accuracy": [("unguarded", _min_test_accuracy)],
    "gate.block_on_rules": [("trainer", _block_on_rules_off)],
    "endpoint.mode": [("isolated", _endpoint_realtime)],
    "endpoint.inference_framework_version": [("unguarded", _inference_version)],
    "endpoint.memory_mb": [("service", _serverless)],
    "endpoint.container": [("managed", _torchserve)],
    "endpoint.optimize": [("managed", _optimize)],
    "gate.max_optimized_accuracy_drop": [("managed", _optimized_gate("--max-optimized-accuracy-drop", 0.25))],
    "gate.min_optimized_agreement": [("managed", _optimized_gate("--min-optimized-agreement", 0.75))],
    "endpoint.max_concurrency": [("service", _serverless)],
    "endpoint.instance_type": [("isolated", _realtime_variant)],
    "endpoint.initial_instance_count": [("isolated", _realtime_variant)],
    "endpoint.min_capacity": [("isolated", _capacity)],
    "endpoint.max_capacity": [("isolated", _capacity)],
    "endpoint.target_invocations_per_instance": [("isolated", _target_invocations)],
    "endpoint.data_capture_percent": [("isolated", _data_capture)],
    "endpoint.top_k": [("trainer", _top_k)],
    "api.auth": [("service", _auth_iam)],
    "api.rate_limit": [("trainer", _rate_limit)],
    "api.burst_limit": [("trainer", _burst_limit)],
    "api.quota_per_day": [("trainer", _quota)],
    "api.cors_origins": [("service", _cors)],
    "api.reserved_concurrency": [("service", _reserved_concurrency)],
    "api.max_body_bytes": [("service", _max_body)],
    "monitoring.capture_percent": [("unguarded", _capture_environment)],
    "monitoring.capture_images": [("unguarded", _capture_environment)],
    "monitoring.capture_max_bytes": [("unguarded", _capture_environment)],
    "monitoring.alarm_error_rate_percent": [("unguarded", _alarm("error-rate", 2))],
    "monitoring.alarm_latency_p99_ms": [("unguarded", _alarm("latency-p99", 3000))],
    "monitoring.alarm_min_confidence": [("unguarded", _alarm("low-confidence", 0.6))],
    "monitoring.retrain_on_alarm": [("unguarded", _retrain_on_alarm)],
    "release.approval": [("isolated", _manual_approval)],
    "release.canary_percent": [("isolated", _deployment_config)],
    "release.bake_minutes": [("isolated", _deployment_config)],
    "release.max_model_latency_ms": [("isolated", _alarm("endpoint-ModelLatency", 900_000))],
}

#: Cases whose served model also goes through the endpoint and the front door.
FRONT_DOOR_CASES = ("service",)
