"""Take docs/images/page.png: the page of a running `make demo` after it was given one test image.

    .venv/bin/python docs/images/page_screenshot.py runs/<run>/data/splits/test/rocket/rocket_0015.jpg

Drives Debian's Chromium through Playwright, as tests/page/test_page_browser.py does."""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main(image: str, url: str = "http://127.0.0.1:8080/") -> None:
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 900, "height": 640}).new_page()
        page.goto(url)
        with page.expect_response(lambda r: "/predict" in r.url, timeout=120_000):
            page.set_input_files("#pick", image)
        page.locator("#result").wait_for(state="visible")
        page.screenshot(path=str(Path(__file__).with_name("page.png")), full_page=True)
        print(page.inner_text("#label"))
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
