"""The front door against a real HTTP endpoint on 127.0.0.1 that runs the real handlers.

boto3 reaches it through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME alone: the Lambda code has no test
path. The hostile corpus gets the same documented statuses here as at the handlers.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_corpus as corpus
from api_events import LambdaContext, proxy_event
from model_dirs import CLASSES

CASE_NAMES = [case.name for case in corpus.hostile_cases()]


def call(app, event):
    response = app.handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_jpeg_through_api_event_gets_top_k_labels_from_the_model(frontdoor_on_local_endpoint):
    status, body = call(frontdoor_on_local_endpoint, proxy_event(corpus.jpeg(), "image/jpeg"))
    assert status == 200
    assert body["model"] == {"name": "resnet50", "version": "test-1"}
    assert {p["label"] for p in body["predictions"]} == set(CLASSES)


def test_top_k_query_parameter_reaches_the_handlers(frontdoor_on_local_endpoint):
    status, body = call(frontdoor_on_local_endpoint, proxy_event(corpus.png(), "image/png", query={"top_k": "1"}))
    assert (status, len(body["predictions"])) == (200, 1)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_input_gets_its_documented_status_code_and_message(frontdoor_on_local_endpoint, cases, name):
    case = cases[name]
    status, body = call(frontdoor_on_local_endpoint, proxy_event(case.body, case.content_type))
    assert status == case.status
    if status == 200:
        assert {p["label"] for p in body["predictions"]} <= set(CLASSES)
    else:  # the front door's own refusals and the handlers' (their first line) alike
        assert body["error"]["code"] == case.code
        assert case.message in body["error"]["message"]
        assert "Traceback" not in body["error"]["message"]


def test_checks_that_cost_nothing_never_reach_the_endpoint(frontdoor_on_local_endpoint, local_endpoint, cases):
    before = local_endpoint.calls
    for name in ("zero_bytes", "jpeg_as_text_plain", "json_body", "body_7mb"):
        call(frontdoor_on_local_endpoint, proxy_event(cases[name].body, cases[name].content_type))
    assert local_endpoint.calls == before


def test_unknown_endpoint_name_is_503(frontdoor_on_local_endpoint, monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", "does-not-exist")
    status, body = call(frontdoor_on_local_endpoint, proxy_event(corpus.jpeg()))
    assert (status, body["error"]["code"]) == (503, "endpoint_unavailable")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(st.none(), st.binary(max_size=1024), st.text(max_size=200)),
    content_type=st.sampled_from(["image/jpeg", "image/png", "application/octet-stream", "text/plain", "", None]),
    base64_encoded=st.booleans(),
)
def test_random_requests_never_get_a_500_or_a_trace(frontdoor_on_local_endpoint, body, content_type, base64_encoded):
    status, answer = call(frontdoor_on_local_endpoint, proxy_event(body, content_type, base64_encoded=base64_encoded))
    assert status in (200, 400, 413, 415)
    assert status == 200 or (answer["error"]["code"] and "Traceback" not in answer["error"]["message"])
