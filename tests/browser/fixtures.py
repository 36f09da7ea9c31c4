"""Real-browser fixtures: the test's app served on a live port, and system Chromium driven by Playwright.

Registered once for the whole suite by tests/conftest.py, so browser tests in any folder share one
Playwright driver and one Chromium (a second sync Playwright in the same session refuses to start).

Chromium is the system one (/usr/bin/chromium); `playwright install` is never needed. When it is
missing the browser tests fail (CI installs Chromium), they do not skip. Test modules here mark
themselves with `pytestmark = pytest.mark.browser`, so `-m "not browser"` leaves them out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


class _InFlight:
    """WSGI middleware counting requests being handled, so teardown can wait for the last one.

    Flask pops the request's app context (and Flask-SQLAlchemy removes its session) before the
    WSGI call returns, so at zero no server thread holds a database connection or transaction.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.count = 0
        self.idle = threading.Condition()

    def __call__(self, environ, start_response):
        with self.idle:
            self.count += 1
        try:
            return self.app(environ, start_response)
        finally:
            with self.idle:
                self.count -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.count == 0, timeout=timeout)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The `app` fixture's app (same database) on 127.0.0.1 and an ephemeral port; yields the base URL.

    It depends on `app`, so it is torn down first: the server is stopped and its last request has
    finished (its session removed) before `app` empties the tables (TRUNCATE waits on open transactions).
    """
    wsgi = _InFlight(app)
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        assert wsgi.wait_idle(timeout=10), "the live server still had requests in flight after 10s"
        assert not thread.is_alive(), "the live server thread did not stop"


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(playwright_driver: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Browser tests need the system Chromium at {CHROMIUM} (e.g. `apt-get install chromium`); "
            "do not run `playwright install`. Deselect them with `-m 'not browser'`.",
            pytrace=False,
        )
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium: Browser, live_server: str) -> Iterator[Page]:
    """A fresh browser context and page per test, pointed at the live server.

    It depends on `live_server` so that it closes (no more requests from the browser) before the server stops.
    """
    context = chromium.new_context(base_url=live_server, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
