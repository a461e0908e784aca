"""The run-input limits (infra/layout.py), one table run through both readers: the state machine's
ValidateInput states in moto's interpreter, and `imgclf start`'s execution_input. Each value is
given to the CLI as the text a user types and to the machine as the JSON the CLI would send."""
from __future__ import annotations

import json

import pytest
from sfn_harness import Scenario, ending_at, run_flow

from imgclf.cloud.start import execution_input
from imgclf.errors import UserError
from infra.config import load_config
from infra.layout import endpoint_name
from infra.state_machine import Deployment, build_definition

DEPLOYMENT = Deployment("us-east-1", "arn:aws:iam::123456789012:role/sm", "imgclf-data", "s3://imgclf-data/bundle.tar.gz")
PREFIX = (
    "execution input dataset_prefix must be a key prefix in the pipeline bucket such as 'datasets/demo' "
    "(no s3://, no leading, trailing or double slash, no spaces)"
)
EPOCHS = "execution input epochs must be a number from 1 to 1000"
ACCURACY = "execution input min_test_accuracy must be a number from 0 to 1"

#: (key, the text a user types, the refusal or None when accepted)
CASES = [
    ("dataset_prefix", "datasets/flowers", None),
    ("dataset_prefix", "datasets/flowers/", PREFIX),
    ("dataset_prefix", "datasets//flowers", PREFIX),
    ("dataset_prefix", "/datasets/flowers", PREFIX),
    ("dataset_prefix", "s3://imgclf-data/datasets/flowers", PREFIX),
    ("dataset_prefix", "datasets/my flowers", PREFIX),
    ("dataset_prefix", "", PREFIX),
    ("epochs", "1000", None),
    ("epochs", "2.5", None),
    ("epochs", "0", EPOCHS),
    ("epochs", "1001", EPOCHS),
    ("epochs", "five", EPOCHS),
    ("epochs", "NaN", EPOCHS),
    ("min_test_accuracy", "0.9", None),
    ("min_test_accuracy", "1.5", ACCURACY),
    ("min_test_accuracy", "-0.1", ACCURACY),
    ("min_test_accuracy", "true", ACCURACY),
]


def _as_sent(key: str, text: str):
    """What the execution input holds: numbers as JSON numbers where the text is one."""
    if key == "dataset_prefix":
        return text
    try:
        return json.loads(text, parse_constant=lambda _: text)
    except ValueError:
        return text


@pytest.fixture(scope="module")
def until_named():
    """The default definition, ending where the validated input is first used (NameRun)."""
    cfg = load_config({})
    return ending_at(build_definition(cfg, DEPLOYMENT), "NameRun"), endpoint_name(cfg)


@pytest.mark.parametrize(("key", "text", "refusal"), CASES)
def test_the_machine_refuses_exactly_the_tables_values(monkeypatch, until_named, key, text, refusal):
    definition, endpoint = until_named
    run = run_flow(monkeypatch, definition, Scenario(), {key: _as_sent(key, text)}, endpoint_name=endpoint)
    if refusal is None:
        assert run.status == "SUCCEEDED", run.cause
    else:
        assert (run.status, run.error, run.cause) == ("FAILED", "InvalidInput", refusal)


@pytest.mark.parametrize(("key", "text", "refusal"), CASES)
def test_imgclf_start_refuses_exactly_the_tables_values_with_the_machines_words(key, text, refusal):
    if refusal is None:
        assert execution_input([f"{key}={text}"], None, "imgclf-data") == {key: _as_sent(key, text)}
    else:
        with pytest.raises(UserError) as refused:
            execution_input([f"{key}={text}"], None, "imgclf-data")
        assert str(refused.value) == f"{refusal}; got {text!r}"


def test_imgclf_start_takes_the_dataset_as_a_uri_in_the_pipeline_bucket_and_checks_the_prefix():
    assert execution_input([], "s3://imgclf-data/datasets/flowers/", "imgclf-data") == {"dataset_prefix": "datasets/flowers"}
    with pytest.raises(UserError, match="must be a key prefix"):
        execution_input([], "s3://imgclf-data/datasets//flowers", "imgclf-data")
