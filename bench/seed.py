"""Create a fresh PostgreSQL database for the benchmark, migrate it, and fill it fast with COPY.

    .venv/bin/python bench/seed.py --db midas_bench --bookings 200000 ...
    .venv/bin/python bench/seed.py --db midas_bench_avail --availability-only --bookings 1000000

Rows are written with psycopg 3 ``cursor.copy`` (never the ORM row by row). Every CHECK, FK and
unique constraint holds, and blocking bookings of one item never overlap (the exclusion constraint
stays on during the load): each item's bookings are laid out one after another in time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")

LOCATIONS = [  # code, name, city, country, timezone, currency, tax bp, fee bp
    ("LON", "Midas London", "London", "GB", "Europe/London", "GBP", 2000, 500),
    ("PAR", "Midas Paris", "Paris", "FR", "Europe/Paris", "EUR", 2000, 500),
    ("NYC", "Midas New York", "New York", "US", "America/New_York", "USD", 887, 500),
    ("TYO", "Midas Tokyo", "Tokyo", "JP", "Asia/Tokyo", "JPY", 1000, 500),
    ("DXB", "Midas Dubai", "Dubai", "AE", "Asia/Dubai", "AED", 500, 500),
    ("MIA", "Midas Miami", "Miami", "US", "America/New_York", "USD", 700, 500),
]
CATEGORIES = ["car", "yacht", "jet", "property"]
MAKES = {"car": ["Ferrari SF90", "Lamborghini Revuelto", "McLaren 750S", "Porsche 911 GT3", "Bentley Continental"],
         "yacht": ["Azimut Grande", "Sunseeker 95", "Benetti Oasis", "Riva 88"],
         "jet": ["Gulfstream G650", "Bombardier Global 7500", "Dassault Falcon 8X", "Cessna Citation"],
         "property": ["Villa Aurora", "Chalet Blanc", "Palazzo Verde", "Casa del Mar"]}
FIRST = ["Ava", "Liam", "Noah", "Emma", "Olivia", "Lucas", "Mia", "Hugo", "Yuki", "Omar", "Sofia", "Leo"]
LAST = ["Smith", "Martin", "Tanaka", "Rossi", "Dubois", "Khan", "Garcia", "Muller", "Chen", "Silva"]
STAFF = 6  # staff users created here (unusable passwords); bench/run.py adds the login user


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    create_database(args.db)
    migrate(args.db)
    url = f"{SERVER}/{args.db}"
    with psycopg.connect(url, autocommit=False) as conn:
        Loader(conn, args).run()
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 (fixed names)
                  for t in ("locations", "items", "customers", "bookings", "payments", "refunds",
                            "webhook_events", "error_events", "notifications")}
    print(json.dumps({"database": args.db, "seconds": round(time.monotonic() - started, 1), "rows": counts}))
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="midas_bench", help="database name (must contain 'bench'; dropped first)")
    p.add_argument("--locations", type=int, default=4)
    p.add_argument("--items", type=int, default=2_000)
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--bookings", type=int, default=200_000)
    p.add_argument("--payments", type=int, default=250_000)
    p.add_argument("--refunds", type=int, default=20_000)
    p.add_argument("--webhook-events", type=int, default=100_000)
    p.add_argument("--error-events", type=int, default=50_000)
    p.add_argument("--error-groups", type=int, default=400)
    p.add_argument("--notifications", type=int, default=100_000)
    p.add_argument("--availability-only", action="store_true",
                   help="locations, items, a few customers and --bookings bookings only (the 1M availability set)")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    if "bench" not in args.db or not args.db.replace("_", "").isalnum():
        p.error("--db must be a plain name containing 'bench' (it is dropped and re-created)")
    args.locations = max(1, min(args.locations, len(LOCATIONS)))
    args.items = max(1, args.items)
    args.customers = max(1, args.customers)
    if args.availability_only:
        args.customers = min(args.customers, 1_000)
        args.payments = args.refunds = args.webhook_events = args.error_events = args.notifications = 0
    if args.bookings == 0:
        args.payments = args.refunds = 0
    if args.payments == 0:
        args.refunds = 0
    return args


def create_database(name: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def migrate(name: str) -> None:
    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{name}", "MIDAS_ENV": "bench",
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret")}
    env.pop("REDIS_URL", None)
    flask = ROOT / ".venv" / "bin" / "flask"
    subprocess.run([str(flask), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


class Loader:
    def __init__(self, conn: psycopg.Connection, args: argparse.Namespace) -> None:
        self.conn, self.a = conn, args
        self.rnd = random.Random(args.seed)
        self.now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.booking_meta: list[tuple[int, str, int, int]] = []  # (id, currency, total, customer_id)

    def copy(self, table: str, columns: list[str], rows) -> int:
        started, n = time.monotonic(), 0
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
                n += 1
        print(f"  {table:<15} {n:>9,} rows in {time.monotonic() - started:6.1f} s", file=sys.stderr)
        return n

    def run(self) -> None:
        a = self.a
        self.copy("locations", ["id", "code", "name", "city", "country", "timezone", "currency", "tax_rate_bp",
                                "service_fee_bp", "created_at"],
                  ((i + 1, *LOCATIONS[i], self.now) for i in range(a.locations)))
        self.copy("staff_users", ["id", "email", "name", "role", "password_hash", "active", "failed_logins",
                                  "session_version", "created_at"],
                  ((i + 1, f"staff{i + 1}@example.com", f"Staff {i + 1}", ("concierge", "admin")[i % 2],
                    "!unusable", True, 0, 1, self.now) for i in range(STAFF)))
        self.items()
        self.customers()
        self.bookings()
        self.payments()
        self.refunds()
        self.webhook_events()
        self.errors()
        self.notifications()
        with self.conn.cursor() as cur:
            for table in ("locations", "staff_users", "items", "customers", "bookings", "booking_lines",
                          "payments", "refunds", "webhook_events", "error_groups", "error_events", "notifications"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")

    def items(self) -> None:
        a, r = self.a, self.rnd
        self.item_loc: list[int] = []

        def rows():
            for i in range(1, a.items + 1):
                loc = (i - 1) % a.locations
                cat = CATEGORIES[(i - 1) // a.locations % len(CATEGORIES)]
                self.item_loc.append(loc)
                rate = {"car": 150_000, "yacht": 2_500_000, "jet": 1_800_000, "property": 600_000}[cat]
                rate = rate // 100 if LOCATIONS[loc][5] == "JPY" else rate
                yield (i, loc + 1, cat, f"{r.choice(MAKES[cat])} #{i}", f"Bench item {i}", "active",
                       LOCATIONS[loc][5], rate + r.randrange(0, rate // 2 + 1), rate * 2, 500, 2, 2, 1,
                       json.dumps({"seats": r.randrange(2, 16)}), self.now, self.now)
        self.copy("items", ["id", "location_id", "category", "name", "description", "status", "currency",
                            "daily_rate", "security_deposit", "insurance_rate_bp", "buffer_before_hours",
                            "buffer_after_hours", "min_days", "specs", "created_at", "updated_at"], rows())

    def customers(self) -> None:
        a, r = self.a, self.rnd

        def rows():
            for i in range(1, a.customers + 1):
                first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
                created = self.now - timedelta(days=r.randrange(1, 1500))
                yield (i, f"{first} {last} {i}", f"{first.lower()}.{last.lower()}.{i}@example.com",
                       f"+4477{i:08d}", ("standard", "standard", "premium", "vvip")[i % 4], "",
                       r.randrange(0, 5000), True, i % 3 == 0, False, (i % a.locations) + 1, created, created)
        self.copy("customers", ["id", "name", "email", "phone", "tier", "notes", "loyalty_points", "email_opt_in",
                                "sms_opt_in", "marketing_consent", "preferred_location_id", "created_at",
                                "updated_at"], rows())

    def bookings(self) -> None:
        """Each item's bookings follow one another: slot k of an item covers [base + k*step, ...)."""
        a, r = self.a, self.rnd
        per_item = -(-a.bookings // a.items) if a.bookings else 0
        step = timedelta(days=3)  # 2-day rental + 2 h buffers each side, so blocks never touch
        past_slots = per_item * 2 // 3  # two thirds in the past, one third ahead
        base = self.now - step * past_slots

        def rows():
            bid = 0
            for k in range(per_item):
                for item in range(1, a.items + 1):
                    if bid >= a.bookings:
                        return
                    bid += 1
                    loc = self.item_loc[item - 1]
                    starts = base + step * k + timedelta(hours=10)
                    ends = starts + timedelta(days=2)
                    if ends < self.now - timedelta(days=1):
                        status = ("completed",) * 8 + ("cancelled", "no_show")
                    elif starts <= self.now < ends:
                        status = ("in_progress",)
                    else:
                        status = ("confirmed",) * 6 + ("pending_payment", "quote", "cancelled")
                    status = status[bid % len(status)]
                    total = 100_000 + (bid * 7919) % 2_000_000
                    cust = (bid * 7) % a.customers + 1
                    created = starts - timedelta(days=10 + bid % 30)
                    self.booking_meta.append((bid, LOCATIONS[loc][5], total, cust))
                    yield (bid, f"MID-{bid:08X}", hashlib.sha256(f"bench-{bid}".encode()).hexdigest(), cust, item,
                           (bid % STAFF) + 1, status, starts, ends, starts - timedelta(hours=2),
                           ends + timedelta(hours=2), LOCATIONS[loc][5], total, total // 5,
                           # a live system releases a hold once it expires: the seeded ones are all still running
                           self.now + timedelta(hours=1 + bid % 47) if status == "pending_payment" else None, "", "",
                           "Customer changed plans" if status == "cancelled" else None,
                           starts if status in ("in_progress", "completed") else None,
                           ends if status == "completed" else None, created, created)
        self.copy("bookings", ["id", "reference", "checkout_token", "customer_id", "item_id", "concierge_id", "status",
                               "starts_at", "ends_at", "block_starts_at", "block_ends_at", "currency",
                               "total_amount", "deposit_amount", "hold_expires_at", "notes", "special_requests",
                               "cancel_reason", "handed_over_at", "returned_at", "created_at", "updated_at"], rows())
        del r
        self.copy("booking_lines", ["id", "booking_id", "position", "kind", "description", "amount", "refundable"],
                  ((bid, bid, 1, "rental", "Rental", total, True) for bid, _, total, _ in self.booking_meta))

    def payments(self) -> None:
        a, meta = self.a, self.booking_meta
        statuses = ("succeeded",) * 7 + ("pending", "failed", "authorized")
        self.succeeded: list[tuple[int, int, str, int]] = []  # payment id, booking id, currency, amount

        def rows():
            for pid in range(1, a.payments + 1):
                bid, cur, total, _ = meta[(pid - 1) % len(meta)]
                kind = "charge" if pid <= len(meta) else "deposit"
                status = statuses[pid % len(statuses)]
                provider = ("stripe", "stripe", "stripe", "paypal", "bank_transfer")[pid % 5]
                amount = max(1, total if kind == "charge" else total // 5)
                created = self.now - timedelta(minutes=pid)
                if status == "succeeded":
                    self.succeeded.append((pid, bid, cur, amount))
                yield (pid, bid, provider, kind, status, amount, cur,
                       amount if status == "succeeded" else 0, 0, f"{provider[:2]}_bench_{pid}", f"bench-pay-{pid}",
                       "card" if provider == "stripe" else provider, "card_declined" if status == "failed" else None,
                       created if status == "succeeded" else None, created, created)
        self.copy("payments", ["id", "booking_id", "provider", "kind", "status", "amount", "currency",
                               "amount_captured", "amount_refunded", "provider_ref", "idempotency_key", "method",
                               "failure_code", "succeeded_at", "created_at", "updated_at"], rows())

    def refunds(self) -> None:
        a, paid = self.a, self.succeeded
        statuses = ("succeeded",) * 5 + ("pending_approval", "approved", "rejected", "failed")

        def rows():
            for rid in range(1, min(a.refunds, len(paid)) + 1):
                pid, bid, cur, amount = paid[(rid * 13) % len(paid)] if len(paid) > a.refunds else paid[rid - 1]
                status = statuses[rid % len(statuses)]
                created = self.now - timedelta(hours=rid)
                yield (rid, pid, bid, max(1, amount // 4), cur, status, "Bench refund", "none",
                       f"re_bench_{rid}" if status == "succeeded" else None, f"bench-refund-{rid}",
                       (rid % STAFF) + 1, created if status == "succeeded" else None, created, created)
        # distinct payments for refunds: the stride 13 walk may repeat; amounts stay within each payment anyway
        self.copy("refunds", ["id", "payment_id", "booking_id", "amount", "currency", "status", "reason", "override",
                              "provider_ref", "idempotency_key", "requested_by_id", "succeeded_at", "created_at",
                              "updated_at"], rows())

    def webhook_events(self) -> None:
        a, meta = self.a, self.booking_meta
        types = ("payment_intent.succeeded", "charge.refunded", "payment_intent.payment_failed", "charge.succeeded")

        def rows():
            for wid in range(1, a.webhook_events + 1):
                provider = "stripe" if wid % 5 else "paypal"
                kind = types[wid % len(types)] if provider == "stripe" else "web_accept"
                at = self.now - timedelta(minutes=wid)
                bid = meta[wid % len(meta)][0] if meta and wid % 2 else None
                payload = json.dumps({"id": f"evt_bench_{wid}", "type": kind, "data": {"object": {"id": f"pi_{wid}"}}})
                status = (("processed",) * 8 + ("ignored", "failed"))[wid % 10]
                yield (wid, provider, f"evt_bench_{wid}", kind, payload, status, 1, at, bid, at, at)
        self.copy("webhook_events", ["id", "provider", "event_id", "type", "payload", "status", "attempts",
                                     "occurred_at", "booking_id", "received_at", "processed_at"], rows())

    def errors(self) -> None:
        a = self.a
        if not a.error_events:
            return
        groups = max(1, min(a.error_groups, a.error_events))
        cats = ("PAYMENT", "BOOKING", "AUTHENTICATION", "WEBHOOK", "NOTIFICATION", "SYSTEM")
        sev = ("LOW", "MEDIUM", "HIGH")
        counts = [a.error_events // groups + (1 if g < a.error_events % groups else 0) for g in range(groups)]
        self.copy("error_groups", ["id", "fingerprint", "category", "severity", "error_type", "message", "status",
                                   "regression", "occurrences", "first_seen_at", "last_seen_at"],
                  ((g + 1, hashlib.sha256(f"grp{g}".encode()).hexdigest(), cats[g % 6], sev[g % 3],
                    f"BenchError{g}", f"Something failed in place {g}", ("open", "open", "resolved", "ignored")[g % 4],
                    False, counts[g], self.now - timedelta(days=30), self.now - timedelta(minutes=g))
                   for g in range(groups)))

        def rows():
            for eid in range(1, a.error_events + 1):
                g = (eid - 1) % groups
                yield (eid, g + 1, sev[g % 3], f"Something failed in place {g}", "Traceback (bench)",
                       json.dumps({"path": "/bench", "n": eid}), f"req-{eid}", self.now - timedelta(seconds=eid * 30))
        self.copy("error_events", ["id", "group_id", "severity", "message", "stack_trace", "context", "request_id",
                                   "occurred_at"], rows())

    def notifications(self) -> None:
        a, meta = self.a, self.booking_meta

        def rows():
            for nid in range(1, a.notifications + 1):
                bid, _, _, cust = meta[nid % len(meta)] if meta else (None, None, None, 1)
                channel = "email" if nid % 4 else "sms"
                at = self.now - timedelta(minutes=nid)
                # no "pending": a live outbox sends within seconds, and the worker's sweep would resend them all
                status = (("sent",) * 8 + ("cancelled", "failed"))[nid % 10]
                yield (nid, f"bench-{nid}", channel, "booking_confirmed", f"customer{cust}@example.com"
                       if channel == "email" else f"+4477{cust:08d}", "Your booking is confirmed"
                       if channel == "email" else None, json.dumps({"booking_id": bid}), status,
                       1, "smtp" if status == "sent" else None, bid, cust, at, at if status == "sent" else None)
        self.copy("notifications", ["id", "dedupe_key", "channel", "template", "recipient", "subject", "context",
                                    "status", "attempts", "provider", "booking_id", "customer_id", "created_at",
                                    "sent_at"], rows())


if __name__ == "__main__":
    sys.exit(main())
