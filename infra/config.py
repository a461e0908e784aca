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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    volume_size_gb: int = Field(30, ge=1, le=16384, description='EBS volume per training instance.')
    framework_version: str = Field("2.6", pattern=r"^\d+\.\d+(\.\d+)?$", description="PyTorch container version.")
    py_version: str = Field("py312", pattern=r"^py3\d+$", description='Python of the training and inference images.')
    epochs: int = Field(5, ge=1, le=1000, description='Epochs per training job (execution input may override).')
    image_size: int = Field(224, ge=16, le=1024, description='Square input size in pixels, for training and serving.')
    arch: Literal["resnet50"] = Field("resnet50", description='Backbone.')
    pretrained: str = Field(
        "imagenet",
        description="'imagenet' (download in the job), 'none', or 'channel' to read weights from the "
        "`pretrained` input channel (network-isolated jobs).",
    )
    pretrained_s3_uri: str | None = Field(None, pattern=r"^s3://[^/]+/.+$", description="S3 object with backbone weights (a state_dict), for pretrained='channel'.")
    unfreeze: Literal["head", "layer4", "all"] = Field("layer4", description='Trainable part: the head only, layer4 + head, or everything.')
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd fine-tunes pretrained weights; adamw trains from scratch.")
    spot: bool = Field(True, description='Managed spot training for trials and the retrain (needs checkpoints; resumes after interruption).')
    max_runtime_seconds: int = Field(3600, ge=60, le=28 * 24 * 3600, description='Stopping condition per job.')
    max_wait_seconds: int = Field(7200, ge=60, le=28 * 24 * 3600, description='Longest wait for spot capacity plus run time.')
    max_retry_attempts: int = Field(2, ge=1, le=30, description='RetryStrategy attempts on internal or capacity errors.')
    network_isolation: bool = Field(False, description='EnableNetworkIsolation for the training jobs and the model.')

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
        from training.debugger_collections import rule_parameters

        for rule, overrides in v.items():
            rule_parameters(rule, overrides)  # unknown rule or parameter, or a bad value: ValueError
        return v


class GateConfig(_Section):
    min_test_accuracy: float = Field(0.8, ge=0, le=1, description='Lowest test accuracy that may be deployed (execution input may override).')
    block_on_rules: bool = Field(True, description='Refuse deployment when a debugger rule found issues or gave no verdict.')


class EndpointConfig(_Section):
    mode: Literal["serverless", "realtime"] = Field("serverless", description='serverless (no idle cost) or realtime (instances, autoscaling).')
    inference_framework_version: str = Field("2.6", pattern=r"^\d+\.\d+(\.\d+)?$", description='PyTorch inference container version.')
    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = Field(3072, description='Serverless memory.')
    max_concurrency: int = Field(5, ge=1, le=200, description='Serverless concurrent invocations.')
    instance_type: str = Field("ml.m5.large", pattern=_INSTANCE_TYPE, description='Real-time instance type.')
    initial_instance_count: int = Field(1, ge=1, le=100, description='Real-time instances at creation.')
    min_capacity: int = Field(1, ge=1, le=100, description='Autoscaling lower bound (real-time).')
    max_capacity: int = Field(2, ge=1, le=100, description='Autoscaling upper bound (real-time).')
    target_invocations_per_instance: int = Field(100, ge=1, le=100000, description='Target tracking on SageMakerVariantInvocationsPerInstance (per minute).')
    data_capture_percent: int = Field(0, ge=0, le=100, description="0 turns data capture off.")
    top_k: int = Field(3, ge=1, le=1000, description='Labels returned per prediction (a request may ask for another k).')

    @model_validator(mode="after")
    def _capacity(self) -> "EndpointConfig":
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity must not exceed max_capacity")
        return self


class ApiConfig(_Section):
    auth: Literal["api_key", "iam"] = Field("api_key", description='API key + usage plan, or IAM (SigV4).')
    rate_limit: float = Field(10, gt=0, le=10000, description="Steady requests per second.")
    burst_limit: int = Field(20, ge=1, le=5000, description='Burst requests (usage plan / stage throttling).')
    quota_per_day: int = Field(10000, ge=1, description='Requests per day per API key (api_key auth).')
    cors_origins: tuple[str, ...] = Field((), description='Browser origins allowed by CORS; empty turns CORS off.')
    reserved_concurrency: int | None = Field(
        None, ge=1, le=1000, description="Reserved concurrency of the front-door Lambda; None shares the account pool."
    )
    max_body_bytes: int = Field(
        4_400_000,
        ge=1,
        le=4_400_000,
        description="Largest raw image accepted: Lambda's 6 MB sync payload holds about 4.4 MB after base64.",
    )


class Config(_Section):
    """Everything a deployment and a local run are built from."""

    name: str = Field("imgclf", pattern=_NAME, description="Prefix of every resource and job name: a lowercase letter, then up to 11 lowercase letters or digits (no dash).")
    dataset_prefix: str = Field(
        "datasets/demo", pattern=r"^[A-Za-z0-9!_.*'()/-]+$", description="Key prefix with train/ valid/ test/."
    )
    kms_key_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$", description='Customer-managed KMS key for the bucket, job volumes and outputs; none uses SSE-S3.')
    training_image: str | None = Field(None, description="Overrides the resolved training image URI.")
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

    @field_validator("dataset_prefix")
    @classmethod
    def _strip_slashes(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("must not be empty")
        return v


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
