"""What browser tests share: signing in like a keyboard user, and catching what went wrong on the page."""

from __future__ import annotations

from playwright.sync_api import ConsoleMessage, Page, Response

from tests.conftest import PASSWORD

ABORTED_REQUEST = ("htmx:sendAbort", "htmx:afterRequest")


class PageProblems:
    """What went wrong while the page was used: console errors (CSP violations among them),
    uncaught JavaScript exceptions, and server errors."""

    def __init__(self, page: Page) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.server_errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        # Forms keep only their latest request (hx-sync replace): htmx logs the superseded one's
        # abort as an error, but it is the intended outcome. Failed responses still show up as
        # htmx:responseError / htmx:sendError, and 5xx below.
        if message.type == "error" and not message.text.startswith(ABORTED_REQUEST):
            self.console_errors.append(f"{message.text} ({message.location.get('url') or ''})")

    def _response(self, response: Response) -> None:
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.request.method} {response.url}")

    def assert_none(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.server_errors == [], self.server_errors


def sign_in(page: Page, email: str) -> None:
    """Sign in the way a keyboard user does: type both fields and press Enter."""
    page.goto("/login")
    page.locator("input[name=email]").fill(email)
    password = page.locator("input[name=password]")
    password.fill(PASSWORD)
    password.press("Enter")
