"""The state-machine definition: placeholders, names, and every SageMaker task checked against
botocore's model (sagemaker_validator) and the whole definition against asl-validator."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import pytest
from stack_samples import ROOT, VARIANTS
from definition_tasks import sagemaker_tasks
from sagemaker_validator import check_state_machine
from sfn_harness import Scenario, run_flow

from infra.config import load_config
from infra.state_machine import Deployment, build_definition
from infra.state_machine.placeholders import bind_placeholders, placeholder

PASSING = Scenario(
    metrics={"test_acc": 0.95, **{f"rule_{r}": 0.0 for r in ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing")}},
    rule_statuses={"Overfit": "NoIssuesFound"},
)


def test_a_whole_string_placeholder_becomes_a_path():
    assert bind_placeholders({"ModelName": placeholder("model")}) == {"ModelName.$": "$.names.model"}


def test_a_placeholder_inside_a_string_becomes_a_format_with_escaped_literals():
    bound = bind_placeholders({"S3Uri": placeholder("datauri") + "/it's{x}/"})
    assert bound == {"S3Uri.$": "States.Format('{}/it\\'s\\{x\\}/', $.data_uri)"}


def test_strings_without_placeholders_are_left_alone():
    assert bind_placeholders({"a": ["x", {"b": "y"}]}) == {"a": ["x", {"b": "y"}]}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def synthesized_run(request, synthesize):
    """A variant's synthesized definition and a passing run through it that creates the endpoint;
    its state inputs also hold those of a second run that updates it (UpdateEndpoint's input) and of
    a third that deploys a registered version (DescribeModelPackage's input)."""
    synth = synthesize(request.param)
    monkeypatch = pytest.MonkeyPatch()
    try:
        run = run_flow(monkeypatch, synth.definition, PASSING, endpoint_name=f"{synth.cfg.name}-endpoint")
        update = run_flow(
            monkeypatch, synth.definition, dataclasses.replace(PASSING, endpoint_exists=True), endpoint_name=f"{synth.cfg.name}-endpoint"
        )
        # A deployment of a registered version (the approval rule's and `imgclf rollback`'s input).
        release = run_flow(
            monkeypatch, synth.definition, dataclasses.replace(PASSING, registered_version="Approved"), endpoint_name=f"{synth.cfg.name}-endpoint"
        )
    finally:
        monkeypatch.undo()
    assert update.status == release.status == "SUCCEEDED", (update.cause, release.cause)
    return synth, dataclasses.replace(run, state_inputs={**release.state_inputs, **update.state_inputs, **run.state_inputs})


def test_the_synthesized_pipeline_deploys_in_every_variant(synthesized_run):
    _, run = synthesized_run
    assert run.status == "SUCCEEDED", run.cause


def test_every_sagemaker_task_matches_botocores_model_in_every_variant(synthesized_run):
    synth, run = synthesized_run
    reports = check_state_machine(synth.definition, state_inputs=run.state_inputs)
    assert set(reports) == set(sagemaker_tasks(synth.definition))
    problems = {name: report.problems for name, report in reports.items() if report.problems}
    assert problems == {}
    # A note is a value the validator could not check: every dynamic value must resolve.
    notes = {name: report.notes for name, report in reports.items() if report.notes}
    assert notes == {}


def test_run_names_fit_sagemakers_limits_for_a_uuid_execution_name(synthesized_run):
    _, run = synthesized_run
    names = run.state_inputs["Tune"]["names"]
    assert len(names["tuning_job"]) <= 32
    assert all(len(n) <= 63 for n in names.values())


def test_the_synthesized_source_bundle_is_an_s3_tar_gz(default):
    static = default.definition["States"]["NameRun"]["Parameters"]["static"]["training"]
    submit_directory = json.loads(static["sagemaker_submit_directory"])  # JSON text, as the toolkit reads it
    assert submit_directory.startswith("s3://")
    assert submit_directory.endswith(".tar.gz") or submit_directory.endswith(".gz")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_asl_validator_accepts_the_definition(synthesize, tmp_path, variant):
    installed = shutil.which("npx") and (ROOT / "node_modules" / "asl-validator").is_dir()
    assert installed, "asl-validator is not installed: run make setup (a skipped check proves nothing)"
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(synthesize(variant).definition))
    result = subprocess.run(["npx", "--no-install", "asl-validator", "--json-path", str(path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("✓") and result.stderr == "", result.stdout + result.stderr


SAMPLE = Deployment("us-east-1", "arn:aws:iam::123456789012:role/sm", "bucket", "s3://bucket/bundle.tar.gz")
#: The error name under which each SDK integration reports throttling (see infra/state_machine/vocabulary.py).
THROTTLING = {
    "arn:aws:states:::aws-sdk:sagemaker:": "SageMaker.ThrottlingException",
    "arn:aws:states:::aws-sdk:applicationautoscaling:": "ApplicationAutoScaling.ThrottlingException",
    "arn:aws:states:::aws-sdk:s3:": "S3.S3Exception",
}
OPTIMISED = "arn:aws:states:::sagemaker:"


def _tasks(variant: str) -> dict[str, dict]:
    definition = build_definition(load_config(VARIANTS[variant]), SAMPLE)
    return {name: state for name, state in definition["States"].items() if state["Type"] == "Task"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_sdk_task_retries_throttling_under_its_integrations_error_name(variant):
    for name, state in _tasks(variant).items():
        if state["Resource"].startswith(OPTIMISED):
            continue
        (expected,) = [error for prefix, error in THROTTLING.items() if state["Resource"].startswith(prefix)]
        retried = {error for retrier in state["Retry"] for error in retrier["ErrorEquals"]}
        assert expected in retried, f"{name} does not retry {expected}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_optimised_sagemaker_tasks_retry_only_a_throttled_call_and_come_back_to_themselves(variant):
    """Their names are fixed for the run: a retry after a call that created something could only
    meet the name taken. The flow tests run the throttled and the refused cases."""
    states = build_definition(load_config(VARIANTS[variant]), SAMPLE)["States"]
    optimised = {name: state for name, state in _tasks(variant).items() if state["Resource"].startswith(OPTIMISED)}
    assert len(optimised) == 6  # Tune, Retrain, CreateModel, CreateEndpointConfig, CreateEndpoint, UpdateEndpoint
    for name, state in optimised.items():
        assert state["Retry"] == [], f"{name} retries whatever the error"
        (throttled,) = [c["Next"] for c in state["Catch"] if c["ErrorEquals"] == ["SageMaker.AmazonSageMakerException"]]
        (back_off,) = {choice["Next"] for choice in states[throttled]["Choices"]}
        assert states[states[back_off]["Next"]] == {"Type": "Wait", "Seconds": 15, "Next": name}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_run_timeout_does_not_multiply_by_the_retry_attempts(variant):
    """MaxRuntimeInSeconds and MaxWaitTimeInSeconds bound all of a job's attempts together."""
    config = VARIANTS[variant]
    once, often = (
        build_definition(load_config({**config, "training": {**config.get("training", {}), "max_retry_attempts": n}}), SAMPLE)
        for n in (1, 30)
    )
    assert once["TimeoutSeconds"] == often["TimeoutSeconds"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_task_catches_every_error_into_a_path_that_ends_in_a_fail(variant):
    definition = build_definition(load_config(VARIANTS[variant]), SAMPLE)
    for name, state in _tasks(variant).items():
        caught = {error for catcher in state.get("Catch", []) for error in catcher["ErrorEquals"]}
        assert "States.ALL" in caught, f"{name} lets errors end the run raw"
        assert all(c["Next"] in definition["States"] for c in state["Catch"])
