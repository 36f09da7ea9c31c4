"""Gunicorn settings for Heroku-style dynos: sized by WEB_CONCURRENCY, bound to $PORT."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Heroku's router gives up after 30 s; finish well before it and restart slow workers.
timeout = 25
graceful_timeout = 25
keepalive = 5
# Recycle workers now and then so a slow leak never takes a dyno down. Not too often: a Midas worker
# takes about a second to boot, and at 2,000 requests the benchmark saw a worker restart every second
# or two under load, each one stalling the requests queued on it (a /healthz p99 of 900 ms). Worker
# memory stays flat (~110-130 MB after a full benchmark run).
max_requests = 20000
max_requests_jitter = 2000
preload_app = False  # no database or Redis connection may be shared across forks
accesslog = None  # Midas logs each request itself, as one JSON line with its request id
errorlog = "-"
forwarded_allow_ips = "*"  # the router is the only peer; ProxyFix trusts exactly one hop
