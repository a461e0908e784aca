"""What a local model container offers the endpoint in front of it, and which one a config runs.

A container is started on a model dir (an extracted model.tar.gz) with the model's container
Environment, and answers as the SageMaker container contract asks: `ping()` is `GET /ping`,
`invoke()` is `POST /invocations`. Two kinds, as endpoint.container chooses them:
- 'ray-serve' (the default): AWS's Ray Serve container, run by imgclf/local/ray_container.py;
- 'torchserve': the PyTorch inference container's TorchServe stack, run from .venv-torchserve by
  imgclf/local/torchserve_container.py.
"""
from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

JSON = "application/json"
#: Headers a container is sent besides Content-Type and Accept (CustomAttributes and the like).
FORWARDED_PREFIX = "x-amzn-sagemaker-"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


class Container(Protocol):
    log_path: Path
    sessions: list[int]

    @property
    def url(self) -> str: ...

    def start(self) -> "Container": ...

    def stop(self) -> None: ...

    def running(self) -> bool: ...

    def ping(self) -> bool: ...

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def forwarded_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers a container gets: every `X-Amzn-SageMaker-*` one, and Content-Type and Accept,
    each application/json when absent (as the Ray Serve container's adapter forwards them)."""
    lower = {key.lower(): value for key, value in headers.items()}
    forwarded = {key: value for key, value in headers.items() if key.lower().startswith(FORWARDED_PREFIX)}
    forwarded["Content-Type"] = lower.get("content-type") or JSON
    forwarded["Accept"] = lower.get("accept") or JSON
    return forwarded


def post(port: int, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST on 127.0.0.1; a timeout is 504 and no connection 503, with the bodies the Ray Serve
    container's adapter gives them. A server that refuses an oversize body before reading all of
    it (TorchServe) is still heard."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        try:
            connection.request("POST", path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer may already be waiting
        response = connection.getresponse()
        return Answer(response.status, response.getheader("Content-Type") or headers.get("Accept", JSON),
                      response.read())
    except TimeoutError:
        return Answer(504, JSON, b'{"error": "Request timeout"}')
    except (ConnectionError, http.client.HTTPException):
        return Answer(503, JSON, b'{"error": "Service unavailable"}')
    finally:
        connection.close()


def get_status(port: int, path: str, timeout: float) -> int | None:
    """The status of `GET path`, or None when nothing answers."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        finally:
            connection.close()
    except OSError:
        return None


def container_for(cfg, model_dir: Path, environment: dict[str, str], log_path: Path) -> Container:
    """The container endpoint.container names, not yet started."""
    if cfg.endpoint.container == "torchserve":
        from imgclf.local.torchserve_container import TorchServeContainer

        return TorchServeContainer(model_dir, environment, log_path)
    from imgclf.local.ray_container import RayServeContainer

    return RayServeContainer(model_dir, environment, log_path)
