"""The web page as the front door serves it (GET / through the Lambda handler), and its error
messages against the API's one table of error codes."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
from api_events import LambdaContext, proxy_event  # noqa: E402

from imgclf_serving.frontdoor import error_codes  # noqa: E402
from imgclf_serving.frontdoor.app import PAGE_FILE  # noqa: E402

PAGE = (Path(error_codes.__file__).parent / PAGE_FILE).read_text(encoding="utf-8")
ALL_CODES = {e.code: e.status for e in vars(error_codes).values() if isinstance(e, error_codes.ErrorCode)}


def _object_keys(name: str) -> set[str]:
    """The keys of the page's `const NAME = {...};` object literal."""
    literal = re.search(rf"const {name} = \{{(.*?)\n?\}};", PAGE, re.S)[1]
    return set(re.findall(r"^\s*([a-z_0-9]+):", literal, re.M)) | set(re.findall(r"(\d{3}):", literal))


def test_every_message_of_the_page_is_keyed_by_an_error_code_of_the_api():
    assert _object_keys("MESSAGES") <= set(ALL_CODES)


def test_the_page_has_a_clear_message_for_413_415_429_and_503():
    by_status = json.loads("{" + re.search(r"const BY_STATUS = \{(.*?)\};", PAGE)[1].replace(" ", "").replace(
        "413", '"413"').replace("415", '"415"').replace("429", '"429"').replace("503", '"503"') + "}")
    assert {int(s) for s in by_status} == {413, 415, 429, 503}
    for status, code in by_status.items():
        assert ALL_CODES[code] == int(status) and code in _object_keys("MESSAGES")


def test_the_page_loads_nothing_from_elsewhere():
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", PAGE)
    assert "localStorage.setItem" not in PAGE and "document.cookie" not in PAGE


@pytest.mark.parametrize("auth", ["api_key", "iam"])
def test_the_front_door_serves_the_page_at_the_root_with_the_apis_auth(frontdoor, monkeypatch, auth):
    monkeypatch.setenv("PAGE_AUTH", auth)
    response = frontdoor.handler(proxy_event(None, None, method="GET", path="/"), LambdaContext())
    headers = {k: v[0] for k, v in response["multiValueHeaders"].items()}
    assert response["statusCode"] == 200 and headers["Content-Type"].startswith("text/html")
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert f'<meta name="imgclf-auth" content="{auth}">' in response["body"]
    assert 'accept="image/*" capture="environment"' in response["body"]


@pytest.fixture
def frontdoor(monkeypatch):
    from imgclf_serving.frontdoor import app

    monkeypatch.setenv("ENDPOINT_NAME", "imgclf-test")
    return app
