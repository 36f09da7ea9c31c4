"""Drive load at Midas under gunicorn (production settings) and at two bare-Flask ceilings, in one run.

    .venv/bin/python bench/run.py --db midas_bench --duration 10 --connections 32

Only 127.0.0.1 is ever targeted. Each endpoint gets --duration seconds of load at --connections
concurrent keep-alive connections from wrk (a bounded Python thread generator when wrk is missing, and
always for POST /webhooks/stripe, whose events must each be uniquely signed). Results are printed and
written to bench/results/<timestamp>.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import http.client
import http.cookiejar
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
HOST = "127.0.0.1"
WEBHOOK_SECRET = "whsec_bench_only_not_a_real_secret"
LOGIN_EMAIL, LOGIN_PASSWORD = "bench-owner@example.com", "bench-password-Quartz-42!"

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\"requests\": %d, \"duration_us\": %d, \"p50\": %d, \"p95\": %d, \"p99\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# Each wrk thread replays its own stride of the pre-signed events (one per line: signature, tab, body).
WRK_REPLAY_LUA = r"""
local counter = 0
setup = function(thread)
  thread:set("stride_id", counter)
  counter = counter + 1
end
local requests, next_request = {}, 1
init = function(args)
  local n = 0
  for line in io.lines(EVENTS_FILE) do
    if n % THREADS == stride_id then
      local tab = line:find("\t", 1, true)
      requests[#requests + 1] = wrk.format("POST", PATH, {["Content-Type"] = "application/json",
        ["Stripe-Signature"] = line:sub(1, tab - 1)}, line:sub(tab + 1))
    end
    n = n + 1
  end
end
request = function()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end
"""


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started_at = datetime.now(UTC)
    facts = machine_facts()
    print(f"load average at start: {facts['loadavg_start']}  ({facts['cpus']} CPUs)", file=sys.stderr)
    load = Load(args)
    results: list[dict] = []
    port = args.port

    if not args.skip_ceilings:
        ceilings = (("ceiling: hello world", "ceiling_hello:app"), ("ceiling: 50-row table", "ceiling_table:app"))
        for name, module in ceilings:
            with Gunicorn(module, port, args, env={}, pythonpath=BENCH):
                results.append(load.measure(name, port, "/"))
            port += 1

    email = None
    with PrivateRedis(args.port + 40) as redis_url:
        env = app_env(args, redis_url)
        create_login_user(env)
        with Gunicorn("wsgi:app", port, args, env=env) as server:
            cookie = login(port)
            targets = discover(port, cookie, args)
            for name, path, headers in targets:
                if args.only and not any(o in name for o in args.only):
                    continue
                results.append(load.measure(name, port, path, cookie=cookie, headers=headers))
            if not args.skip_email and (not args.only or any("email" in o for o in args.only)):
                email = email_pipeline(port, env, args)
            if not args.skip_webhooks and (not args.only or any("webhook" in o for o in args.only)):
                results.append(webhooks(port, args, load))
            memory = server.worker_rss_mb()

    availability = measure_availability(args) if args.avail_db else None
    facts["loadavg_end"] = os.getloadavg()
    report(args, started_at, facts, results, memory, availability, email)
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="midas_bench", help="database made by bench/seed.py")
    p.add_argument("--avail-db", default="", help="database with the 1M-booking set (seed.py --availability-only)")
    p.add_argument("--avail-samples", type=int, default=200)
    p.add_argument("--port", type=int, default=18300, help="first port; ceilings and app use port, port+1, port+2")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--web-concurrency", default=os.environ.get("WEB_CONCURRENCY", "2"))
    p.add_argument("--deep-hops", type=int, default=20, help="'Next' links followed to reach the deep bookings page")
    p.add_argument("--only", action="append", help="measure only endpoints whose name contains this (repeatable)")
    p.add_argument("--skip-ceilings", action="store_true")
    p.add_argument("--skip-webhooks", action="store_true")
    p.add_argument("--skip-email", action="store_true", help="skip webhook → email latency and the worker's email rate")
    p.add_argument("--email-events", type=int, default=500, help="payment_intent.succeeded events timed to the email")
    p.add_argument("--email-rate", type=float, default=1.0, help="events per second sent for the latency figure")
    p.add_argument("--email-drain", type=int, default=100, help="emails queued at once for the worker's send rate")
    p.add_argument("--python-load", action="store_true", help="use the Python generator even if wrk exists")
    args = p.parse_args(argv)
    args.duration = max(0.5, min(args.duration, 300.0))
    args.connections = max(1, min(args.connections, 256))
    args.email_events = max(1, min(args.email_events, 5000))
    args.email_rate = max(0.1, min(args.email_rate, 100.0))
    args.email_drain = max(1, min(args.email_drain, args.email_events))
    return args


def machine_facts() -> dict:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except OSError:
        pass
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu, "memory": mem,
            "python": platform.python_version(), "kernel": platform.release(), "loadavg_start": os.getloadavg(),
            "wrk": shutil.which("wrk") or "absent"}


def app_env(args, redis_url: str) -> dict:
    # MIDAS_ENV=staging: production code paths and settings, except SESSION_COOKIE_SECURE, which would
    # stop the session cookie from travelling over the plain-http loopback the bench uses.
    return {"DATABASE_URL": f"{SERVER}/{args.db}", "REDIS_URL": redis_url,
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdef", "MIDAS_ENV": "staging",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "RATELIMIT_KEY_PREFIX": "midas-bench-limits",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"), "PUBLIC_URL": "http://127.0.0.1",
            "EMAIL_PROVIDERS": "smtp", "SMTP_URL": f"smtp://{HOST}:{args.port + 41}",
            "MAIL_FROM": "Midas Bench <bench@localhost>"}


class PrivateRedis:
    """A throwaway redis-server on loopback for this run, so queued jobs never mix with anyone else's.

    Without the redis-server binary the shared server's db 5 is used instead.
    """

    def __init__(self, port: int) -> None:
        self.port, self.proc = port, None

    def __enter__(self) -> str:
        binary = shutil.which("redis-server")
        if not binary:
            return "redis://127.0.0.1:6379/5"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                                      "--appendonly", "no", "--daemonize", "no"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        from redis import Redis

        client = Redis(host=HOST, port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                return f"redis://{HOST}:{self.port}/0"
            except OSError:
                time.sleep(0.2)
            except Exception:  # redis.ConnectionError while it starts
                time.sleep(0.2)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def __exit__(self, *exc) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=15)


class Gunicorn:
    """gunicorn with gunicorn.conf.py (the production settings), bound to loopback only."""

    def __init__(self, module: str, port: int, args, env: dict, pythonpath: Path | None = None) -> None:
        self.port, self.module = port, module
        self.cmd = [str(ROOT / ".venv/bin/gunicorn"), module, "--config", str(ROOT / "gunicorn.conf.py"),
                    "--bind", f"{HOST}:{port}"]
        if pythonpath:
            self.cmd += ["--pythonpath", str(pythonpath)]
        self.env = {**os.environ, **env, "WEB_CONCURRENCY": str(args.web_concurrency)}
        self.env.pop("PORT", None)
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {self.module} exited; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/healthz" if self.module == "wsgi:app" else "/")
                if conn.getresponse().status < 500:
                    time.sleep(1.0)  # let every worker finish booting
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn {self.module} did not answer within 60 s; see {self.log.name}")

    def worker_rss_mb(self) -> list[float]:
        rss = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if fields.get("PPid", "").strip() == str(self.proc.pid) and "VmRSS" in fields:
                rss.append(round(int(fields["VmRSS"].split()[0]) / 1024, 1))
        return rss

    def __exit__(self, *exc) -> None:
        stop(self.proc, self.log)


def stop(proc: subprocess.Popen, log) -> None:
    """SIGTERM as a platform would, SIGKILL after 30 s; then close the process's log."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


def create_login_user(env: dict) -> None:
    full = {**os.environ, **env}
    full.pop("REDIS_URL", None)
    subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "wsgi", "users", "create", LOGIN_EMAIL,
                    "--name", "Bench Owner", "--role", "owner", "--password-stdin"],
                   input=LOGIN_PASSWORD + "\n", text=True, cwd=ROOT, env=full, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fails harmlessly if it exists


def login(port: int) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"http://{HOST}:{port}/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    if not token:
        raise RuntimeError("no csrf_token on /login")
    body = urllib.parse.urlencode({"email": LOGIN_EMAIL, "password": LOGIN_PASSWORD,
                                   "csrf_token": html.unescape(token.group(1))}).encode()
    opener.open(urllib.request.Request(f"http://{HOST}:{port}/login", data=body), timeout=30).read()
    cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
    status, _ = get(port, "/", cookies)
    if status != 200:
        raise RuntimeError(f"login did not work: / answered {status}")
    return cookies


def get(port: int, path: str, cookie: str = "", headers: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    conn.request("GET", path, headers={"Cookie": cookie, **(headers or {})})
    resp = conn.getresponse()
    return resp.status, resp.read().decode(errors="replace")


def discover(port: int, cookie: str, args) -> list[tuple[str, str, dict]]:
    """The measured endpoints, with ids and cursors taken from the seeded data itself."""
    import psycopg

    with psycopg.connect(f"{SERVER}/{args.db}") as conn:
        ref, = conn.execute("SELECT reference FROM bookings ORDER BY id OFFSET (SELECT count(*) / 2 FROM bookings) "
                            "LIMIT 1").fetchone() or ("MID-00000001",)
        cust, = conn.execute("SELECT customer_id FROM bookings WHERE reference = %s", (ref,)).fetchone() or (1,)
        item, loc = conn.execute("SELECT id, location_id FROM items WHERE category = 'car' ORDER BY id LIMIT 1"
                                 ).fetchone() or (1, 1)
    deep = "/bookings"
    for _ in range(max(0, args.deep_hops)):
        status, page = get(port, deep, cookie)
        nxt = re.search(r'href="([^"]*[?&](?:amp;)?after=[^"]*)"', page)
        if status != 200 or not nxt:
            break
        deep = html.unescape(nxt.group(1))
    start = (datetime.now(UTC) + timedelta(days=400)).replace(hour=10, minute=0)
    quote = urllib.parse.urlencode({"customer_id": cust, "location_id": loc, "category": "car",
                                    "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
                                    "ends_at": (start + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")})
    sys.path.insert(0, str(ROOT))
    from midas.services.reports import REPORTS

    targets = [("/healthz", "/healthz", {}), ("home", "/", {}),
               ("bookings: first page", "/bookings", {}),
               ("bookings: filtered", "/bookings?status=confirmed&category=car", {}),
               (f"bookings: deep page ({args.deep_hops} x Next)", deep, {}),
               ("booking detail", f"/bookings/{ref}", {}),
               ("customers: list", "/customers", {}), ("customers: search", "/customers?q=smith", {}),
               ("customer page", f"/customers/{cust}", {}), ("inventory: list", "/inventory", {}),
               ("item page (calendar)", f"/inventory/{item}", {}), ("payments: list", "/payments", {}),
               ("refunds: queue", "/refunds", {}), ("errors: groups", "/errors", {}),
               ("communications", "/communications", {}), ("webhook events", "/webhooks/events", {})]
    targets += [(f"report: {name}", f"/reports/{name}", {}) for name in REPORTS]
    targets.append(("live quote (HTMX partial)", f"/bookings/new?{quote}", {"HX-Request": "true"}))
    return targets


class Load:
    def __init__(self, args) -> None:
        self.args = args
        self.wrk = None if args.python_load else shutil.which("wrk")
        self.lua = tempfile.NamedTemporaryFile("w", prefix="bench-", suffix=".lua", delete=False)  # noqa: SIM115
        self.lua.write(WRK_LUA)
        self.lua.close()

    def measure(self, name: str, port: int, path: str, cookie: str = "", headers: dict | None = None) -> dict:
        headers = dict(headers or {})
        settle(port, self.args)
        t0 = time.perf_counter()
        status, _ = get(port, path, cookie, headers)  # warm-up, a sanity check of the status, a lone request
        lone_ms = round((time.perf_counter() - t0) * 1000, 1)
        if self.wrk:
            result = self._wrk(port, path, cookie, headers)
        else:
            result = python_load(port, self.args, lambda: ("GET", path, None, {"Cookie": cookie, **headers}))
        result.update(endpoint=name, path=path, probe_status=status, lone_ms=lone_ms)
        print(row_text(result), file=sys.stderr)
        return result

    def wrk_signed_posts(self, port: int, path: str, signed, count: int) -> dict:
        """POST pre-signed (body, Stripe-Signature) pairs, each once, through wrk."""
        with tempfile.NamedTemporaryFile("w", prefix="bench-events-", suffix=".txt", delete=False) as events:
            for body, signature in signed:
                events.write(f"{signature}\t{body}\n")
        with tempfile.NamedTemporaryFile("w", prefix="bench-post-", suffix=".lua", delete=False) as script:
            threads = min(self.args.wrk_threads, self.args.connections)
            script.write(WRK_REPLAY_LUA.replace("EVENTS_FILE", json.dumps(events.name))
                         .replace("THREADS", str(threads)).replace("PATH", json.dumps(path)) + WRK_LUA)
        try:
            print(f"  {count:,} events signed ahead for wrk", file=sys.stderr)
            return self._wrk(port, path, "", {}, script=script.name)
        finally:
            os.unlink(events.name)
            os.unlink(script.name)

    def _wrk(self, port, path, cookie, headers, script: str | None = None) -> dict:
        a = self.args
        cmd = [self.wrk, "-t", str(min(a.wrk_threads, a.connections)), "-c", str(a.connections),
               "-d", f"{max(1, round(a.duration))}s", "--timeout", "10s", "-s", script or self.lua.name, "--latency"]
        if cookie:
            cmd += ["-H", f"Cookie: {cookie}"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run([*cmd, f"http://{HOST}:{port}{path}"], capture_output=True, text=True,
                             timeout=a.duration + 60).stdout
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
        if not line:
            return {"rps": 0.0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "requests": 0, "errors": -1,
                    "tool": "wrk", "raw": out[-2000:]}
        d = json.loads(line.split(" ", 1)[1])
        if not d["requests"]:  # nothing finished within the window: no latency to speak of
            d["p50"] = d["p95"] = d["p99"] = None
        errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
        def ms(us):
            return None if us is None else round(us / 1000, 2)
        return {"rps": round(d["requests"] / (d["duration_us"] / 1e6), 1), "p50_ms": ms(d["p50"]),
                "p95_ms": ms(d["p95"]), "p99_ms": ms(d["p99"]),
                "requests": d["requests"], "errors": errors, "non_2xx_3xx": d["status"], "tool": "wrk"}


def settle(port: int, args, limit_s: float = 120.0) -> float:
    """Wait (bounded) until the server has drained the previous endpoint's backlog.

    wrk stops at the deadline but gunicorn still works through the requests it had queued; without this,
    a slow endpoint's leftovers would be charged to the next one. Settled: 8 parallel /healthz answer
    within 250 ms each (8 = 2 workers x 4 threads in the default settings).
    """
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        times: list[float] = []

        def probe(times: list[float] = times) -> None:
            t0 = time.perf_counter()
            try:
                get(port, "/healthz")
                times.append(time.perf_counter() - t0)
            except OSError:
                times.append(99.0)
        threads = [threading.Thread(target=probe) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=65)
        if len(times) == 8 and max(times) < 0.25:
            break
        time.sleep(0.5)
    waited = time.monotonic() - started
    if waited > 2:
        print(f"  (waited {waited:.1f} s for the server to drain)", file=sys.stderr)
    return waited


def python_load(port: int, args, make_request) -> dict:
    """--connections threads, each on one keep-alive connection, for --duration seconds (bounded)."""
    deadline = time.monotonic() + args.duration
    latencies: list[list[float]] = [[] for _ in range(args.connections)]
    errors = [0] * args.connections

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        sent = 0
        while time.monotonic() < deadline and sent < 1_000_000:
            method, path, body, headers = make_request()
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 400:
                    errors[n] += 1
            except (OSError, http.client.HTTPException):
                errors[n] += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
            latencies[n].append(time.perf_counter() - t0)
            sent += 1
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.duration + 30)
    elapsed = time.monotonic() - t0
    flat = sorted(x for lst in latencies for x in lst)

    def pct(q):
        return round(flat[min(len(flat) - 1, int(q * len(flat)))] * 1000, 2) if flat else None
    return {"rps": round(len(flat) / elapsed, 1), "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "requests": len(flat), "errors": sum(errors), "tool": "python threads"}


def webhooks(port: int, args, load: Load) -> dict:
    """Signed, unique payment events; afterwards each must be stored exactly once.

    Every event is signed before the load starts (each needs its own id, body and HMAC), so the
    generator spends its time sending, not hashing: wrk replays the pre-signed requests in order,
    one stride per wrk thread, falling back to Python threads that sign as they go when wrk is absent.
    """
    run_id = f"{int(time.time())}{os.getpid()}"

    def signed(n: int) -> tuple[str, str]:
        # A type Midas handles, so each delivery is stored and its job enqueued, as a real payment's is.
        body = json.dumps({"id": f"evt_benchrun_{run_id}_{n}", "object": "event", "type": "payment_intent.succeeded",
                           "api_version": "2024-06-20", "created": int(time.time()), "livemode": False,
                           "data": {"object": {"id": f"pi_benchrun_{run_id}_{n}", "object": "payment_intent",
                                               "amount": 1000, "amount_received": 1000, "currency": "gbp",
                                               "status": "succeeded", "metadata": {}}}})
        ts = int(time.time())
        sig = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
        return body, f"t={ts},v1={sig}"

    settle(port, args)
    if load.wrk:
        # Far more than wrk can send in --duration (stored rows are compared with distinct ids, so a
        # wrap-around would show up as a failed exactly-once check rather than pass unnoticed).
        events = max(20_000, int(args.duration * 3_000))
        result = load.wrk_signed_posts(port, "/webhooks/stripe", (signed(n) for n in range(events)), events)
    else:
        counter, lock = iter(range(10**9)), threading.Lock()

        def make():
            with lock:
                n = next(counter)
            body, sig = signed(n)
            return "POST", "/webhooks/stripe", body.encode(), {"Content-Type": "application/json",
                                                               "Stripe-Signature": sig}
        result = python_load(port, args, make)
    settle(port, args)  # requests still queued when the load stopped are stored too; count after them
    import psycopg

    with psycopg.connect(f"{SERVER}/{args.db}") as conn:
        stored, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM webhook_events WHERE event_id LIKE %s",
            (f"evt_benchrun_{run_id}_%",)).fetchone()
    accepted = result["requests"] - result["errors"]
    # Exactly once: no event stored twice, and every acknowledged one stored (a few more may be stored
    # than acknowledged: those the server finished after the generator had hung up).
    result.update(endpoint="POST /webhooks/stripe (signed, unique)", path="/webhooks/stripe", probe_status=None,
                  lone_ms=None, stored=stored, stored_distinct=distinct, accepted=accepted,
                  exactly_once=stored == distinct and stored >= accepted)
    print(row_text(result) + f"  stored={stored} accepted={accepted}", file=sys.stderr)
    return result


# Webhook → confirmation email, and the rate one worker sends at.

class Mailbox:
    """A local SMTP server (aiosmtpd) that notes when each message was accepted, by its Midas tag and subject."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[float, str, str]] = []  # (monotonic time, X-Midas-Notification, Subject)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        from email import message_from_bytes

        message = message_from_bytes(envelope.content)
        with self.lock:
            self.received.append((time.monotonic(), message.get("X-Midas-Notification", ""),
                                  str(message.get("Subject", ""))))
        return "250 Message accepted for delivery"

    def __enter__(self):
        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
        self.controller = Controller(self, hostname=HOST, port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def snapshot(self) -> list[tuple[float, str, str]]:
        with self.lock:
            return list(self.received)


class Worker:
    """`flask --app wsgi worker` (RQ with the scheduler), as production runs it."""

    def __init__(self, env: dict) -> None:
        self.env = {**os.environ, **env}
        self.log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115

    def __enter__(self):
        self.proc = subprocess.Popen([str(ROOT / ".venv/bin/flask"), "--app", "wsgi", "worker"], cwd=ROOT,
                                     env=self.env, stdout=self.log, stderr=self.log)
        from redis import Redis

        client = Redis.from_url(self.env["REDIS_URL"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ready once it has registered itself
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited; see {self.log.name}")
            if client.scard("rq:workers"):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"the worker did not start within 60 s; see {self.log.name}")

    def __exit__(self, *exc) -> None:
        stop(self.proc, self.log)


def email_pipeline(port: int, env: dict, args) -> dict:
    """p50/p95 from a signed payment_intent.succeeded to its confirmation email accepted; a worker's emails/s."""
    import psycopg

    run = int(time.time()) % 1_000_000
    with psycopg.connect(f"{SERVER}/{args.db}", autocommit=False) as conn:
        settled = settle_seeded_backlog(conn)
        bookings = pending_card_bookings(conn, run, args.email_events)
        conn.commit()
    print(f"email pipeline: {len(bookings)} bookings pending card payment; backlog settled: {settled}",
          file=sys.stderr)
    with Mailbox(args.port + 41) as mailbox, Worker(env):
        # The drain first, on an idle worker: after the events a backlog may still be queued ahead of it.
        drain = _drain(env, args, mailbox, [b["reference"] for b in bookings[:args.email_drain]])
        _high_queue_empty(env["REDIS_URL"])
        latency = _latency(port, args, mailbox, bookings)
    result = {"events": len(bookings), "rate_per_s": args.email_rate, **latency, **drain, "settled": settled}
    print(f"email pipeline: {result}", file=sys.stderr)
    return result


def _high_queue_empty(redis_url: str, limit_s: float = 180.0) -> None:
    """Confirmations go on the high queue; reminders the scheduler books meanwhile wait on default behind them."""
    from redis import Redis

    client, started = Redis.from_url(redis_url), time.monotonic()
    while time.monotonic() - started < limit_s:
        if not client.llen("rq:queue:high"):
            break
        time.sleep(0.5)
    time.sleep(1.0)  # the job in hand


def settle_seeded_backlog(conn) -> dict:
    """Bring a seeded database to the state a running system keeps it in before a worker starts on it.

    A seed writes rows no live system leaves lying around: pending messages whose jobs never existed,
    holds long past expiry, and the unknown charges of earlier webhook load. The worker's periodic jobs
    would otherwise spend the measured minutes on them (bench/seed.py no longer writes the first two).
    """
    cur = conn.cursor()
    notes = cur.execute("UPDATE notifications SET status = 'cancelled', last_error = 'bench: seeded, never queued' "
                        "WHERE status IN ('pending', 'sending') AND created_at < now() - interval '10 minutes'"
                        ).rowcount
    holds = cur.execute("UPDATE bookings SET status = 'quote', hold_expires_at = NULL WHERE status = "
                        "'pending_payment' AND hold_expires_at <= now() + interval '1 hour'").rowcount
    events = cur.execute("UPDATE webhook_events SET status = 'ignored', last_error = 'bench load: unknown charge' "
                         "WHERE status = 'received' AND event_id LIKE 'evt\\_benchrun\\_%'").rowcount
    return {"messages": notes, "holds": holds, "webhook_events": events}


def pending_card_bookings(conn, run: int, count: int) -> list[dict]:
    """`count` bookings pending card payment, each with its Stripe payment row, after every existing booking.

    Customers who take no SMS, so a confirmation is one email (and a receipt); items one each, in a row.
    """
    cur = conn.cursor()
    items = cur.execute("SELECT i.id, i.currency, i.daily_rate FROM items i WHERE i.status = 'active' "
                        "ORDER BY i.id LIMIT %s", (count,)).fetchall()
    customers = [r[0] for r in cur.execute(
        "SELECT id FROM customers WHERE NOT sms_opt_in AND email_opt_in AND erased_at IS NULL ORDER BY id LIMIT %s",
        (count,)).fetchall()]
    latest, = cur.execute("SELECT coalesce(max(block_ends_at), now()) FROM bookings").fetchone()
    made = []
    for n in range(count):
        item_id, currency, rate = items[n % len(items)]
        starts = max(latest, datetime.now(UTC)) + timedelta(days=2 + 3 * (n // len(items)))
        starts = starts.replace(minute=0, second=0, microsecond=0)
        ends, total = starts + timedelta(days=2), rate * 2
        reference = f"MB{run:06d}{n:04d}"
        booking_id, = cur.execute(
            "INSERT INTO bookings (reference, checkout_token, customer_id, item_id, status, starts_at, ends_at, "
            "block_starts_at, block_ends_at, currency, total_amount, deposit_amount, hold_expires_at, notes, "
            "special_requests, created_at, updated_at) VALUES (%s, %s, %s, %s, 'pending_payment', %s, %s, %s, %s, "
            "%s, %s, 0, now() + interval '2 hours', '', '', now(), now()) RETURNING id",
            (reference, hashlib.sha256(reference.encode()).hexdigest(), customers[n % len(customers)], item_id, starts,
             ends, starts - timedelta(hours=2), ends + timedelta(hours=2), currency, total)).fetchone()
        cur.execute("INSERT INTO booking_lines (booking_id, position, kind, description, amount, refundable) "
                    "VALUES (%s, 1, 'rental', 'Rental', %s, true)", (booking_id, total))
        intent = f"pi_benchmail_{run}_{n}"
        payment_id, = cur.execute(
            "INSERT INTO payments (booking_id, provider, kind, status, amount, currency, amount_captured, "
            "amount_refunded, provider_ref, idempotency_key, method, created_at, updated_at) VALUES "
            "(%s, 'stripe', 'charge', 'pending', %s, %s, 0, 0, %s, %s, 'card', now(), now()) RETURNING id",
            (booking_id, total, currency, intent, f"bench-mail-{run}-{n}")).fetchone()
        made.append({"reference": reference, "intent": intent, "payment_id": payment_id, "amount": total,
                     "currency": currency})
    return made


def signed_intent_succeeded(booking: dict, run_tag: str) -> tuple[bytes, dict]:
    body = json.dumps({
        "id": f"evt_benchmail_{run_tag}_{booking['intent']}", "object": "event", "type": "payment_intent.succeeded",
        "api_version": "2024-06-20", "created": int(time.time()), "livemode": False,
        "data": {"object": {"id": booking["intent"], "object": "payment_intent", "amount": booking["amount"],
                            "amount_received": booking["amount"], "currency": booking["currency"].lower(),
                            "status": "succeeded", "capture_method": "automatic",
                            "metadata": {"booking_reference": booking["reference"],
                                         "payment_id": str(booking["payment_id"])}}}})
    ts = int(time.time())
    sig = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return body.encode(), {"Content-Type": "application/json", "Stripe-Signature": f"t={ts},v1={sig}"}


def _latency(port: int, args, mailbox: Mailbox, bookings: list[dict]) -> dict:
    """Send the events at a steady rate; each one's time runs from the POST to its confirmation email."""
    sent: dict[str, float] = {}
    errors = 0
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    start = time.monotonic()
    for n, booking in enumerate(bookings):
        pause = start + n / args.email_rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        body, headers = signed_intent_succeeded(booking, str(os.getpid()))
        sent[booking["reference"]] = time.monotonic()
        try:
            conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            errors += response.status != 200
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
    conn.close()
    deadline = time.monotonic() + 180.0  # a worker that fell further behind than this is reported as such
    confirmed: dict[str, float] = {}
    pattern = re.compile(r"booking (MB\d{10})")
    while time.monotonic() < deadline and len(confirmed) < len(sent):
        for at, tag, subject in mailbox.snapshot():
            found = pattern.search(subject)
            # after its event: the drain before sent these bookings a confirmation of its own
            if tag.endswith("-booking_confirmation") and found and at >= sent.get(found.group(1), float("inf")):
                confirmed.setdefault(found.group(1), at)
        time.sleep(0.5)
    waits = sorted(confirmed[ref] - sent[ref] for ref in confirmed)

    def pct(q: float) -> float | None:
        """Over every event sent: one still unconfirmed at the deadline counts as slower than all (None)."""
        rank = min(len(sent) - 1, int(q * len(sent)))
        return round(waits[rank] * 1000, 1) if rank < len(waits) else None
    return {"latency_p50_ms": pct(0.50), "latency_p95_ms": pct(0.95), "latency_max_ms": pct(1.0),
            "confirmed": len(confirmed), "post_errors": errors, "wait_cap_s": 180}


def _drain(env: dict, args, mailbox: Mailbox, references: list[str]) -> dict:
    """Stage confirmation emails for `references` in one transaction (the real outbox path) and time the drain."""
    sys.path.insert(0, str(ROOT))
    from midas import create_app
    from midas.config import Config
    from midas.extensions import db
    from midas.models import Booking
    from midas.services import notifications, outbox

    app = create_app(Config({**os.environ, **env}))
    with app.app_context():
        ids = set()
        for booking in db.session.scalars(db.select(Booking).where(Booking.reference.in_(references))):
            new_id = outbox.stage(outbox.Message("email", "booking_confirmation", booking.customer.email,
                                                 f"bench-drain:{booking.reference}:{time.time_ns()}",
                                                 notifications.booking_context(booking), booking.id,
                                                 booking.customer_id))
            ids.add(str(new_id))
        start = time.monotonic()
        db.session.commit()  # the send jobs are enqueued as this commits
        db.engine.dispose()
    deadline = start + max(120.0, len(ids) * 1.5)
    arrived: dict[str, float] = {}
    while time.monotonic() < deadline and len(arrived) < len(ids):
        for at, tag, _ in mailbox.snapshot():
            if tag.split("-", 1)[0] in ids:
                arrived.setdefault(tag.split("-", 1)[0], at)
        time.sleep(0.2)
    took = (max(arrived.values()) - start) if arrived else None
    return {"drain_queued": len(ids), "drain_sent": len(arrived), "drain_s": round(took, 2) if took else None,
            "emails_per_s": round(len(arrived) / took, 1) if took else None}


def measure_availability(args) -> dict:
    """The availability queries in-process against the 1M-booking database: one item, and a category search."""
    os.environ.update({"DATABASE_URL": f"{SERVER}/{args.avail_db}", "MIDAS_ENV": "staging",
                       "SECRET_KEY": "bench-only-secret-key-0123456789abcdef"})
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    from midas import create_app
    from midas.extensions import db
    from midas.services import availability

    app = create_app()
    out = {}
    with app.app_context():
        bookings = db.session.execute(db.text("SELECT count(*) FROM bookings")).scalar()
        items = db.session.execute(db.text("SELECT count(*) FROM items")).scalar()
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=5)
        one, search = [], []
        for n in range(max(1, args.avail_samples)):
            a = start + timedelta(days=n % 60)
            t0 = time.perf_counter()
            availability.conflicts_for(n % items + 1, a, a + timedelta(days=3))
            one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            availability.available_items("car", None, a, a + timedelta(days=3))
            search.append(time.perf_counter() - t0)
            db.session.rollback()

        def summary(xs):
            xs = sorted(xs)
            return {"p50_ms": round(statistics.median(xs) * 1000, 2),
                    "p95_ms": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))] * 1000, 2)}
        out = {"bookings": bookings, "items": items, "samples": len(one), "one_item": summary(one),
               "category_search": summary(search)}
    print(f"availability at {out['bookings']:,} bookings: {out}", file=sys.stderr)
    return out


def row_text(r: dict) -> str:
    def f(x):
        return "-" if x is None else f"{x:.2f}"
    return (f"{r['endpoint'][:44]:<44} {r['rps']:>9.1f} {f(r['p50_ms']):>8} {f(r['p95_ms']):>8} "
            f"{f(r['p99_ms']):>8} {r['errors']:>6}")


def report(args, started_at, facts, results, memory, availability, email=None) -> None:
    hello = next((r["rps"] for r in results if r["endpoint"] == "ceiling: hello world"), None)
    table = next((r["rps"] for r in results if r["endpoint"] == "ceiling: 50-row table"), None)
    for r in results:
        r["vs_hello"] = round(r["rps"] / hello, 3) if hello else None
        r["vs_table"] = round(r["rps"] / table, 3) if table else None
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = {"db": args.db, "duration_s": args.duration, "connections": args.connections,
                "web_concurrency": args.web_concurrency, "gunicorn": "gunicorn.conf.py (gthread, GUNICORN_THREADS "
                f"{os.environ.get('GUNICORN_THREADS', '4')}), bound to {HOST}",
                "app_env": "MIDAS_ENV=staging, a private redis-server for the run (db 5 without one)"}
    doc = {"started_at": started_at.isoformat(), "machine": facts, "settings": settings, "results": results,
           "web_worker_rss_mb": memory, "availability": availability, "email": email}
    (RESULTS / f"{stamp}.json").write_text(json.dumps(doc, indent=2, default=str))

    lines = [f"# Midas benchmark {stamp}", "",
             f"Machine: {facts['cpus']} CPUs ({facts['cpu_model']}), {facts['memory']} RAM, Python {facts['python']}; "
             f"load average {tuple(round(x, 2) for x in facts['loadavg_start'])} at start, "
             f"{tuple(round(x, 2) for x in facts['loadavg_end'])} at end.",
             f"Settings: {json.dumps(settings)}", "",
             "| endpoint | req/s | p50 ms | p95 ms | p99 ms | errors | ÷ hello | ÷ table | status | lone ms | tool |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['endpoint']} | {r['rps']:.1f} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
                     f"{r['errors']} | {r['vs_hello']} | {r['vs_table']} | {r['probe_status'] or ''} | "
                     f"{r.get('lone_ms', '')} | {r['tool']} |")
    if email:  # in the table too: req/s is the events' (or emails') rate, p99 the slowest
        lines.append(f"| webhook → confirmation email accepted (1 worker) | {email['rate_per_s']} | "
                     f"{email['latency_p50_ms']} | {email['latency_p95_ms']} | {email['latency_max_ms']} | "
                     f"{email['events'] - email['confirmed']} | | | | | signed POST + aiosmtpd |")
        lines.append(f"| worker: emails sent per second | {email['emails_per_s']} | | | | "
                     f"{email['drain_queued'] - email['drain_sent']} | | | | | outbox drain |")
    hook = next((r for r in results if r["endpoint"].startswith("POST /webhooks")), None)
    if hook:
        lines += ["", f"Webhooks: {hook['accepted']} accepted, {hook['stored']} stored "
                      f"({hook['stored_distinct']} distinct): exactly once = {hook['exactly_once']}."]
    lines += ["", f"Web worker resident memory after the run (MB): {memory}"]
    if email:
        lines += [f"Webhook → confirmation email accepted by a local SMTP server (one `flask worker`, "
                  f"{email['events']} signed payment_intent.succeeded at {email['rate_per_s']}/s): "
                  f"p50 {email['latency_p50_ms']} ms, p95 {email['latency_p95_ms']} ms, "
                  f"max {email['latency_max_ms']} ms; "
                  f"{email['confirmed']}/{email['events']} confirmed within {email['wait_cap_s']} s of the last "
                  f"event (a figure of None: that share of events was still waiting), {email['post_errors']} POST "
                  "errors.",
                  f"One worker's email rate: {email['drain_sent']}/{email['drain_queued']} queued confirmation emails "
                  f"sent in {email['drain_s']} s = {email['emails_per_s']} emails/s."]
    if availability:
        lines += [f"Availability at {availability['bookings']:,} bookings / {availability['items']:,} items "
                  f"({availability['samples']} samples): one item {availability['one_item']}, "
                  f"category search {availability['category_search']}."]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{stamp}.md").write_text(text)
    print(text)
    print(f"written: bench/results/{stamp}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
