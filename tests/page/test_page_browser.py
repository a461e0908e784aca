"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright, against the
local front door (the real Lambda handler behind the local API Gateway, in its own process) in
front of the session's Ray Serve container.

IMGCLF_PAGE_SCREENSHOT=docs/images/page.png makes the drop test save its screenshot there (how the
docs' screenshot is made).
"""
from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import sync_playwright
from skimage import data as skdata

from imgclf.local.endpoint import EndpointServer
from imgclf.local.frontdoor import FrontDoorProcess

CHROMIUM = Path("/usr/bin/chromium")
#: Flags that keep Chromium off the network and away from this machine's sandbox and GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ENDPOINT_NAME = "imgclf-page"
#: The front door's MAX_BODY_BYTES here: small, so that an oversize file stays small too.
MAX_BODY_BYTES = 100_000
CLASSES = ("cat", "coffee", "rocket")  # tests/serving/model_dirs.py, the session's model
ANSWER_SECONDS = 60


def _jpeg(size: int = 256) -> bytes:
    image = Image.fromarray(skdata.chelsea())
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def endpoint(model_container):
    with EndpointServer(model_container, ENDPOINT_NAME) as server:
        yield server


def _front_door(endpoint, tmp_path_factory, **environment: str) -> FrontDoorProcess:
    log = tmp_path_factory.mktemp("frontdoor") / "frontdoor.log"
    return FrontDoorProcess(endpoint.url, ENDPOINT_NAME, log, deployment={"MAX_BODY_BYTES": str(MAX_BODY_BYTES), **environment})


@pytest.fixture(scope="module")
def door(endpoint, tmp_path_factory):
    with _front_door(endpoint, tmp_path_factory) as process:
        yield process


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: `make setup` installs Debian's chromium package")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 900, "height": 640})
    yield context.new_page()
    context.close()


def _drop(page, payload: bytes, name: str, content_type: str) -> None:
    """A file dropped on the drop zone, as a drag from the desktop delivers it."""
    transfer = page.evaluate_handle(
        """([b64, name, type]) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const transfer = new DataTransfer();
             transfer.items.add(new File([bytes], name, { type }));
             return transfer;
           }""",
        [base64.b64encode(payload).decode(), name, content_type],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def _canvas_pixels(page) -> str:
    return page.evaluate("() => document.getElementById('canvas').toDataURL('image/png')")


def test_a_dropped_image_shows_the_label_the_bars_and_the_heatmap(door, page):
    page.goto(f"{door.url}/")
    assert page.locator("#key").is_hidden()  # the local API has no keys
    with page.expect_response(lambda r: "/predict" in r.url, timeout=ANSWER_SECONDS * 1000) as answer:
        _drop(page, _jpeg(), "chelsea.jpg", "image/jpeg")
    body = answer.value.json()
    page.locator("#result").wait_for(state="visible")
    top = body["predictions"][0]
    assert page.inner_text("#label").startswith(f"{top['label']}:") and top["label"] in CLASSES
    assert page.locator("#bars li").count() == len(body["predictions"]) == len(CLASSES)
    assert "predict?explain=1" in answer.value.url
    assert page.get_attribute("#canvas", "data-heatmap") == "shown"
    assert body["explanation"]["label"] in page.inner_text("#heatmap-note")
    with_heatmap = _canvas_pixels(page)
    screenshot = os.environ.get("IMGCLF_PAGE_SCREENSHOT")
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)
    page.uncheck("#show-heatmap")
    assert page.get_attribute("#canvas", "data-heatmap") == "hidden"
    assert _canvas_pixels(page) != with_heatmap  # the heatmap was drawn over the image, and is gone
    assert page.locator("#message").is_hidden()


def test_an_oversize_file_shows_the_413_message(door, page):
    page.goto(f"{door.url}/")
    too_big = _jpeg() + b"\0" * MAX_BODY_BYTES
    with page.expect_response(lambda r: "/predict" in r.url, timeout=ANSWER_SECONDS * 1000) as answer:
        page.set_input_files("#pick", files=[{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": too_big}])
    assert answer.value.status == 413
    page.locator("#message").wait_for(state="visible")
    message = page.inner_text("#message")
    assert message.startswith("This image is too large for the API.") and "413" in message
    assert page.locator("#result").is_hidden()


def test_a_file_of_another_kind_shows_the_415_message(door, page):
    page.goto(f"{door.url}/")
    with page.expect_response(lambda r: "/predict" in r.url, timeout=ANSWER_SECONDS * 1000) as answer:
        _drop(page, b"GIF89a" + b"\0" * 32, "anim.gif", "image/gif")
    assert answer.value.status == 415
    page.locator("#message").wait_for(state="visible")
    assert page.inner_text("#message").startswith("This kind of file is not accepted.")


def test_with_api_keys_the_page_asks_for_one_keeps_it_in_the_session_and_sends_it(endpoint, tmp_path_factory, page):
    with _front_door(endpoint, tmp_path_factory, PAGE_AUTH="api_key") as keyed:
        page.goto(f"{keyed.url}/")
        page.locator("#key").wait_for(state="visible")
        page.fill("#key-input", "my-secret-key")
        page.click("#key button")
        with page.expect_request(lambda r: "/predict" in r.url, timeout=ANSWER_SECONDS * 1000) as sent:
            _drop(page, _jpeg(64), "chelsea.jpg", "image/jpeg")
        assert sent.value.headers["x-api-key"] == "my-secret-key"
        page.locator("#result").wait_for(state="visible")
        stored = page.evaluate("() => [sessionStorage.getItem('imgclf-api-key'), localStorage.length, document.cookie]")
        assert stored == ["my-secret-key", 0, ""]
