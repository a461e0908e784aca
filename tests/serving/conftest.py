"""Fixtures for the serving tests: the local endpoint on 127.0.0.1 (imgclf/local/endpoint.py) in
front of the session's Ray Serve container (`model_container`, tests/conftest.py), and the front
door's environment."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imgclf.local.endpoint import EndpointServer

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules beside this file

from hostile_corpus import hostile_cases  # noqa: E402

ENDPOINT_NAME = "imgclf-test"


@pytest.fixture(scope="session")
def local_endpoint(model_container):
    with EndpointServer(model_container, ENDPOINT_NAME) as server:
        yield server


@pytest.fixture(scope="session")
def cases():
    return {case.name: case for case in hostile_cases()}


@pytest.fixture
def frontdoor(monkeypatch):
    """The front door module with a test environment and fresh (uncached) boto3 clients."""
    from imgclf_serving.frontdoor import app

    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT_NAME)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("TOP_K", raising=False)
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    app.runtime_client.cache_clear()
    app.sagemaker_client.cache_clear()
    yield app
    app.runtime_client.cache_clear()
    app.sagemaker_client.cache_clear()


@pytest.fixture
def frontdoor_on_local_endpoint(frontdoor, local_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local_endpoint.url)
    return frontdoor
