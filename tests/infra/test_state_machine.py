"""The state-machine definition: placeholders, names, and every SageMaker task checked against
botocore's model (sagemaker_validator) and the whole definition against asl-validator."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import ROOT, VARIANTS
from sagemaker_validator import check_state_machine
from sfn_harness import Scenario, run_flow

from infra.state_machine import bind_placeholders, placeholder, sagemaker_tasks

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
    """A variant's synthesized definition and the state inputs of a passing run through it."""
    synth = synthesize(request.param)
    monkeypatch = pytest.MonkeyPatch()
    try:
        run = run_flow(monkeypatch, synth.definition, PASSING, endpoint_name=f"{synth.cfg.name}-endpoint")
    finally:
        monkeypatch.undo()
    return synth, run


def test_the_synthesized_pipeline_deploys_in_every_variant(synthesized_run):
    _, run = synthesized_run
    assert run.status == "SUCCEEDED", run.cause


def test_every_sagemaker_task_matches_botocores_model_in_every_variant(synthesized_run):
    synth, run = synthesized_run
    reports = check_state_machine(synth.definition, state_inputs=run.state_inputs)
    assert set(reports) == set(sagemaker_tasks(synth.definition))
    problems = {name: report.problems for name, report in reports.items() if report.problems}
    assert problems == {}


def test_run_names_fit_sagemakers_limits_for_a_uuid_execution_name(synthesized_run):
    _, run = synthesized_run
    names = run.state_inputs["Tune"]["names"]
    assert len(names["tuning_job"]) <= 32
    assert all(len(n) <= 63 for n in names.values())


def test_the_synthesized_source_bundle_is_an_s3_tar_gz(default):
    static = default.definition["States"]["NameRun"]["Parameters"]["static"]["training"]
    assert static["sagemaker_submit_directory"].startswith("s3://")
    assert static["sagemaker_submit_directory"].endswith(".tar.gz") or static["sagemaker_submit_directory"].endswith(".gz")


@pytest.mark.skipif(not shutil.which("npx") or not (ROOT / "node_modules" / "asl-validator").is_dir(), reason="npm tools not installed (make setup)")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_asl_validator_accepts_the_definition(synthesize, tmp_path, variant):
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(synthesize(variant).definition))
    result = subprocess.run(["npx", "--no-install", "asl-validator", "--json-path", str(path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
