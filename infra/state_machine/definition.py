"""The pipeline's Step Functions definition (ASL), built as a plain dict from the config.

Input -> (serverless: the existing endpoint's mode) -> Tune -> merge tuned + static hyperparameters -> Retrain -> (managed: wait for the rule
jobs) -> Gate -> Register (evidence + model package version; manual approval ends here) -> CreateModel -> CreateEndpointConfig -> create or update the endpoint -> wait
InService (-> real-time: register auto scaling) -> tag the endpoint with the version.
An input that names an approved version (infra/layout.MODEL_PACKAGE) goes straight to CreateModel.
Every task has a Catch, so every failure path ends
in a Fail state whose cause says what happened, never in a raw task error.

Pure: no CDK here, so the definition is unit-testable; CDK tokens (role ARN, bucket name, asset
URL) pass through as strings.
"""
from __future__ import annotations

from infra.config import Config
from infra.state_machine import endpoint_mode
from infra.state_machine.deploy import deploy_states
from infra.state_machine.deployment import Deployment
from infra.state_machine.gate import gate_states
from infra.state_machine.input import input_states, naming_states, package_states
from infra.state_machine.register import register_states
from infra.state_machine.retrain import managed_rule_states, retrain_states, training_request
from infra.state_machine.tune import tune_states, tuning_request


def build_definition(cfg: Config, dep: Deployment) -> dict:
    """The whole ASL definition for `cfg`, with `dep`'s values (tokens or samples) embedded."""
    tuning, tuning_static = tuning_request(cfg, dep)
    training, training_static = training_request(cfg, dep)
    managed = cfg.debugger.mode == "managed" and cfg.gate.block_on_rules
    check_mode = cfg.endpoint.mode == "serverless"
    states = {
        **input_states(cfg, "NameRun"),
        **naming_states(cfg, dep, tuning_static, training_static, endpoint_mode.START if check_mode else "Tune"),
        **(endpoint_mode.mode_check_states(cfg, "Tune") if check_mode else {}),
        **tune_states(cfg, tuning, "Retrain"),
        **retrain_states(cfg, training, "WaitForRules" if managed else "GateMetrics"),
        **(managed_rule_states("GateMetrics") if managed else {}),
        **gate_states(cfg, "GatherEvidence"),
        **register_states(cfg, dep, "CreateModel"),
        **package_states(cfg, "CreateModel"),
        **deploy_states(cfg, dep),
    }
    return {
        "Comment": f"{cfg.name}: tune, retrain, gate and deploy an image classifier",
        "StartAt": "ValidateInput",
        "TimeoutSeconds": timeout_seconds(cfg),
        "States": states,
    }


def timeout_seconds(cfg: Config) -> int:
    """An upper bound for a whole run: every tuning wave plus the retrain, each at its stopping
    condition, plus an hour for rules and deployment. A stuck run then ends (TIMED_OUT) and alerts.
    The stopping condition already bounds all of a job's RetryStrategy attempts together: "When
    RetryStrategy is specified in the job request, MaxRuntimeInSeconds [and MaxWaitTimeInSeconds]
    specifies the maximum time for all of the attempts in total" (botocore, StoppingCondition)."""
    t = cfg.training
    per_job = t.max_wait_seconds if t.spot else t.max_runtime_seconds
    waves = -(-cfg.tuning.max_jobs // cfg.tuning.max_parallel_jobs)
    return per_job * (waves + 1) + 3600
