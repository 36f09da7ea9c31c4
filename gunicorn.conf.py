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
# Recycle workers now and then so a slow leak never takes a dyno down.
max_requests = 2000
max_requests_jitter = 200
preload_app = False  # no database or Redis connection may be shared across forks
accesslog = None  # Midas logs each request itself, as one JSON line with its request id
errorlog = "-"
forwarded_allow_ips = "*"  # the router is the only peer; ProxyFix trusts exactly one hop
