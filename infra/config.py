"""The project's one typed configuration, validated once at the edge.

Sources, later ones winning: the defaults below, the JSON file named by the `config` context key
(or `--config` for the CLI), then the `imgclf` context object in cdk.json / `cdk -c`. A bad value
raises ConfigError naming the field and what is allowed, which fails synth before anything else.
The defaults deploy a working, cheap pipeline: spot training, a serverless endpoint, API-key auth.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imgclf_serving.backbones import ARCHITECTURES, DEFAULT_ARCH, UNFREEZE
from imgclf_serving.optimized_forward import FORWARDS

_INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
#: No dash: IAM scopes this stack's jobs as `<name>-*`, which must not also match another stack's
#: `<name>-<more>-*` (a stack named `imgclf-dev` beside `imgclf`).
_NAME = r"^[a-z][a-z0-9]{0,11}$"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names each field and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TuningConfig(_Section):
    """The hyperparameter-tuning job. Ranges are the seed project's."""

    lr_min: float = Field(1e-4, gt=0, description="Lower bound of the learning rate (log scale).")
    lr_max: float = Field(1e-2, gt=0, le=1, description="Upper bound of the learning rate.")
    batch_sizes: tuple[int, ...] = Field((32, 64, 128), min_length=1, description="Categorical batch sizes.")
    strategy: Literal["Bayesian", "Random", "Hyperband", "Grid"] = Field("Bayesian", description='Tuning strategy (Grid is refused: lr is continuous).')
    max_jobs: int = Field(4, ge=1, le=500, description="Training jobs the tuner may start in all.")
    max_parallel_jobs: int = Field(2, ge=1, le=100, description="Training jobs running at once.")
    early_stopping: Literal["Off", "Auto"] = Field("Auto", description="SageMaker's median early stopping of trials; Off with Hyperband.")
    archs: tuple[Literal[ARCHITECTURES], ...] = Field((), description="Backbones the tuning job searches as a categorical hyperparameter (at least two); empty keeps training.arch. The retrain takes the best trial's.")

    @model_validator(mode="after")
    def _ranges(self) -> "TuningConfig":
        if self.lr_min >= self.lr_max:
            raise ValueError(f"lr_min ({self.lr_min}) must be below lr_max ({self.lr_max})")
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError("max_parallel_jobs must not exceed max_jobs")
        if any(b < 1 or b > 4096 for b in self.batch_sizes):
            raise ValueError("batch_sizes must each be between 1 and 4096")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ValueError("batch_sizes must not repeat a value")
        if len(self.archs) == 1 or len(set(self.archs)) != len(self.archs):
            raise ValueError("archs must name at least two different backbones, or none (training.arch alone)")
        # SageMaker's Grid strategy searches categorical ranges only; lr is continuous.
        if self.strategy == "Grid":
            raise ValueError("strategy 'Grid' takes only categorical ranges, but lr is continuous: "
                             "use 'Bayesian', 'Random' or 'Hyperband'")
        # Hyperband stops trials itself; the API requires TrainingJobEarlyStoppingType Off with it.
        if self.strategy == "Hyperband" and self.early_stopping != "Off":
            raise ValueError("strategy 'Hyperband' needs early_stopping 'Off' (Hyperband stops trials itself)")
        return self


class TrainingConfig(_Section):
    """What every training job (tuning trials and the final retrain) runs with."""

    instance_type: str = Field("ml.g4dn.xlarge", pattern=_INSTANCE_TYPE, description='Instance of the final retrain.')
    tuning_instance_type: str = Field("ml.g4dn.xlarge", pattern=_INSTANCE_TYPE, description='Instance of each tuning trial.')
    instance_count: int = Field(1, ge=1, le=100, description="Instances of the retrain and of each tuning trial. Above 1, or on a GPU instance, train.py runs under torchrun with DistributedDataParallel, one process per GPU (docs/training.md#scale-out).")
    input_mode: Literal["File", "FastFile"] = Field("File", description="File copies the channels to the volume before training; FastFile streams them from S3 on first read (docs/training.md#input-mode).")
    volume_size_gb: int = Field(30, ge=1, le=16384, description='EBS volume per training instance.')
    framework_version: str | None = Field(
        None,
        pattern=r"^\d+\.\d+(\.\d+)?$",
        description="PyTorch training image version; none takes the newest Amazon Linux 2023 image in "
        "sagemaker-core's map (2.14). A version only the older Ubuntu `pytorch-training` map lists "
        "(e.g. 2.10) takes that image.",
    )
    py_version: str | None = Field(None, pattern=r"^py3\d+$", description="Python tag of the Ubuntu-based PyTorch images (pytorch-training, pytorch-inference), where a version has several; none takes the image's only one. The AL2023 images have one Python each and no tag.")
    epochs: int = Field(5, ge=1, le=1000, description='Epochs per training job (execution input may override).')
    image_size: int = Field(224, ge=16, le=1024, description='Square input size in pixels, for training and serving.')
    arch: Literal[ARCHITECTURES] = Field(DEFAULT_ARCH, description=f"Backbone, a torchvision model: {', '.join(ARCHITECTURES)} (docs/training.md#backbones).")
    pretrained: str = Field(
        "imagenet",
        description="'imagenet' (download in the job), 'none', or 'channel' to read weights from the "
        "`pretrained` input channel (network-isolated jobs).",
    )
    pretrained_s3_uri: str | None = Field(None, pattern=r"^s3://[^/]+/.+$", description="S3 object with backbone weights (a state_dict), for pretrained='channel'.")
    unfreeze: Literal[UNFREEZE] = Field("last", description="Trainable part: the head only, the last stage (stride 32) + the classifier, or everything.")
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd fine-tunes pretrained weights; adamw trains from scratch.")
    spot: bool = Field(True, description='Managed spot training for trials and the retrain (needs checkpoints; resumes after interruption).')
    max_runtime_seconds: int = Field(3600, ge=60, le=28 * 24 * 3600, description='Stopping condition per job.')
    max_wait_seconds: int = Field(7200, ge=60, le=28 * 24 * 3600, description='Longest wait for spot capacity plus run time.')
    max_retry_attempts: int = Field(2, ge=1, le=30, description='RetryStrategy attempts on internal or capacity errors.')
    network_isolation: bool = Field(
        False,
        description="EnableNetworkIsolation for the training jobs and the model: the code comes through a `code` channel, and training_image must hold the trainer's requirements (docs/training.md#network-isolation).",
    )

    @field_validator("pretrained")
    @classmethod
    def _pretrained(cls, v: str) -> str:
        if v not in ("imagenet", "none", "channel"):
            raise ValueError("must be 'imagenet', 'none' or 'channel'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "TrainingConfig":
        if self.spot and self.max_wait_seconds < self.max_runtime_seconds:
            raise ValueError("max_wait_seconds must be >= max_runtime_seconds when spot is on")
        if self.pretrained == "channel" and not self.pretrained_s3_uri:
            raise ValueError("pretrained='channel' needs pretrained_s3_uri")
        if self.pretrained == "none" and self.unfreeze != "all":
            raise ValueError("pretrained='none' trains a random backbone: it needs unfreeze='all'")
        if self.network_isolation and self.pretrained == "imagenet":
            raise ValueError("network_isolation cannot download weights: use pretrained='channel' or 'none'")
        return self


class DebuggerConfig(_Section):
    """portable: the script's own smdebug hook and in-process rules (every account);
    managed: SageMaker Debugger rule jobs (accounts that still have Debugger); off: none."""

    mode: Literal["portable", "managed", "off"] = Field("portable", description='portable: in-job smdebug rules; managed: SageMaker Debugger rule jobs; off: none.')
    save_interval: int = Field(500, ge=1, le=100000, description="Steps between saved gradients and weights (losses: every step; ReLU inputs: the first PoorWeightInitialization steps).")
    profile_steps: int = Field(10, ge=0, le=10000, description="torch.profiler window, in steps.")
    rule_parameters: dict[str, dict[str, str | int | float | bool]] = Field(
        default_factory=dict,
        description="Overrides of the rules' AWS-documented defaults, e.g. `{\"Overfit\": {\"patience\": 3}}`; "
        "used in both portable and managed mode.",
    )

    @field_validator("rule_parameters")
    @classmethod
    def _known_rules(cls, v: dict) -> dict:
        from training.rules import rule_parameters

        for rule, overrides in v.items():
            rule_parameters(rule, overrides)  # unknown rule or parameter, or a bad value: ValueError
        return v


class GateConfig(_Section):
    min_test_accuracy: float = Field(0.8, ge=0, le=1, description='Lowest test accuracy that may be deployed (execution input may override).')
    block_on_rules: bool = Field(True, description='Refuse deployment when a debugger rule found issues or gave no verdict.')
    max_optimized_accuracy_drop: float = Field(0.005, ge=0, le=1, description="With endpoint.optimize: the most test top-1 the optimized forward may lose to fp32 (0.005 = 0.5 points), else the endpoint serves fp32 (the release goes ahead).")
    min_optimized_agreement: float = Field(0.98, ge=0, le=1, description="With endpoint.optimize: the least share of test images on which its top-1 must equal fp32's, else the endpoint serves fp32 (the release goes ahead).")


class EndpointConfig(_Section):
    mode: Literal["serverless", "realtime"] = Field("serverless", description='serverless (no idle cost) or realtime (instances, autoscaling).')
    container: Literal["ray-serve", "torchserve"] = Field(
        "ray-serve",
        description="Serving container: 'ray-serve', AWS's Ray Serve container (patched), or 'torchserve', the "
        "PyTorch inference image with TorchServe, opt-in only: AWS stopped patching it on 2026-06-30 (synth warns).",
    )
    inference_framework_version: str | None = Field(
        None,
        pattern=r"^\d+(\.\d+){0,2}$",
        description="Version of the serving container in sagemaker-core's map: the Ray Serve container's "
        "(1.2, 1.3, 1.4; none takes the newest, 1.4; 1 follows AWS's moving v1 tag), or with container "
        "'torchserve' PyTorch's (none takes 2.6, the last TorchServe image).",
    )
    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = Field(3072, description='Serverless memory.')
    max_concurrency: int = Field(5, ge=1, le=200, description='Serverless concurrent invocations.')
    instance_type: str = Field("ml.m5.large", pattern=_INSTANCE_TYPE, description='Real-time instance type.')
    initial_instance_count: int = Field(1, ge=1, le=100, description='Real-time instances at creation.')
    min_capacity: int = Field(1, ge=1, le=100, description='Autoscaling lower bound (real-time).')
    max_capacity: int = Field(2, ge=1, le=100, description='Autoscaling upper bound (real-time).')
    target_invocations_per_instance: int = Field(100, ge=1, le=100000, description='Target tracking on SageMakerVariantInvocationsPerInstance (per minute).')
    data_capture_percent: int = Field(0, ge=0, le=100, description="0 turns data capture off.")
    optimize: Literal[FORWARDS] = Field(
        "int8",
        description="CPU forward the endpoint serves: 'int8' (ONNX Runtime, static int8 calibrated on the training split), "
        "'graph' (ONNX Runtime, fp32) or 'none' (the PyTorch fp32 network). The retrain produces it and compares it with "
        "fp32 on the test split; one outside gate.max_optimized_accuracy_drop or gate.min_optimized_agreement is not shipped and fp32 serves "
        "(docs/serving.md#optimized-forward). Left unset with training.network_isolation, it is 'none': the retrain ships "
        "ONNX Runtime for the serving container's Python inside model.tar.gz, and an isolated job cannot download it.",
    )
    top_k: int = Field(3, ge=1, le=1000, description='Labels returned per prediction (a request may ask for another k).')

    @model_validator(mode="after")
    def _capacity(self) -> "EndpointConfig":
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity must not exceed max_capacity")
        return self


class ReleaseConfig(_Section):
    """What happens between a passing gate and the endpoint (docs/release.md)."""

    approval: Literal["auto", "manual"] = Field("auto", description="auto: a version that passes the gate is registered Approved and deployed by the same run; manual: it is registered PendingManualApproval, and approving it (console, CLI, API) deploys it.")
    canary_percent: int = Field(10, ge=1, le=50, description="Real-time endpoints: share of the new fleet's capacity that takes traffic first (blue/green canary).")
    bake_minutes: int = Field(10, ge=0, le=60, description="Minutes the canary, then the whole new fleet, is watched by the rollback alarms before the next step.")
    max_model_latency_ms: int = Field(2000, ge=1, le=60000, description="Rollback alarm: the endpoint's average ModelLatency above this, in milliseconds, during a deployment rolls it back.")


class ApiConfig(_Section):
    auth: Literal["api_key", "iam"] = Field("api_key", description='API key + usage plan, or IAM (SigV4).')
    rate_limit: float = Field(10, gt=0, le=10000, description="Steady requests per second.")
    burst_limit: int = Field(20, ge=1, le=5000, description='Burst requests (usage plan / stage throttling).')
    quota_per_day: int = Field(10000, ge=1, description='Requests per day per API key (api_key auth).')
    cors_origins: tuple[str, ...] = Field((), description='Browser origins allowed by CORS; empty turns CORS off.')
    reserved_concurrency: Annotated[int, Field(ge=1, le=1000)] | Literal["endpoint", "off"] = Field(
        "endpoint",
        description="Reserved concurrency of the front-door Lambda: 'endpoint' follows the endpoint's capacity "
        "(serverless max_concurrency; real-time: instances x a per-instance figure, infra/api.py), a number sets it, 'off' shares the account's pool "
        "(an account whose Lambda concurrency quota is under 100 + this cannot reserve any).",
    )
    max_body_bytes: int = Field(
        4_400_000,
        ge=1,
        le=4_400_000,
        description="Largest raw image accepted: Lambda's 6 MB sync payload holds about 4.4 MB after base64.",
    )


class MonitoringConfig(_Section):
    """What the front door records about the served model (docs/monitoring.md)."""

    capture_percent: float = Field(0, ge=0, le=100, description="Share of successful predictions the front door writes to S3 (`monitoring/capture/`) for the drift report; 0 turns capture off.")
    capture_images: bool = Field(False, description="Also store each captured image (base64) in its capture record; off, a record holds the prediction only.")
    capture_max_bytes: int = Field(262_144, ge=4096, le=8_000_000, description="Largest capture record; an image that would exceed it is left out of the record (which says so).")
    alarm_error_rate_percent: float = Field(5, gt=0, le=100, description="Alarm when the share of requests the front door answers with a 5xx exceeds this percentage over 3 of 3 five-minute periods.")
    alarm_latency_p99_ms: int = Field(5000, ge=10, le=29000, description="Alarm when the front door's p99 latency exceeds this over 3 of 3 five-minute periods.")
    alarm_min_confidence: float = Field(0.5, gt=0, le=1, description="Alarm when the mean top-1 confidence falls below this over 6 of 6 fifteen-minute periods (a sign of drift).")
    retrain_on_alarm: bool = Field(False, description="Start the pipeline (a retrain on the configured dataset) when the confidence alarm goes off.")


class Config(_Section):
    """Everything a deployment and a local run are built from."""

    name: str = Field("imgclf", pattern=_NAME, description="Prefix of every resource and job name: a lowercase letter, then up to 11 lowercase letters or digits (no dash).")
    dataset_prefix: str = Field(
        "datasets/demo", pattern=r"^[A-Za-z0-9!_.*'()/-]+$", description="Key prefix with train/ valid/ test/."
    )
    kms_key_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$", description='Customer-managed KMS key for the bucket, job volumes and outputs; none uses SSE-S3.')
    training_image: str | None = Field(None, description="Overrides the resolved training image URI (its Python must install training/requirements.txt).")
    inference_image: str | None = Field(None, description="Overrides the resolved inference image URI.")
    log_execution_data: bool = Field(
        True, description="Log state inputs and outputs (job names, metrics; never image data) with each execution."
    )
    tuning: TuningConfig = TuningConfig()
    training: TrainingConfig = TrainingConfig()
    debugger: DebuggerConfig = DebuggerConfig()
    gate: GateConfig = GateConfig()
    endpoint: EndpointConfig = EndpointConfig()
    api: ApiConfig = ApiConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    release: ReleaseConfig = ReleaseConfig()

    @field_validator("dataset_prefix")
    @classmethod
    def _strip_slashes(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _isolated_jobs_need_their_requirements_installed(self) -> "Config":
        # The code arrives through the `code` channel, but the toolkit still runs `pip install -r
        # requirements.txt`, which an isolated job can satisfy only from what the image holds.
        if self.training.network_isolation and not self.training_image:
            raise ValueError(
                "training.network_isolation needs training_image: an image with training/requirements.txt and "
                "training/requirements-no-deps.txt (smdebug) installed, since an isolated job cannot pip-install "
                "them and the stock PyTorch image lacks them (docs/training.md#network-isolation)"
            )
        return self

    @model_validator(mode="after")
    def _one_weights_file_fits_one_backbone(self) -> "Config":
        if self.tuning.archs and self.training.pretrained == "channel":
            raise ValueError("tuning.archs searches several backbones, but pretrained='channel' holds one backbone's "
                             "weights: use pretrained 'imagenet' or 'none', or tune one arch")
        return self

    @model_validator(mode="before")
    @classmethod
    def _isolated_jobs_serve_fp32_unless_asked(cls, data: Any) -> Any:
        # The default forward (int8) ships ONNX Runtime in the tarball, which an isolated retrain cannot download.
        if not isinstance(data, dict) or "optimize" in (data.get("endpoint") or {}):
            return data
        if (data.get("training") or {}).get("network_isolation"):
            return {**data, "endpoint": {**(data.get("endpoint") or {}), "optimize": "none"}}
        return data

    @model_validator(mode="after")
    def _isolated_jobs_cannot_ship_onnxruntime(self) -> "Config":
        # training/optimize.py downloads the runtime wheel for the serving container's Python (not the job's).
        if self.training.network_isolation and self.endpoint.optimize != "none":
            raise ValueError(
                f"endpoint.optimize '{self.endpoint.optimize}' ships ONNX Runtime for the serving container inside "
                "model.tar.gz, and a network-isolated retrain cannot download it: use optimize 'none' "
                "(docs/serving.md#optimized-forward)"
            )
        return self


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "config"
        msg = re.sub(r"^Value error, ", "", e["msg"])
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {field}: {msg}{shown}")
    return "invalid imgclf config:\n" + "\n".join(lines)


def load_config(*sources: dict[str, Any] | None) -> Config:
    """Merge `sources` (later wins) over the defaults and validate."""
    merged: dict[str, Any] = {}
    for source in sources:
        if source:
            if not isinstance(source, dict):
                raise ConfigError(f"invalid imgclf config: expected an object, got {type(source).__name__}")
            merged = _deep_merge(merged, source)
    try:
        return Config.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def config_from_context(context: dict[str, Any] | str | None, config_file: str | Path | None = None) -> Config:
    """How app.py reads it: the file named by the `config` context key, then the `imgclf` object.
    The CDK CLI passes `-c imgclf='{...}'` as a string, cdk.json as an object: both are accepted."""
    if isinstance(context, str):
        try:
            context = json.loads(context)
        except json.JSONDecodeError as err:
            raise ConfigError(f"context imgclf is not valid JSON: {err}") from None
    return load_config(read_config_file(config_file) if config_file else None, context)


def _reference_rows(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _reference_rows(field.annotation, f"{prefix}{name}.")
        else:
            default = field.get_default(call_default_factory=True)
            shown = ", ".join(map(str, default)) if isinstance(default, tuple) else default
            yield f"| `{prefix}{name}` | `{'none' if shown in (None, '') else shown}` | {field.description} |"


def reference_table() -> str:
    """The config reference of docs/infrastructure.md, made from the fields themselves (a test
    keeps the doc equal to it): `python -m infra.config` prints it."""
    return "\n".join(["| field | default | meaning |", "|---|---|---|", *_reference_rows(Config)])


if __name__ == "__main__":
    print(reference_table())
