"""Stock Firefox, headless, driven over WebDriver BiDi: just enough to open a view and check it.

Playwright drives only its own patched Firefox; Debian's firefox-esr speaks WebDriver BiDi itself, so this
talks to it over one websocket (the `websockets` package), without geckodriver. `Firefox` starts the
browser on a fresh profile and ends it (and removes the profile) in `close()`; `Firefox.open(path)` gives
a `Tab` with the methods of browsers.Opened (chromium's), so that the shared checks run in either: `hover`,
`check`, `text`, `evaluate`, `screenshot`, and `close`, which fails on any console warning or error and on
any network request.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

TIMEOUT = 10.0  # seconds for any one answer from the browser

# Set on the fresh profile: nothing of the browser's own (updates, studies, suggestions) goes out, so
# any request seen is the page's.
PREFS = {
    "app.update.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "app.normandy.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.newtabpage.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
}


class BidiError(RuntimeError):
    pass


class Firefox:
    """A headless firefox-esr on a temporary profile, one BiDi session over one websocket."""

    def __init__(self, executable: str):
        from websockets.sync.client import connect

        # The profile and firefox's own output, in one folder that close() removes. Its output goes to a
        # file, not a pipe, so that no unread pipe can ever stall the browser.
        self.home = Path(tempfile.mkdtemp(prefix="probes-firefox-"))
        profile = self.home / "profile"
        profile.mkdir()
        prefs = "".join(f'user_pref("{k}", {json.dumps(v)});\n' for k, v in PREFS.items())
        (profile / "user.js").write_text(prefs)
        self.log = self.home / "firefox.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [executable, "--headless", "--no-remote", "--profile", str(profile)]
                + ["--remote-debugging-port=0", "about:blank"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.socket = None
        self.connection = contextlib.ExitStack()
        try:
            # max_size: a whole-page screenshot comes back as one message.
            socket = connect(f"{self._address()}/session", open_timeout=TIMEOUT, max_size=2**28)
            self.socket = self.connection.enter_context(socket)
            self.send("session.new", {"capabilities": {}})
            self.send("session.subscribe", {"events": ["log.entryAdded", "network.beforeRequestSent"]})
        except BaseException:
            self.close()
            raise

    def _address(self) -> str:
        """The websocket address firefox prints once listening (port 0: whichever port was free)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            m = re.search(r"WebDriver BiDi listening on (ws://\S+)", self.log.read_text(errors="replace"))
            if m:
                return m.group(1)
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise BidiError(f"firefox did not start its BiDi server (exit {self.process.poll()}):\n{tail}")

    def send(self, method: str, params: dict) -> dict:
        """Send one command and wait for its answer; events that arrive meanwhile are kept in .events."""
        n = next(self.ids)
        self.socket.send(json.dumps({"id": n, "method": method, "params": params}))
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                message = json.loads(self.socket.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                raise TimeoutError(f"{method}: no answer from firefox within {TIMEOUT:.0f} s") from None
            if message.get("type") == "event":
                self.events.append(message)
            elif message.get("id") == n:
                if message["type"] == "error":
                    raise BidiError(f"{method}: {message['error']}: {message.get('message')}")
                return message["result"]

    def open(self, path: Path, width: int = 1280, height: int = 900) -> Tab:
        return Tab(self, path, width, height)

    def close(self) -> None:
        try:
            if self.socket is not None:
                try:
                    self.send("browser.close", {})
                except Exception:
                    pass  # the socket closes as the browser goes
            self.connection.close()
        finally:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self.home, ignore_errors=True)


class Tab:
    """One view opened from its file in a new tab, with its console messages and requests recorded."""

    def __init__(self, firefox: Firefox, path: Path, width: int, height: int):
        self.firefox = firefox
        self.context = firefox.send("browsingContext.create", {"type": "tab"})["context"]
        firefox.send(
            "browsingContext.setViewport",
            {"context": self.context, "viewport": {"width": width, "height": height}},
        )
        self.first_event = len(firefox.events)
        self.url = path.resolve().as_uri()
        go = {"context": self.context, "url": self.url, "wait": "complete"}
        firefox.send("browsingContext.navigate", go)
        self.wait_for("document.documentElement.dataset.ready === '1'")

    def _evaluate(self, expression: str) -> dict:
        result = self.firefox.send(
            "script.evaluate",
            {"expression": expression, "target": {"context": self.context}, "awaitPromise": True},
        )
        if result["type"] == "exception":
            raise BidiError(f"{expression!r}: {result['exceptionDetails']['text']}")
        return result["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        return json.loads(self._evaluate(f"JSON.stringify({expression})")["value"])

    def wait_for(self, expression: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not self.evaluate(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.url}: waited {TIMEOUT:.0f} s for {expression}")
            time.sleep(0.05)

    def text(self, selector: str) -> str:
        return self.evaluate(f"document.querySelector({json.dumps(selector)}).innerText")

    def _pointer(self, selector: str, *actions: dict) -> None:
        """Real pointer input: scroll the element into view, move the mouse to its centre, then `actions`."""
        node = self._evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center', inline: 'center'}); return e; })()"
        )
        if node.get("type") != "node":
            raise BidiError(f"no element matches {selector!r}")
        origin = {"type": "element", "element": {"sharedId": node["sharedId"]}}
        move = {"type": "pointerMove", "x": 0, "y": 0, "origin": origin}
        self.firefox.send(
            "input.performActions",
            {
                "context": self.context,
                "actions": [{"type": "pointer", "id": "mouse", "actions": [move, *actions]}],
            },
        )

    def hover(self, selector: str) -> None:
        self._pointer(selector)

    def click(self, selector: str) -> None:
        self._pointer(selector, {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0})

    def check(self, selector: str) -> None:
        """Tick a radio button or checkbox by clicking it, as a user would."""
        self.click(selector)
        self.wait_for(f"document.querySelector({json.dumps(selector)}).checked")

    def screenshot(self) -> bytes:
        """A PNG of the whole page, not just the viewport."""
        whole = {"context": self.context, "origin": "document"}
        shot = self.firefox.send("browsingContext.captureScreenshot", whole)
        return base64.b64decode(shot["data"])

    def _events(self, method: str) -> list[dict]:
        return [e["params"] for e in self.firefox.events[self.first_event :] if e["method"] == method]

    def close(self) -> None:
        """Close the tab, after checking that nothing was logged as a warning or an error (uncaught
        exceptions and blocked loads included) and that no request went out."""
        # This tab's log only: a tab that a failed test left open must not fail the next one.
        logged = [e for e in self._events("log.entryAdded") if e["source"].get("context") == self.context]
        problems = [(e["level"], e["text"]) for e in logged if e["level"] in ("warn", "error")]
        # Firefox reports network requests only (http, https, ws), not reads of file: addresses such as the
        # page's own; test_views checks the page's text for anything it could read.
        requests = [e["request"]["url"] for e in self._events("network.beforeRequestSent")]
        self.firefox.send("browsingContext.close", {"context": self.context})
        assert problems == [] and requests == [], (problems, requests)
