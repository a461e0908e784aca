"""The inference toolkit's own handler service, driven in-process the way TorchServe drives it.

TorchServe builds one request context per worker and swaps in each request's headers before
calling `handle(data, context)`; the toolkit keeps that first context and hands it to handler
functions that take one. This harness reuses one context the same way, so the handlers see exactly
what they see in the container. Calls are serialised, as in one TorchServe worker.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import serving  # noqa: F401  (the checkout's package wins over model_dir/code/serving, so its frontdoor stays importable)
from sagemaker_inference.default_handler_service import DefaultHandlerService



class _RequestProcessor:
    def __init__(self, headers: dict[str, str]):
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class _WorkerContext:
    """The parts of TorchServe's `ts.context.Context` that the toolkit uses."""

    def __init__(self, model_dir: str):
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [_RequestProcessor({})]
        self.status: tuple[int, str] | None = None
        self.content_type: str | None = None

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status = (code, phrase)

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type = value


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes


class HandlerService:
    """`DefaultHandlerService` over `model_dir`, with `model_dir/code` first on sys.path."""

    def __init__(self, model_dir: Path):
        code_dir = str(Path(model_dir) / "code")
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        self._lock = threading.Lock()
        self._context = _WorkerContext(str(model_dir))
        self._service = DefaultHandlerService()
        self._service.initialize(self._context)

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
        with self._lock:
            self._context.request_processor = [_RequestProcessor(dict(headers))]
            self._context.status = None
            self._context.content_type = None
            result = self._service.handle([{"body": body}], self._context)
            status = self._context.status[0] if self._context.status else 200
            payload = result[0]
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            return Answer(status=status, content_type=self._context.content_type, body=bytes(payload))
