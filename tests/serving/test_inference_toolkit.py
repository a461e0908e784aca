"""The handlers behind the real sagemaker-inference handler service, as the container calls them."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_corpus as corpus
from model_dirs import CLASSES

CASE_NAMES = [case.name for case in corpus.hostile_cases()]
MAGIC_PREFIXES = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 "]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_input_gets_its_documented_status_and_message(handler_service, cases, name):
    case = cases[name]
    answer = handler_service.invoke(case.body, {"Content-Type": case.content_type})
    assert answer.status == case.status
    if case.status == 200:
        assert [p["label"] for p in json.loads(answer.body)["predictions"]][0] in CLASSES
    else:
        first_line = answer.body.decode().splitlines()[0]
        assert case.message in first_line


def test_success_is_json_with_content_type_json(handler_service):
    answer = handler_service.invoke(corpus.jpeg(), {"Content-Type": "image/jpeg", "Accept": "application/json"})
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert json.loads(answer.body)["top_k"] == 3


def test_custom_attributes_header_sets_top_k_per_request(handler_service):
    headers = {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"}
    assert len(json.loads(handler_service.invoke(corpus.png(), headers).body)["predictions"]) == 2
    headers.pop("X-Amzn-SageMaker-Custom-Attributes")
    assert len(json.loads(handler_service.invoke(corpus.png(), headers).body)["predictions"]) == 3


def test_missing_accept_header_gets_json(handler_service):
    answer = handler_service.invoke(corpus.jpeg(), {"Content-Type": "image/jpeg", "Accept": "*/*"})
    assert answer.status == 200 and answer.content_type == "application/json"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from(MAGIC_PREFIXES),
    body=st.binary(max_size=2048),
    content_type=st.sampled_from(["image/jpeg", "image/png", "image/webp", "application/x-image", "application/octet-stream"]),
)
def test_random_bytes_never_crash_the_handlers_or_give_a_500(handler_service, prefix, body, content_type):
    answer = handler_service.invoke(prefix + body, {"Content-Type": content_type})
    assert answer.status in (200, 400, 413, 415), answer.body[:300]


@st.composite
def damaged_images(draw):
    """A real image with a few bytes overwritten and maybe cut short: reaches the decoders."""
    body = bytearray(draw(st.sampled_from([corpus.jpeg(), corpus.png(), corpus.palette_gif(), corpus.encode(corpus.photo(), "WEBP")])))
    for _ in range(draw(st.integers(1, 8))):
        body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
    return bytes(body[: draw(st.integers(1, len(body)))])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=damaged_images())
def test_damaged_real_images_never_give_a_500(handler_service, body):
    answer = handler_service.invoke(body, {"Content-Type": "application/octet-stream"})
    assert answer.status in (200, 400, 413, 415), answer.body[:300]
