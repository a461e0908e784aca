"""The SageMaker API requests of the pipeline, built from the typed config as plain dicts.

One source of truth: the state machine embeds these dicts as task parameters, and the local engine
executes the very same dicts (StaticHyperParameters, ParameterRanges, MetricDefinitions,
DebugHookConfig). A regex, range or rule then cannot drift between cloud and local.
Pure functions: no AWS calls. Shapes follow botocore's SageMaker service model and are checked
against it by tests/infra/sagemaker_validator.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from infra import images
from infra.config import Config
from infra.hyperparameters import RETRAIN_ONLY
from infra.hyperparameters import encode as encode_hyperparameters
from training import debugger_collections, metrics, rule_overrides_argument, rules

#: The entry point inside the source bundle, relative to its root.
PROGRAM = "training/train.py"
#: Where SageMaker syncs /opt/ml/checkpoints (the trainer's default --checkpoint-dir).
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
#: Python logging level the toolkits use (20 = INFO).
CONTAINER_LOG_LEVEL = 20
#: The channel that carries the source bundle into a network-isolated job, which cannot download
#: `sagemaker_submit_directory` itself; SageMaker puts an S3Prefix naming one object at
#: <folder>/<object name> (the SageMaker SDK's CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH).
CODE_CHANNEL = "code"
CONTAINER_CHANNELS_DIR = "/opt/ml/input/data"
#: The hyperparameter that makes the PyTorch container launch torchrun (the SDK's torch_distributed).
TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"
#: The one production variant of the endpoint.
VARIANT_NAME = "AllTraffic"

# System-metrics sampling of the managed profiler (framework profiling is deprecated from PyTorch 2.0).
_PROFILING_INTERVAL_MS = 500

_TUNING_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_MODEL_NAME = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")


@dataclass(frozen=True)
class JobLocations:
    """Where a run's jobs read and write. S3 URIs in the cloud; local paths for the local engine."""

    role_arn: str
    source_bundle_uri: str  # sagemaker_submit_directory: s3://.../source.tar.gz (or a local path)
    data_uri: str  # prefix holding train/ valid/ test/
    output_uri: str  # prefix for model artifacts and debug output
    region: str
    pretrained_uri: str | None = None  # channel 'pretrained' when cfg.training.pretrained == 'channel'
    checkpoint_uri: str | None = None  # default: <output_uri>/checkpoints/<job name>


def _check_name(kind: str, name: str, pattern: re.Pattern[str], max_len: int) -> None:
    if not isinstance(name, str) or len(name) > max_len or not pattern.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: at most {max_len} characters, letters, digits and "
            "hyphens only, starting and ending with a letter or digit"
        )


def _join(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *parts])


def debug_output_uri(loc: JobLocations) -> str:
    """Prefix of managed Debugger/profiler output (SageMaker appends `<job name>/...`)."""
    return _join(loc.output_uri, "debug")


def checkpoint_uri(loc: JobLocations, job_name: str) -> str:
    """Per-job checkpoint prefix: SageMaker syncs to exactly this URI, so it must be unique per job."""
    return loc.checkpoint_uri or _join(loc.output_uri, "checkpoints", job_name)


def _pretrained_uri(cfg: Config, loc: JobLocations) -> str | None:
    if cfg.training.pretrained != "channel":
        return None
    uri = loc.pretrained_uri or cfg.training.pretrained_s3_uri
    if not uri:
        raise ValueError("training.pretrained='channel' needs a pretrained weights URI")
    return uri


def _submit_directory(cfg: Config, loc: JobLocations) -> str:
    """The bundle's S3 URI, which the toolkit downloads; for an isolated job, the file the code
    channel puts in the container (named by the URI's last part, which must be concrete text)."""
    if not cfg.training.network_isolation:
        return loc.source_bundle_uri
    name = loc.source_bundle_uri.rsplit("/", 1)[-1]
    if not name or "${Token[" in name:
        raise ValueError(f"the source bundle URI must end in a concrete object name, got {loc.source_bundle_uri!r}")
    return _join(CONTAINER_CHANNELS_DIR, CODE_CHANNEL, name)


def static_hyperparameters(cfg: Config, loc: JobLocations) -> dict[str, str]:
    """Every hyperparameter but the tuned ones, for the final retrain (debugger = the configured mode).

    Each value is JSON text, as the SageMaker SDK sends it (infra/hyperparameters.py): the toolkit
    decodes every value once. The rule overrides, JSON themselves, are also percent-encoded: a
    4.x toolkit passes the script's arguments through /bin/sh (training/rule_overrides_argument.py)."""
    t = cfg.training
    return encode_hyperparameters({
        "epochs": t.epochs,
        "image-size": t.image_size,
        "arch": t.arch,
        "pretrained": t.pretrained,
        "unfreeze": t.unfreeze,
        "optimizer": t.optimizer,
        "debugger": cfg.debugger.mode,
        "save-interval": cfg.debugger.save_interval,
        "profile-steps": cfg.debugger.profile_steps,
        "optimize": cfg.endpoint.optimize,
        # What the optimized forward must hold to ship (training/optimized_checks.py); else fp32 serves.
        **({"max-optimized-accuracy-drop": cfg.gate.max_optimized_accuracy_drop,
            "min-optimized-agreement": cfg.gate.min_optimized_agreement} if cfg.endpoint.optimize != "none" else {}),
        # The serving image's Python, whose ONNX Runtime wheel the model dir ships (training/optimize.py).
        **({"serving-python": images.serving_python(cfg)} if cfg.endpoint.optimize != "none" else {}),
        **({"rule-params": rule_overrides_argument.to_argument(cfg.debugger.rule_parameters)} if cfg.debugger.rule_parameters else {}),
        "sagemaker_program": PROGRAM,
        "sagemaker_submit_directory": _submit_directory(cfg, loc),
        "sagemaker_region": loc.region,
        "sagemaker_container_log_level": CONTAINER_LOG_LEVEL,
    })


def _channel(name: str, uri: str) -> dict:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
    }


def _input_channels(cfg: Config, loc: JobLocations) -> list[dict]:
    # The trailing slash keeps prefix `train/` from also matching a sibling such as `train-old/`.
    channels = [_channel(name, _join(loc.data_uri, name, "")) for name in ("train", "valid", "test")]
    pretrained = _pretrained_uri(cfg, loc)
    if pretrained:
        channels.append(_channel("pretrained", pretrained))
    if cfg.training.network_isolation:
        channels.append(_channel(CODE_CHANNEL, loc.source_bundle_uri))
    return channels


def _output_data_config(cfg: Config, loc: JobLocations) -> dict:
    out = {"S3OutputPath": loc.output_uri}
    if cfg.kms_key_arn:
        out["KmsKeyId"] = cfg.kms_key_arn
    return out


def _supports_volume_kms(instance_type: str) -> bool:
    """Instances with local NVMe storage (g4dn, g5, p4d, ...) encrypt it in hardware; training
    refuses a VolumeKmsKeyId on them (API reference, ResourceConfig.VolumeKmsKeyId)."""
    from sagemaker.core.common_utils import instance_supports_kms

    return instance_supports_kms(instance_type)


def _resource_config(cfg: Config, instance_type: str) -> dict:
    resources = {"InstanceType": instance_type, "InstanceCount": cfg.training.instance_count,
                 "VolumeSizeInGB": cfg.training.volume_size_gb}
    if cfg.kms_key_arn and _supports_volume_kms(instance_type):
        resources["VolumeKmsKeyId"] = cfg.kms_key_arn
    return resources


def _stopping_condition(cfg: Config) -> dict:
    stop = {"MaxRuntimeInSeconds": cfg.training.max_runtime_seconds}
    if cfg.training.spot:
        stop["MaxWaitTimeInSeconds"] = cfg.training.max_wait_seconds
    return stop


def _job_definition(cfg: Config, loc: JobLocations, instance_type: str) -> dict:
    """What a tuning trial and the final retrain share."""
    return {
        "AlgorithmSpecification": {
            "TrainingImage": images.training_image(cfg, loc.region, instance_type),
            "TrainingInputMode": cfg.training.input_mode,
            "MetricDefinitions": metrics.metric_definitions(),
        },
        "RoleArn": loc.role_arn,
        "InputDataConfig": _input_channels(cfg, loc),
        "OutputDataConfig": _output_data_config(cfg, loc),
        "ResourceConfig": _resource_config(cfg, instance_type),
        "StoppingCondition": _stopping_condition(cfg),
        "EnableManagedSpotTraining": cfg.training.spot,
        "EnableNetworkIsolation": cfg.training.network_isolation,
        "RetryStrategy": {"MaximumRetryAttempts": cfg.training.max_retry_attempts},
    }


def _is_gpu_instance(instance_type: str) -> bool:
    """p* and g* families, as the SageMaker SDK tells GPU instances apart (fw_utils._is_gpu_instance)."""
    return instance_type.split(".")[1].startswith(("p", "g"))


def distribution_hyperparameters(cfg: Config, instance_type: str) -> dict[str, str]:
    """What the SageMaker SDK sends for `distribution={"torch_distributed": {"enabled": True}}`: the
    PyTorch container then starts train.py through torchrun (sagemaker-training's
    TorchDistributedRunner), one process per GPU on every instance. On for GPU instances and for
    more than one instance; one CPU instance runs one plain process, as without it."""
    if cfg.training.instance_count == 1 and not _is_gpu_instance(instance_type):
        return {}
    return encode_hyperparameters({TORCH_DISTRIBUTED: True, "sagemaker_instance_type": instance_type})


def _parameter_ranges(cfg: Config) -> dict:
    return {
        "ContinuousParameterRanges": [
            {
                "Name": "lr",
                "MinValue": repr(cfg.tuning.lr_min),
                "MaxValue": repr(cfg.tuning.lr_max),
                "ScalingType": "Logarithmic",
            }
        ],
        "CategoricalParameterRanges": [
            {"Name": "batch-size", "Values": [str(b) for b in cfg.tuning.batch_sizes]},
            *([{"Name": "arch", "Values": list(cfg.tuning.archs)}] if cfg.tuning.archs else []),
        ],
    }


def tuning_job_request(cfg: Config, loc: JobLocations, job_name: str) -> dict:
    """CreateHyperParameterTuningJob: lr (log scale) x batch size (x backbone with tuning.archs),
    minimising the objective metric.

    Trials carry no debugger config (the tuning API has no debugger fields; debugger=off) and no
    CheckpointConfig: SageMaker syncs checkpoints to exactly the given URI, which all trials would
    share, so a resumed trial could load another trial's weights. A spot-interrupted trial restarts.
    Nor do they carry the retrain-only hyperparameters (infra/hyperparameters.py RETRAIN_ONLY):
    train.py's defaults then make no optimized forward and upload no evaluation."""
    _check_name("tuning job", job_name, _TUNING_JOB_NAME, 32)
    tuning = cfg.tuning
    ranges = _parameter_ranges(cfg)
    job_config = {
        "Strategy": tuning.strategy,
        "HyperParameterTuningJobObjective": {"Type": metrics.OBJECTIVE_TYPE, "MetricName": metrics.OBJECTIVE_METRIC},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": tuning.max_jobs,
            "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
        },
        "ParameterRanges": ranges,
        "TrainingJobEarlyStoppingType": tuning.early_stopping,
    }
    if tuning.strategy == "Hyperband":
        job_config["StrategyConfig"] = {
            "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": cfg.training.epochs}
        }
    tuned = {r["Name"] for kind in ranges.values() for r in kind}
    # A tuned name must not also be static, and a retrain-only one is the retrain's alone.
    static = {k: v for k, v in static_hyperparameters(cfg, loc).items() if k not in tuned | RETRAIN_ONLY}
    definition = {
        "StaticHyperParameters": {**static, **encode_hyperparameters({"debugger": "off"}),
                                  **distribution_hyperparameters(cfg, cfg.training.tuning_instance_type)},
        **_job_definition(cfg, loc, cfg.training.tuning_instance_type),
    }
    return {
        "HyperParameterTuningJobName": job_name,
        "HyperParameterTuningJobConfig": job_config,
        "TrainingJobDefinition": definition,
    }


def _rule_configurations(cfg: Config, image: str) -> list[dict]:
    """The five rules with the same parameters the portable rules judge with."""
    return [
        {
            "RuleConfigurationName": rule,
            "RuleEvaluatorImage": image,
            "RuleParameters": rules.managed_rule_parameters(
                rule, cfg.debugger.rule_parameters.get(rule)
            ),
        }
        for rule in metrics.RULE_NAMES
    ]


def _managed_debugger(cfg: Config, loc: JobLocations) -> dict:
    """DebugHookConfig + DebugRuleConfigurations + ProfilerConfig + ProfilerRuleConfigurations.

    Collections come from training/debugger_collections.py and rule parameters from
    training/rules.py, which the portable hook and rules use too; the ProfilerReport rule's
    parameters come from smdebug_rulesconfig."""
    import smdebug_rulesconfig

    image = images.rule_evaluator_image(loc.region)
    report = smdebug_rulesconfig.ProfilerReport()
    return {
        "DebugHookConfig": {
            "S3OutputPath": debug_output_uri(loc),
            "CollectionConfigurations": debugger_collections.collection_configurations(
                cfg.debugger.save_interval, cfg.debugger.rule_parameters, managed=True),
        },
        "DebugRuleConfigurations": _rule_configurations(cfg, image),
        "ProfilerConfig": {
            "S3OutputPath": debug_output_uri(loc),
            "ProfilingIntervalInMilliseconds": _PROFILING_INTERVAL_MS,
        },
        "ProfilerRuleConfigurations": [
            {
                "RuleConfigurationName": report.rule_name,
                "RuleEvaluatorImage": image,
                "RuleParameters": dict(report.rule_parameters),
            }
        ],
    }


def evaluation_hyperparameters(cfg: Config, loc: JobLocations) -> dict[str, str]:
    """The retrain (never a trial) uploads its test evaluation beside the run's evidence, under the
    job output prefix (training/evaluation.py). An isolated job cannot reach S3 (nor any AWS
    service): its evaluation stays in model.tar.gz only (docs/release.md)."""
    return {} if cfg.training.network_isolation else encode_hyperparameters({"evaluation-prefix": loc.output_uri})


def training_job_request(cfg: Config, loc: JobLocations, job_name: str, hyperparameters: dict[str, str]) -> dict:
    """CreateTrainingJob for the final retrain with `hyperparameters`: the tuned values as
    TunedHyperParameters gives them (plain text, which the toolkit decodes like JSON).

    The static hyperparameters are merged underneath, and `debugger` always follows
    cfg.debugger.mode so that the hyperparameter and the Debug* fields cannot disagree."""
    _check_name("training job", job_name, _JOB_NAME, 63)
    bad = {k: v for k, v in hyperparameters.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise ValueError(f"hyperparameter names and values must be strings (SageMaker passes strings): {bad!r}")
    request = {
        "TrainingJobName": job_name,
        "HyperParameters": {
            **static_hyperparameters(cfg, loc), **hyperparameters, **encode_hyperparameters({"debugger": cfg.debugger.mode}),
            **evaluation_hyperparameters(cfg, loc),
            **distribution_hyperparameters(cfg, cfg.training.instance_type),
        },
        **_job_definition(cfg, loc, cfg.training.instance_type),
        "CheckpointConfig": {"S3Uri": checkpoint_uri(loc, job_name), "LocalPath": CHECKPOINT_LOCAL_PATH},
    }
    if cfg.debugger.mode == "managed":
        request.update(_managed_debugger(cfg, loc))
    return request


def model_request(cfg: Config, loc: JobLocations, model_name: str, model_data_url: str) -> dict:
    """CreateModel: the serving container on model.tar.gz, whose handlers read TOP_K. The Ray Serve
    container runs its config.yaml and deployment.py; the TorchServe one its code/inference.py
    through the inference toolkit, which the SAGEMAKER_PROGRAM settings configure."""
    _check_name("model", model_name, _MODEL_NAME, 63)
    return {
        "ModelName": model_name,
        "PrimaryContainer": {**serving_container(cfg, loc, model_data_url), "Mode": "SingleModel"},
        "ExecutionRoleArn": loc.role_arn,
        # Serverless endpoints do not support network isolation (Serverless Inference feature exclusions).
        "EnableNetworkIsolation": cfg.training.network_isolation and cfg.endpoint.mode == "realtime",
    }


def serving_container(cfg: Config, loc: JobLocations, model_data_url: str) -> dict:
    """The serving container on model.tar.gz: the model's PrimaryContainer, and the container a
    registered model package version names (infra/registry.py)."""
    environment = {"SAGEMAKER_REGION": loc.region, "TOP_K": str(cfg.endpoint.top_k)}
    if cfg.endpoint.container == "torchserve":
        environment.update({
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": str(CONTAINER_LOG_LEVEL),
        })
    if cfg.endpoint.mode == "serverless":
        # One worker (TorchServe) or replica (Ray Serve, imgclf_serving/deployment.py) per serverless
        # instance: memory is small and concurrency scales instances.
        environment["SAGEMAKER_MODEL_SERVER_WORKERS"] = "1"
    return {"Image": images.inference_image(cfg, loc.region), "ModelDataUrl": model_data_url, "Environment": environment}


def endpoint_config_request(
    cfg: Config, config_name: str, model_name: str, *, data_capture_uri: str | None = None
) -> dict:
    """CreateEndpointConfig: one serverless or real-time variant.

    Data capture and the storage-volume KMS key apply to real-time variants only: serverless
    endpoints have neither data capture nor an ML storage volume."""
    _check_name("endpoint config", config_name, _JOB_NAME, 63)
    _check_name("model", model_name, _MODEL_NAME, 63)
    ep = cfg.endpoint
    variant: dict = {"VariantName": VARIANT_NAME, "ModelName": model_name}
    request: dict = {"EndpointConfigName": config_name, "ProductionVariants": [variant]}
    if ep.mode == "serverless":
        variant["ServerlessConfig"] = {"MemorySizeInMB": ep.memory_mb, "MaxConcurrency": ep.max_concurrency}
        return request
    variant.update(
        {"InstanceType": ep.instance_type, "InitialInstanceCount": ep.initial_instance_count, "InitialVariantWeight": 1.0}
    )
    if cfg.kms_key_arn and _supports_volume_kms(ep.instance_type):
        request["KmsKeyId"] = cfg.kms_key_arn
    if ep.data_capture_percent > 0:
        if not data_capture_uri:
            raise ValueError("endpoint.data_capture_percent > 0 needs a data capture S3 URI")
        capture = {
            "EnableCapture": True,
            "InitialSamplingPercentage": ep.data_capture_percent,
            "DestinationS3Uri": data_capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }
        if cfg.kms_key_arn:
            capture["KmsKeyId"] = cfg.kms_key_arn
        request["DataCaptureConfig"] = capture
    return request
