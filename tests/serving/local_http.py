"""JSON over HTTP to the local servers on 127.0.0.1, error answers included."""
from __future__ import annotations

import json
import urllib.error
import urllib.request


def request_json(url: str, body: bytes | None = None, content_type: str = "image/jpeg") -> tuple[int, dict]:
    """(status, JSON answer) of a POST of `body`, or of a GET without one."""
    sent = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if body is not None else {},
                                  method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
