"""Fixtures for the serving tests: a model dir, the toolkit's handler service over it and a local
endpoint on 127.0.0.1 (both imgclf's local engine, imgclf/local/endpoint.py), and the front
door's environment."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The checkout's `serving` (with frontdoor/) is imported before HandlerService puts model_dir/code
# first on sys.path, so the front door stays importable beside the model's code/serving copy.
import imgclf_serving  # noqa: F401
from imgclf.local.endpoint import EndpointServer, HandlerService

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules beside this file

from hostile_corpus import hostile_cases  # noqa: E402
from model_dirs import build_model_dir  # noqa: E402

ENDPOINT_NAME = "imgclf-test"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("model") / "model", image_size=32)


@pytest.fixture(scope="session")
def handler_service(model_dir) -> HandlerService:
    return HandlerService(model_dir)


@pytest.fixture(scope="session")
def local_endpoint(handler_service):
    with EndpointServer(handler_service, ENDPOINT_NAME) as server:
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
