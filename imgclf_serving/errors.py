"""Typed request errors of the inference handlers, each carrying its HTTP status.

Both serving containers read `status_code` from them, which becomes the answer's status (and so the
`OriginalStatusCode` of the endpoint's `ModelError`):
- the Ray Serve container's deployment (imgclf_serving/deployment.py) answers `{"error": message}`;
- the TorchServe container's inference toolkit, for which they extend its `BaseInferenceToolkitError`,
  writes `message`, a newline and the traceback.
`message` is kept to one line: the front door passes it on to the caller, never the traceback.
"""
from __future__ import annotations

try:
    from sagemaker_inference.errors import BaseInferenceToolkitError
except ImportError:  # the Ray Serve container has no inference toolkit, and needs none

    class BaseInferenceToolkitError(Exception):  # type: ignore[no-redef]
        """The toolkit's constructor signature, for a container without the toolkit."""

        def __init__(self, status_code: int, message: str, phrase: str):
            super().__init__(status_code, message, phrase)
            self.status_code, self.message, self.phrase = status_code, message, phrase


class RequestError(BaseInferenceToolkitError):
    """A request the handlers refuse; each subclass fixes its HTTP status."""

    status_code = 400

    def __init__(self, message: str):
        one_line = " ".join(message.split())
        super().__init__(self.status_code, one_line, one_line)

    def __str__(self) -> str:
        return self.message


class InvalidImage(RequestError):
    """Empty body, bytes that are no image, or an image that fails to decode."""

    status_code = 400


class InvalidParameter(RequestError):
    """A request parameter (the `top_k` custom attribute) that is out of range."""

    status_code = 400


class NotAcceptable(RequestError):
    """An Accept header that asks for something other than JSON."""

    status_code = 406


class ImageTooLarge(RequestError):
    """A body over the byte cap, or an image over the pixel cap (decompression bombs)."""

    status_code = 413


class UnsupportedMediaType(RequestError):
    """A content type that is not an accepted image type, or an image format we do not decode."""

    status_code = 415


class ModelFileError(Exception):
    """A model dir whose files are missing or do not agree; the message names the file."""
