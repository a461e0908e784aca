"""Every config field, set to a non-default value, through the real code paths: the synthesized
stack, the requests its state machine sends (checked against botocore's SageMaker model), the
training jobs those requests describe under the real sagemaker-training toolkit, and the served
model. The cases and the per-field probes are in tests/matrix/cases.py."""
from __future__ import annotations

import re

import pytest
from cases import BASE, CASES, PROBES
from sagemaker_validator import validate

from infra.config import Config, load_config, reference_table

#: Jobs of a matrix run take longer than the default per-test limit on 2 busy cores.
pytestmark = pytest.mark.timeout(3600)
#: The SageMaker calls whose requests the machine builds from the config.
CONFIGURED_CALLS = ("CreateHyperParameterTuningJob", "CreateTrainingJob", "CreateModel", "CreateEndpointConfig")


def reference_fields() -> set[str]:
    """Every field of the config reference (docs/infrastructure.md#config-reference, made by infra.config)."""
    return set(re.findall(r"^\| `([^`]+)` \|", reference_table(), re.M))


def _value(cfg: Config, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_every_config_field_has_a_case():
    fields = reference_fields()
    assert fields - set(PROBES) == set(), "config fields without a case in tests/matrix/cases.py"
    assert set(PROBES) - fields == set(), "cases for fields the config no longer has"


@pytest.mark.parametrize("field, case", [(f, c) for f, probes in sorted(PROBES.items()) for c, _ in probes])
def test_each_case_sets_its_fields_to_a_non_default_value(field, case):
    default = _value(Config(), field)
    assert _value(load_config(BASE, CASES[case].overrides), field) != default


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_machine_runs_to_the_endpoint(matrix, case):
    run = matrix[case].machine.run
    assert (run.status, run.error) == ("SUCCEEDED", None), run.cause
    assert matrix[case].machine.run.endpoint["EndpointStatus"] == "InService"


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_request_the_machine_sent_fits_botocores_sagemaker_model(matrix, case):
    for action in CONFIGURED_CALLS:
        assert validate(action, matrix[case].request(action)) == [], action


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_trial_and_the_retrain_complete_under_the_real_toolkit(matrix, case):
    for job in (matrix[case].trial, matrix[case].retrain):
        assert job.result.status == "Completed", f"{job.name}: {job.result.failure_reason}\n{job.log[-3000:]}"
        assert job.final("valid_loss") is not None and job.final("test_acc") is not None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_retrained_model_serves_with_the_create_model_environment(matrix, case):
    status, answer = matrix[case].served
    assert status == 200, answer
    assert len(answer["predictions"]) == min(matrix[case].cfg.endpoint.top_k, 4)


@pytest.mark.parametrize("field, case, probe", [
    pytest.param(f, c, p, id=f"{f}[{c}]") for f, probes in sorted(PROBES.items()) for c, p in probes
])
def test_the_field_reaches_its_destination(matrix, field, case, probe):
    probe(matrix[case])
