"""The synthesized template carries the code's own constants: the run timeout the definition
computes, the endpoint name and bucket prefixes of infra/layout.py."""
from __future__ import annotations

import json

import pytest
from stack_samples import VARIANTS, resolve_cfn

from infra.layout import DATA_CAPTURE_PREFIX, OUTPUT_PREFIX, endpoint_name
from infra.state_machine import timeout_seconds
from training.evaluation import evaluation_uri


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_synthesized_run_timeout_is_the_one_the_definition_computes(synthesize, variant):
    synth = synthesize(variant)
    assert synth.definition["TimeoutSeconds"] == timeout_seconds(synth.cfg)


def test_the_function_the_outputs_and_the_machine_name_the_layouts_endpoint(realtime):
    name = endpoint_name(realtime.cfg)
    function = realtime.only("AWS::Lambda::Function")["Properties"]
    assert function["Environment"]["Variables"]["ENDPOINT_NAME"] == name
    assert realtime.template["Outputs"]["EndpointName"]["Value"] == name
    states = realtime.definition["States"]
    assert {states[s]["Parameters"]["EndpointName"] for s in ("CreateEndpoint", "UpdateEndpoint", "FindEndpoint")} == {name}


def _sagemaker_writes(synth) -> set[str]:
    """What the SageMaker role may write: the resources of its WriteRunOutput statement."""
    (policy,) = [p for k, p in synth.resources("AWS::IAM::Policy").items() if k.startswith("PipelineSageMakerRole")]
    (statement,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "WriteRunOutput"]
    return set(resolve_cfn(statement["Resource"], synth.template))


def test_the_sagemaker_role_writes_exactly_under_the_layouts_prefixes(realtime):
    states = realtime.definition["States"]
    output = states["Retrain"]["Parameters"]["OutputDataConfig"]["S3OutputPath"]
    bucket = output.removeprefix("s3://").split("/")[0]
    assert _sagemaker_writes(realtime) == {f"arn:aws:s3:::{bucket}/{OUTPUT_PREFIX}/*", f"arn:aws:s3:::{bucket}/{DATA_CAPTURE_PREFIX}/*"}
    written = [
        output,
        states["Tune"]["Parameters"]["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"],
        states["Retrain"]["Parameters"]["DebugHookConfig"]["S3OutputPath"],
        states["Retrain"]["Parameters"]["ProfilerConfig"]["S3OutputPath"],
        states["Retrain"]["Parameters"]["CheckpointConfig"]["S3Uri.$"].removeprefix("States.Format('"),
        # The retrain uploads its test evaluation itself (training/evaluation.py), under the same role.
        evaluation_uri(json.loads(states["NameRun"]["Parameters"]["static"]["training"]["evaluation-prefix"]), "job"),
    ]
    assert all(uri == f"s3://{bucket}/{OUTPUT_PREFIX}" or uri.startswith(f"s3://{bucket}/{OUTPUT_PREFIX}/") for uri in written), written
    capture = states["CreateEndpointConfig"]["Parameters"]["DataCaptureConfig"]["DestinationS3Uri"]
    assert capture == f"s3://{bucket}/{DATA_CAPTURE_PREFIX}"
