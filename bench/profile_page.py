"""Where one page's time goes: its SQL statements (with their times) and the hottest Python functions.

    .venv/bin/python bench/profile_page.py --db midas_bench /bookings "/customers?q=smith"

Runs the app in-process against a benchmark database (bench/seed.py), signed in as its first owner,
with the production settings the benchmark uses. Each path is requested --warm times first, then
--repeat times under cProfile and a statement timer.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+")
    p.add_argument("--db", default="midas_bench")
    p.add_argument("--warm", type=int, default=3)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--htmx", action="store_true", help="send HX-Request: true")
    args = p.parse_args(argv)
    os.environ.update({"DATABASE_URL": f"{SERVER}/{args.db}", "MIDAS_ENV": "staging",
                       "SECRET_KEY": "bench-only-secret-key-0123456789abcdef", "LOG_LEVEL": "WARNING"})
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    from flask_login import FlaskLoginClient
    from sqlalchemy import event, select

    from midas import create_app
    from midas.extensions import db
    from midas.models import StaffUser

    app = create_app()
    app.test_client_class = FlaskLoginClient
    with app.app_context():
        owner = db.session.scalar(select(StaffUser).where(StaffUser.role == "owner",
                                                          StaffUser.is_active_account.is_(True)))
        if owner is None:
            p.error("no active owner in this database: run bench/run.py once, or `flask users create`")
        engine = db.engine
    statements: dict[str, list[float]] = defaultdict(list)

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("t0", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn, cursor, statement, parameters, context, executemany):
        statements[" ".join(statement.split())[:160]].append(time.perf_counter() - conn.info["t0"].pop())

    headers = {"HX-Request": "true"} if args.htmx else {}
    for path in args.paths:
        with app.test_client(user=owner) as client:
            for _ in range(args.warm):
                assert client.get(path, headers=headers).status_code == 200, path
            statements.clear()
            profiler = cProfile.Profile()
            t0 = time.perf_counter()
            profiler.enable()
            for _ in range(args.repeat):
                client.get(path, headers=headers)
            profiler.disable()
            per_request = (time.perf_counter() - t0) / args.repeat * 1000
        sql_ms = sum(sum(times) for times in statements.values()) / args.repeat * 1000
        print(f"\n=== {path}: {per_request:.1f} ms a request, {sql_ms:.1f} ms of it in "
              f"{sum(len(t) for t in statements.values()) / args.repeat:.0f} SQL statements")
        for sql, times in sorted(statements.items(), key=lambda kv: -sum(kv[1]))[:12]:
            print(f"  {sum(times) / args.repeat * 1000:7.2f} ms  x{len(times) // args.repeat:<3} {sql}")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
