"""Real processes for the fault tests: a private redis-server, `flask --app wsgi worker`, gunicorn, the CLI.

Every process runs in its own session (process group), so a test can SIGKILL a worker together with the
work horse it forked — what a dyno dying looks like — and only what the test started is ever killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from bs4 import BeautifulSoup

from midas.config import ROOT
from tests.integrations.fakes import EphemeralController, Mailbox

FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Poll until `predicate()` is truthy and return it; fail the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Process:
    """One started process group with its log file."""

    popen: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the process and all it forked (RQ's work horse sits in a process group of its own)."""
        if self.popen.poll() is None:
            for pid in [*descendants(self.popen.pid), self.popen.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def descendants(pid: int) -> list[int]:
    """Every living process below `pid`, read from /proc (children before their own children)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(parents.get(child, []))
    return found


def start(args: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("ab") as output:
        popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    return Process(popen, log)


class RedisServer:
    """A private redis-server on its own port: stopped and started again by the test, never the shared one."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(self.directory)]
        self.process = start(args, dict(os.environ), self.directory / "redis.log")
        wait_for(self._answers, 10, "the private redis-server to answer")

    def crash(self) -> None:
        """SIGKILL: Redis is gone at once, as in an outage (nothing was saved: --save "")."""
        if self.process:
            self.process.kill()
            self.process = None

    def freeze(self) -> None:
        """SIGSTOP: Redis accepts connections (the kernel does) but never answers, as on a hung host."""
        os.kill(self.process.popen.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.popen.pid, signal.SIGCONT)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def app_env(database_url: str, redis_url: str | None, **settings: str) -> dict[str, str]:
    """The environment of a Midas process for these tests: test settings, our DB, no inherited providers."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("REDIS_URL", "STRIPE_", "SMTP_", "EMAIL_", "TWILIO_", "SENDGRID_", "MAILGUN_",
                                  "DATABASE_URL", "SENTRY_"))}
    env.update({"DATABASE_URL": database_url, "SECRET_KEY": "reliability-test", "MIDAS_ENV": "testing",
                "LOG_LEVEL": "WARNING", "PROXY_HOPS": "0", "PYTHONUNBUFFERED": "1"})
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(settings)
    return env


def start_worker(env: dict[str, str], log: Path) -> Process:
    """`flask --app wsgi worker` (MidasWorker with the scheduler), as the Procfile runs it."""
    worker = start([*FLASK, "worker"], env, log)
    time.sleep(0.2)
    if worker.popen.poll() is not None:
        pytest.fail(f"the worker exited at once: {worker.tail()}")
    return worker


def flask(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Run one `flask --app wsgi …` command to the end; its output, or the test fails with it."""
    done = subprocess.run([*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"flask {' '.join(args)} exited {done.returncode}: {done.stdout[-1500:]} {done.stderr[-3000:]}")
    return done.stdout


def start_gunicorn(env: dict[str, str], log: Path, workers: int = 2) -> tuple[Process, str]:
    port = free_port()
    server = start([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
                   {**env, "WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": "4"}, log)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.popen.poll() is not None:
            pytest.fail(f"gunicorn exited: {server.tail()}")
        try:
            return requests.get(f"{base}/healthz", timeout=5).ok
        except requests.RequestException:
            return False

    wait_for(up, 60, "gunicorn to serve", interval=0.2)
    return server, base


# A browser for gunicorn: it reads the CSRF token from the page, as forms and HTMX do.

@dataclass
class Browser:
    base: str
    session: requests.Session = field(default_factory=requests.Session)

    def csrf(self, path: str = "/login") -> str:
        page = BeautifulSoup(self.session.get(self.base + path, timeout=30).text, "html.parser")
        return page.find("meta", attrs={"name": "csrf-token"})["content"]

    def post(self, path: str, data: dict | None = None, csrf_from: str = "/login", **kwargs) -> requests.Response:
        form = {"csrf_token": self.csrf(csrf_from), **(data or {})}
        return self.session.post(self.base + path, data=form, allow_redirects=False, timeout=30, **kwargs)

    def login(self, email: str, password: str) -> None:
        response = self.post("/login", {"email": email, "password": password})
        assert response.status_code == 302, (response.status_code, response.text[:500])


# SMTP that can be made slow, so a kill lands while a worker is in the middle of sending.

class SlowMailbox(Mailbox):
    """The fake SMTP mailbox, with a gate: while closed, RCPT TO is answered only once it opens.

    `arrived` is set when a client is held at the gate: the worker is then mid-conversation, with the
    message not yet handed over (no DATA), which is where the test kills it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not self.gate.is_set():
            self.arrived.set()
            while not self.gate.is_set():
                await asyncio.sleep(0.05)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@dataclass
class Smtp:
    mailbox: SlowMailbox
    controller: EphemeralController

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    def tagged(self, tag_prefix: str = "") -> list[str]:
        """The X-Midas-Notification tag of every message received (one per delivered row)."""
        return [m["X-Midas-Notification"] for m in self.mailbox.messages
                if (m["X-Midas-Notification"] or "").startswith(tag_prefix)]


def start_smtp() -> Smtp:
    mailbox = SlowMailbox()
    controller = EphemeralController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    return Smtp(mailbox, controller)


# Twilio that keeps the texts it took, lists them, and can hold its answer (the kill lands after it took one).

TWILIO_SID, TWILIO_TOKEN, TWILIO_FROM = "AC00000000000000000000000000000001", "twilio-token", "+15005550006"


class FakeTwilio:
    """Messages.json as Twilio serves it: POST creates a text, GET lists them (To/From filters), newest first."""

    def __init__(self) -> None:
        from pytest_httpserver import HTTPServer

        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.texts: list[dict] = []
        self.posts = 0
        self.gate = threading.Event()
        self.gate.set()
        self.took_one = threading.Event()
        self.lock = threading.Lock()

    def start(self) -> FakeTwilio:
        import re

        self.server.start()
        self.server.expect_request(re.compile(r"^/2010-04-01/Accounts/\w+/Messages\.json$")).respond_with_handler(
            self.handle)
        return self

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def env(self) -> dict[str, str]:
        return {"TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TWILIO_FROM_NUMBER": TWILIO_FROM,
                "TWILIO_API_BASE": self.url}

    def handle(self, request):
        import json
        from email.utils import formatdate

        from werkzeug import Response

        if request.method == "GET":
            wanted = [t for t in reversed(self.texts) if t["to"] == request.args.get("To", t["to"])
                      and t["from"] == request.args.get("From", t["from"])]
            return Response(json.dumps({"messages": wanted, "end": len(wanted), "first_page_uri": request.path,
                                        "next_page_uri": None, "previous_page_uri": None, "page": 0,
                                        "page_size": 50, "start": 0, "uri": request.path}),
                            content_type="application/json")
        with self.lock:
            self.posts += 1
            text = {"sid": f"SM{len(self.texts) + 1:032x}", "to": request.form["To"], "from": request.form["From"],
                    "body": request.form["Body"], "status": "queued", "date_created": formatdate(usegmt=True),
                    "account_sid": TWILIO_SID}
            self.texts.append(text)
        if not self.gate.is_set():  # Twilio has the text; its answer is late
            self.took_one.set()
            self.gate.wait(30)
        return Response(json.dumps(text), status=201, content_type="application/json")

    def stop(self) -> None:
        self.gate.set()
        self.server.clear()
        self.server.stop()
