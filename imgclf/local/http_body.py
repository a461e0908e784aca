"""Request framing for the local servers: the body's length, checked before a byte of it is read.

`BaseHTTPRequestHandler` leaves this to its subclasses, and `int(Content-Length)` alone lets a
caller crash the handler (a non-number), block it (a negative length reads to the end of the
stream) or make it buffer an oversize body before refusing it.
"""
from __future__ import annotations

import re
from email.message import Message

_DIGITS = re.compile(r"[0-9]{1,18}")


class BodyError(Exception):
    """A request whose body cannot or may not be read: 400, 411 or 413, with a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def declared_length(headers: Message, limit: int) -> int:
    """The request's Content-Length (0 when absent), at most `limit` bytes."""
    if headers.get("Transfer-Encoding"):
        raise BodyError(411, "send the body with a Content-Length; chunked transfer encoding is not accepted")
    values = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not values:
        return 0
    raw = values.pop()
    if values or not _DIGITS.fullmatch(raw):
        raise BodyError(400, "Content-Length must be one non-negative integer")
    length = int(raw)
    if length > limit:
        raise BodyError(413, f"the request body is {length:,} bytes; the limit is {limit:,} bytes")
    return length
