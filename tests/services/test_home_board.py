"""The home board on a hand-computed day: each location's today in its own zone, queues, and 30-day trends."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event

from midas.extensions import db
from midas.models import Booking, Dispute, Payment, Refund
from midas.services.dashboard import TREND_DAYS, home_board, kpi_trends
from midas.services.payment_kpis import PAID
from tests import factories

NOW = datetime(2026, 3, 10, 22, 30, tzinfo=UTC)  # 22:30 on the 10th in London, 07:30 on the 11th in Tokyo


def booking(location, starts_at: datetime, status: str, hours: int = 4, hold: timedelta | None = None,
            created: datetime | None = None) -> Booking:
    item = factories.item(location, name=f"Car {secrets.token_hex(3)}")  # one item each: no overlap to refuse
    made = factories.booking(item, starts_at, days=1, status=status)
    ends_at = starts_at + timedelta(hours=hours)
    made.ends_at, made.block_ends_at = ends_at, ends_at + timedelta(hours=item.buffer_after_hours)
    made.hold_expires_at = NOW + hold if hold else None
    made.created_at = created or NOW - timedelta(days=1)
    db.session.commit()
    return made


def pay(on: Booking, amount: int, at: datetime, status: str = "succeeded", kind: str = "charge",
        refunded: int = 0) -> Payment:
    payment = Payment(booking=on, provider="stripe", kind=kind, status=status, amount=amount, currency=on.currency,
                      amount_captured=amount if status in PAID else 0, amount_refunded=refunded,
                      idempotency_key=secrets.token_hex(8),
                      succeeded_at=at if status in PAID else None, created_at=at)
    db.session.add(payment)
    db.session.commit()
    return payment


@pytest.fixture
def places(app):
    london = factories.location()
    tokyo = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                               currency="JPY")
    return london, tokyo


def tiles_of(board, code: str) -> dict[str, int]:
    place = next(place for place in board.locations if place.location.code == code)
    return {tile.key: tile.value for tile in place.tiles}


def test_each_location_counts_its_own_local_today(places):
    london, tokyo = places
    booking(london, NOW + timedelta(minutes=30), "confirmed")  # 23:00 tonight in London: a pickup
    booking(london, NOW + timedelta(hours=3), "confirmed")  # 01:30 tomorrow in London, 10:30 today in Tokyo's day
    booking(london, NOW - timedelta(hours=3), "in_progress", hours=4)  # back at 23:30 London time: a return
    booking(london, NOW - timedelta(days=2), "in_progress", hours=24 * 3)  # due back the 11th: not today
    booking(london, NOW + timedelta(days=3), "pending_payment", hold=timedelta(minutes=20))  # hold lapses soon
    booking(london, NOW + timedelta(days=4), "pending_payment", hold=timedelta(hours=5))
    booking(tokyo, NOW + timedelta(hours=3), "confirmed")  # 10:30 on the 11th in Tokyo: today there
    booking(tokyo, NOW - timedelta(hours=1), "confirmed")  # 06:30 on the 11th in Tokyo: still a pickup today
    booking(tokyo, NOW - timedelta(hours=10), "confirmed")  # 21:30 on the 10th in Tokyo: yesterday there
    booking(tokyo, NOW + timedelta(days=2), "quote")  # a quote waits on nobody

    board = home_board(NOW)

    assert [(place.location.code, place.day) for place in board.locations] == [
        ("LON", date(2026, 3, 10)), ("TYO", date(2026, 3, 11))]
    assert tiles_of(board, "LON") == {"pickups": 1, "returns": 1, "awaiting-payment": 2, "holds-expiring": 1}
    assert tiles_of(board, "TYO") == {"pickups": 2, "returns": 0, "awaiting-payment": 0, "holds-expiring": 0}
    london_tiles = {tile.key: tile for tile in board.locations[0].tiles}
    assert london_tiles["awaiting-payment"].args == {"status": "pending_payment", "location": london.id,
                                                     "sort": "starts_at"}
    assert london_tiles["holds-expiring"].alert and not london_tiles["awaiting-payment"].alert


def test_queues_count_refunds_awaiting_approval_and_open_disputes(places):
    london, _ = places
    held = booking(london, NOW + timedelta(days=5), "confirmed")
    charge = pay(held, 90000, NOW - timedelta(days=1))
    for status, key in (("pending_approval", "r1"), ("pending_approval", "r2"), ("succeeded", "r3")):
        db.session.add(Refund(payment=charge, booking=held, amount=1000, currency="GBP", status=status,
                              reason="Goodwill", idempotency_key=key, created_at=NOW - timedelta(hours=2)))
    for status, ref in (("needs_response", "D1"), ("won", "D2")):
        db.session.add(Dispute(booking=held, provider="stripe", provider_ref=ref, amount=90000, currency="GBP",
                               reason="fraudulent", status=status))
    db.session.commit()

    queues = {tile.key: (tile.value, tile.alert) for tile in home_board(NOW).queues}

    assert queues["refund-approvals"] == (2, True) and queues["open-disputes"] == (1, True)
    assert queues["high-errors"] == (0, False)


def test_trends_are_per_utc_day_per_currency_and_net_of_refunds(places):
    london, tokyo = places
    today, yesterday = NOW.replace(hour=9), NOW.replace(hour=9) - timedelta(days=1)
    gbp = booking(london, NOW + timedelta(days=5), "confirmed", created=yesterday)
    charge = pay(gbp, 10000, today, status="partially_refunded", refunded=2000)  # refunded in part: still paid
    pay(gbp, 5000, yesterday)
    pay(gbp, 50000, today, kind="deposit", status="authorized")  # an open deposit hold is not revenue
    late_fee = pay(gbp, 40000, today, kind="deposit")  # a hold of which only the late fee was captured
    late_fee.amount_captured = 3000
    pay(gbp, 7000, today, status="failed")
    pay(gbp, 99999, NOW - timedelta(days=TREND_DAYS + 1))  # before the window
    db.session.add(Refund(payment=charge, booking=gbp, amount=2000, currency="GBP", status="succeeded",
                          reason="Goodwill", idempotency_key="r1", succeeded_at=today + timedelta(hours=1)))
    yen = booking(tokyo, NOW + timedelta(days=6), "confirmed", created=datetime(2026, 3, 1, 3, tzinfo=UTC))
    pay(yen, 36000, datetime(2026, 3, 1, 23, tzinfo=UTC))  # 08:00 on the 2nd in Tokyo, but the 1st as a UTC day
    db.session.commit()

    trends = {trend.key: trend for trend in kpi_trends(NOW)}

    days = trends["bookings"].days
    assert len(days) == TREND_DAYS and days[0] == date(2026, 2, 9) and days[-1] == date(2026, 3, 10)
    gbp_trend, yen_trend = trends["revenue-gbp"], trends["revenue-jpy"]
    assert (gbp_trend.values[-2:], gbp_trend.total) == ([5000, 11000], 16000)  # 10,000 - 2,000 refund + 3,000 fee
    assert yen_trend.values[days.index(date(2026, 3, 1))] == 36000 and yen_trend.total == 36000
    assert sum(yen_trend.values) == 36000  # never added to the pounds
    assert trends["bookings"].values[-2] == 1 and trends["bookings"].values[days.index(date(2026, 3, 1))] == 1
    rate = trends["success-rate"]
    assert rate.values[-1] == 6667 and rate.values[-2] == 10000  # today 2 of 3 decided (the deposit counts)
    assert rate.values[0] is None and rate.total == 8000  # a day without payments has no rate; 4 of 5 overall
    assert gbp_trend.display(gbp_trend.total) == "£160.00" and rate.display(rate.total) == "80.00%"


def test_a_trend_line_breaks_where_a_day_has_no_value(places):
    rate = next(trend for trend in kpi_trends(NOW) if trend.key == "success-rate")
    rate.values = [None] * (TREND_DAYS - 4) + [5000, 10000, None, 0]
    assert rate.segments(290, 48) == [[(260.0, 24.0), (270.0, 0.0)], [(290.0, 48.0)]]


def _statements(during) -> int:
    seen = []

    def count(*_args):
        seen.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        during()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def test_the_board_costs_the_same_statements_for_one_location_or_several(places):
    london, tokyo = places
    booking(london, NOW + timedelta(minutes=30), "confirmed")
    db.session.expire_all()
    two = _statements(lambda: home_board(NOW))
    paris = factories.location("PAR", name="Paris Vendôme", city="Paris", country="FR", timezone="Europe/Paris",
                               currency="EUR")
    for place in (tokyo, paris):
        booking(place, NOW + timedelta(hours=3), "pending_payment", hold=timedelta(hours=2))
    db.session.expire_all()
    assert _statements(lambda: home_board(NOW)) == two
    assert [tiles_of(home_board(NOW), code)["awaiting-payment"] for code in ("LON", "PAR", "TYO")] == [0, 1, 1]
