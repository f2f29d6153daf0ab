"""The browsers the view tests open pages in, and the checks they share.

Chromium is Debian's, driven through playwright-python (whose own browser download is not used); Firefox is
Debian's firefox-esr, driven over WebDriver BiDi (tests/firefox.py). Where one is missing its tests skip,
saying why; `.ci/run` installs both and sets PROBES_REQUIRE_BROWSER=1, so CI fails instead of skipping.
`Opened` (chromium) and `firefox.Tab` have the same methods (`hover`, `check`, `text`, `evaluate`,
`screenshot`, `close`), so a check written against them runs in either browser.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing(why: str):
    """Skip a browser test for want of `why`; in CI (PROBES_REQUIRE_BROWSER) fail instead."""
    if os.environ.get("PROBES_REQUIRE_BROWSER"):
        pytest.fail(why)
    pytest.skip(why)


def chromium_browser():
    """Debian's chromium, headless, through playwright; skips (fails under PROBES_REQUIRE_BROWSER) without
    them."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("needs playwright (pip install -e '.[test]')")
    if chromium is None:
        missing("needs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        yield b
        b.close()


def firefox_opener():
    """Debian's firefox-esr, headless, over WebDriver BiDi (tests/firefox.py); skips (fails under
    PROBES_REQUIRE_BROWSER) without it."""
    executable = shutil.which("firefox-esr") or shutil.which("firefox")
    try:
        import websockets  # noqa: F401
    except ImportError:
        missing("needs websockets (pip install -e '.[test]')")
    if executable is None:
        missing("needs Debian's firefox-esr (apt-get install firefox-esr)")
    from firefox import Firefox

    browser = Firefox(executable)
    try:
        yield browser.open
    finally:
        browser.close()


class Opened:
    """A view opened from its file in chromium, with every console message, page error and request
    recorded. Its methods are those of firefox.Tab, so that a check can run in either browser."""

    def __init__(self, browser, path, width=1280):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.messages, self.requests = [], []
        self.page.on("console", lambda m: self.messages.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.messages.append(("pageerror", str(e))))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_selector("html[data-ready]", timeout=10_000)

    def hover(self, selector: str) -> None:
        self.page.hover(selector)

    def check(self, selector: str) -> None:
        self.page.check(selector)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def evaluate(self, expression: str):
        return self.page.evaluate(expression)

    def screenshot(self) -> bytes:
        return self.page.screenshot(full_page=True)

    def cell(self, r, j, grid=0):
        return self.page.locator(".grid").nth(grid).locator(cell(r, j))

    def close(self):
        assert [m for m in self.messages if m[0] in ("error", "pageerror", "warning")] == []
        assert self.requests == [self.url]  # the file itself, nothing else
        self.page.close()


def cell(r: int, j: int) -> str:
    """The selector of the lens grid's cell at row r, position j (the first grid's, where there are two)."""
    return f'.cell[data-r="{r}"][data-j="{j}"]'


def shown_top(view, table=0) -> tuple[str, float]:
    """The top-1 token and probability in the details table, as shown."""
    token, prob = view.evaluate(
        f"(r => [r.querySelector('td.tok').innerText, r.querySelector('td.prob').innerText])"
        f"(document.querySelectorAll('table.top')[{table}].rows[0])"
    )
    return token, float(prob)


def backgrounds(view) -> list[str]:
    return view.evaluate("[...document.querySelectorAll('.cell')].map(c => c.style.backgroundColor)")


def not_blank(png: bytes, colours=50, spread=0.05) -> None:
    """A PNG of more than `colours` colours and some spread of brightness: something drawn, not a blank."""
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png), format="png")[..., :3]
    n = len(np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0))
    assert n > colours and pixels.std() > spread, (n, pixels.std())
