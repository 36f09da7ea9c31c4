"""Reliability tests: every test here is marked `reliability` and counts what it did.

Tests record their figures through the session-scoped `reliability_report` fixture —
`reliability_report.add("faults", 1)`, `.add("bad_inputs", n)`, `.add("events", n)` — and the terminal
summary of `make test-reliability` prints the totals, and "nothing lost" only when every reliability test
passed (a lost or duplicated message fails its test, so a green run is the proof).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.stripe_api import fake_stripe, stripe_server  # noqa: F401  (fixtures for the fault tests)

HERE = Path(__file__).parent
KINDS = ("faults", "bad_inputs", "events")


class ReliabilityReport:
    """Counters shared by the whole session; `add` is the one way tests record what they injected."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.passed = 0
        self.failed: list[str] = []

    def add(self, kind: str, n: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown reliability counter {kind!r}; use one of {KINDS}")
        self.counts[kind] += n


REPORT = ReliabilityReport()


@pytest.fixture(scope="session")
def reliability_report() -> ReliabilityReport:
    return REPORT


def _is_reliability_item(item: pytest.Item) -> bool:
    return HERE in Path(str(item.fspath)).parents


@pytest.hookimpl(tryfirst=True)  # before `-m reliability` selects on the marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if _is_reliability_item(item):
            item.add_marker(pytest.mark.reliability)


def pytest_runtest_logreport(report) -> None:
    if HERE.name not in report.nodeid.split("/") or report.skipped:
        return
    if report.failed:
        REPORT.failed.append(report.nodeid)
    elif report.when == "call":
        REPORT.passed += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not (REPORT.passed or REPORT.failed):
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability")
    write(f"faults injected:  {REPORT.counts['faults']}")
    write(f"bad inputs tried: {REPORT.counts['bad_inputs']}")
    write(f"events sent:      {REPORT.counts['events']}")
    write(f"tests passed:     {REPORT.passed}")
    if REPORT.failed:
        write(f"NOT PROVEN — {len(REPORT.failed)} reliability test(s) failed: " + ", ".join(sorted(set(REPORT.failed))))
    else:
        write("nothing lost: every message, payment and event accounted for exactly once")


# Real processes for the fault tests (PostgreSQL only: SQLite cannot be shared by several processes).

@pytest.fixture
def postgres_url(app) -> str:
    from midas.extensions import db

    if db.engine.dialect.name != "postgresql":
        pytest.skip("fault tests with real processes run on PostgreSQL (TEST_DATABASE_URL)")
    return os.environ["TEST_DATABASE_URL"]


@pytest.fixture
def processes():
    """Everything a test starts is registered here and stopped at teardown, even when the test fails."""
    started: list = []
    yield started
    for process in reversed(started):
        process.kill()


@pytest.fixture
def private_redis(app, postgres_url, monkeypatch, tmp_path):
    """A private redis-server, and this test process's app pointed at it (after-commit jobs go there too)."""
    from tests.reliability.processes import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    monkeypatch.setitem(app.config, "REDIS_URL", server.url)
    monkeypatch.delitem(app.extensions, "midas_redis", raising=False)
    yield server
    app.extensions.pop("midas_redis", None)
    server.crash()


@pytest.fixture
def slow_smtp():
    from tests.reliability.processes import start_smtp

    smtp = start_smtp()
    yield smtp
    smtp.mailbox.gate.set()
    smtp.controller.stop()


@pytest.fixture
def fake_twilio():
    from tests.reliability.processes import FakeTwilio

    twilio = FakeTwilio().start()
    yield twilio
    twilio.stop()
