"""Reports: each report's numbers on a small hand-computed business, in GBP and JPY, never added together."""

from __future__ import annotations

import csv
import io
import secrets
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from midas.extensions import db
from midas.models import AuditEntry, Blackout, Booking, Customer, Dispute, Item, Payment, PaymentStatus
from midas.services import reports
from midas.services.reports import ReportFilters, customers, funnel, payments, revenue, utilization
from midas.services.reports.base import REPORT_WORK_MEM, STREAM_BATCH, Column, Table, csv_lines
from tests import factories

MARCH = ReportFilters(date(2026, 3, 1), date(2026, 3, 31))
SPRING = ReportFilters(date(2026, 3, 1), date(2026, 4, 30))


def at(day: int, month: int = 3, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def pay(booking: Booking, amount: int, when: datetime, status: str = "succeeded", provider: str = "stripe",
        method: str = "visa", kind: str = "charge", refunded: int = 0, failure_code: str | None = None) -> Payment:
    payment = Payment(booking=booking, provider=provider, kind=kind, status=status, amount=amount,
                      currency=booking.currency, amount_captured=amount if status in PaymentStatus.paid() else 0,
                      amount_refunded=refunded, idempotency_key=secrets.token_hex(8), method=method,
                      failure_code=failure_code, succeeded_at=when if status in PaymentStatus.paid() else None,
                      created_at=when)
    db.session.add(payment)
    db.session.commit()
    return payment


def book(item, who: Customer, start: datetime, days: int, status: str, created: datetime | None = None) -> Booking:
    booking = factories.booking(item, start, days=days, status=status, who=who)
    booking.created_at = created or start - timedelta(days=1)
    db.session.commit()
    return booking


def audit(booking: Booking, status: str) -> None:
    db.session.add(AuditEntry(actor_label="system", action=f"booking.{status}", entity_type="booking",
                              entity_id=str(booking.id)))
    db.session.commit()


@dataclass
class Business:
    london: object
    tokyo: object
    ferrari: object
    riva: object
    gtr: object
    ada: Customer
    grace: Customer


def build_business(grace_name: str = "Grace Hopper") -> Business:
    """Two cities, two currencies, a partial refund, failures, a dispute, a blackout and every funnel outcome."""
    london = factories.location()
    tokyo = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                               currency="JPY")
    ferrari, riva = factories.item(london), factories.item(london, category="yacht", name="Riva Aquariva")
    gtr = factories.item(tokyo, name="Nissan GT-R", daily_rate=120000)
    ada = factories.customer(name="Ada Lovelace", tier="vvip", loyalty_points=500)
    grace = factories.customer(name=grace_name, loyalty_points=120)
    book(ferrari, ada, datetime(2025, 6, 1, tzinfo=UTC), 1, "completed")  # Ada booked before: a repeat customer
    b1 = book(ferrari, ada, at(2), 3, "completed")
    pay(b1, 540000, at(5), status="partially_refunded", refunded=40000)
    pay(b1, 500000, at(2), kind="deposit", status="authorized")  # an open deposit hold is not revenue
    b2 = book(riva, grace, at(29, hour=0), 5, "confirmed")
    pay(b2, 300000, at(10, 4), provider="paypal", method="paypal")
    db.session.add(Dispute(booking=b2, provider="paypal", provider_ref="PP-D-1", amount=300000, currency="GBP",
                           reason="fraudulent", status="needs_response", created_at=at(15, 4)))
    b3 = book(gtr, ada, at(25), 4, "completed")
    pay(b3, 360000, at(31, hour=16))  # 01:00 on 1 April in Tokyo: an April yen
    b4 = book(ferrari, grace, at(10), 2, "cancelled")
    audit(b4, "pending_payment")
    pay(b4, 540000, at(9), status="failed", failure_code="card_declined")
    pay(b4, 540000, at(9, hour=10), status="failed", failure_code="insufficient_funds")
    book(ferrari, grace, at(14), 1, "no_show")
    book(ferrari, grace, at(24), 1, "quote")
    audit(book(riva, grace, at(20), 1, "cancelled"), "confirmed")
    db.session.add(Blackout(item=ferrari, starts_at=at(20, hour=0), ends_at=at(21, hour=0), reason="Service"))
    db.session.commit()
    return Business(london, tokyo, ferrari, riva, gtr, ada, grace)


@pytest.fixture
def business(app) -> Business:
    return build_business()


def test_revenue_by_month_is_net_of_refunds_per_currency_in_the_local_month(business):
    assert revenue.by_month(SPRING) == [
        {"currency": "GBP", "month": "2026-03", "gross": 540000, "refunded": 40000, "net": 500000, "payments": 1},
        {"currency": "GBP", "month": "2026-04", "gross": 300000, "refunded": 0, "net": 300000, "payments": 1},
        {"currency": "JPY", "month": "2026-04", "gross": 360000, "refunded": 0, "net": 360000, "payments": 1},
    ]


def test_a_late_fee_captured_from_the_deposit_hold_is_revenue_the_released_rest_is_not(business):
    late = book(business.ferrari, business.ada, at(26), 1, "completed")
    hold = pay(late, 250000, at(27), kind="deposit")
    hold.amount_captured = 30000  # the late fee; Stripe released the other 220,000
    pay(late, 250000, at(27), kind="deposit", status="canceled")  # a hold released in full
    db.session.commit()

    march = revenue.by_month(SPRING)[0]
    assert (march["month"], march["gross"], march["net"], march["payments"]) == ("2026-03", 570000, 530000, 2)


def test_revenue_by_category_and_location_never_adds_yen_to_pounds(business):
    by_category = [(r["currency"], r["category"], r["net"])
                   for r in revenue.by_group(SPRING, "category")]
    assert by_category == [("GBP", "car", 500000), ("GBP", "yacht", 300000), ("JPY", "car", 360000)]
    by_location = [(r["currency"], r["location"], r["net"])
                   for r in revenue.by_group(SPRING, "location")]
    assert by_location == [("GBP", "London Mayfair", 800000), ("JPY", "Tokyo Ginza", 360000)]


def test_revenue_filters_narrow_by_location_category_and_period(business):
    tokyo_only = ReportFilters(SPRING.period_from, SPRING.period_to, location_id=business.tokyo.id)
    assert [(r["currency"], r["net"]) for r in revenue.by_month(tokyo_only)] == [("JPY", 360000)]
    yachts = ReportFilters(SPRING.period_from, SPRING.period_to, category="yacht")
    assert [(r["month"], r["net"]) for r in revenue.by_month(yachts)] == [("2026-04", 300000)]
    assert [(r["currency"], r["month"]) for r in revenue.by_month(MARCH)] == [("GBP", "2026-03"), ("JPY", "2026-04")]


def test_utilization_is_booked_over_available_days_without_blackouts(business):
    rows = {row["item"]: row for row in utilization.per_item(MARCH)}
    ferrari = rows["Ferrari SF90 Stradale"]  # 3 completed days of 30 available (a one-day blackout)
    assert (round(ferrari["booked_days"], 3), round(ferrari["available_days"], 3)) == (3, 30)
    assert ferrari["utilization"] == 1000
    assert rows["Riva Aquariva"]["utilization"] == 968  # 3 of its 5 days fall in March: 3 ÷ 31
    assert rows["Nissan GT-R"]["utilization"] == 1290  # 4 ÷ 31
    by_category = {row["category"]: row["utilization"] for row in utilization.per_category(MARCH)}
    assert by_category == {"car": 1148, "yacht": 968}  # (3 + 4) ÷ (30 + 31), not an average of ratios


def test_utilization_filters_narrow_to_location_and_category(business):
    tokyo = ReportFilters(MARCH.period_from, MARCH.period_to, location_id=business.tokyo.id)
    assert [row["item"] for row in utilization.per_item(tokyo)] == ["Nissan GT-R"]
    yachts = ReportFilters(MARCH.period_from, MARCH.period_to, category="yacht")
    assert [row["item"] for row in utilization.per_item(yachts)] == ["Riva Aquariva"]


def test_funnel_counts_how_far_bookings_got_using_their_audit_history(business):
    assert funnel.counts(MARCH) == {"quotes": 7, "pending_payment": 6, "confirmed": 5, "completed": 2,
                                    "cancelled": 2, "no_show": 1}
    stages = {row["stage"]: (row["bookings"], row["of_quotes"], row["from_previous"]) for row in funnel.stages(MARCH)}
    assert stages == {"Quotes": (7, 10000, None), "Pending payment": (6, 8571, 8571),
                      "Confirmed": (5, 7143, 8333), "Completed": (2, 2857, 4000)}
    assert {row["outcome"]: row["rate"] for row in funnel.rates(MARCH)} == {"Cancelled": 2857, "No-show": 2000}


def test_funnel_filters_narrow(business):
    tokyo = ReportFilters(MARCH.period_from, MARCH.period_to, location_id=business.tokyo.id)
    assert funnel.counts(tokyo)["quotes"] == 1
    assert funnel.counts(ReportFilters(date(2026, 5, 1), date(2026, 5, 31)))["quotes"] == 0


def test_payments_success_rates_failures_refund_rate_and_disputes(business):
    success = {(r["provider"], r["method"]): (r["succeeded"], r["failed"], r["success_rate"])
               for r in payments.success(SPRING)}
    assert success == {("stripe", "visa"): (3, 2, 6000), ("paypal", "paypal"): (1, 0, 10000)}
    assert list(payments.failures(SPRING)) == [{"failure_code": "card_declined", "payments": 1},
                                               {"failure_code": "insufficient_funds", "payments": 1}]
    refunds = {r["currency"]: r for r in payments.refunds(SPRING)}
    assert (refunds["GBP"]["captured"], refunds["GBP"]["refunded"], refunds["GBP"]["refund_rate"]) == (840000, 40000,
                                                                                                     476)
    assert (refunds["JPY"]["captured"], refunds["JPY"]["refund_rate"], refunds["GBP"]["refunded_payments"]) == (
        360000, 0, 1)
    assert list(payments.disputes(SPRING)) == [{"currency": "GBP", "status": "needs_response", "disputes": 1,
                                                "amount": 300000}]
    tokyo = ReportFilters(SPRING.period_from, SPRING.period_to, location_id=business.tokyo.id)
    assert list(payments.disputes(tokyo)) == [] and list(payments.failures(tokyo)) == []


def test_customers_lifetime_value_per_currency_new_vs_repeat_and_tiers(business):
    ltv = [(r["customer"], r["currency"], r["value"]) for r in customers.lifetime_value(MARCH)]
    assert ltv == [("Ada Lovelace", "GBP", 500000), ("Grace Hopper", "GBP", 300000), ("Ada Lovelace", "JPY", 360000)]
    assert [r["customer"] for r in customers.lifetime_value(MARCH, top=1)] == ["Ada Lovelace", "Ada Lovelace"]
    assert customers.new_vs_repeat(MARCH) == [{"kind": "New", "customers": 1}, {"kind": "Repeat", "customers": 1}]
    tiers = {row["tier"]: (row["customers"], row["loyalty_points"]) for row in customers.tier_mix(MARCH)}
    assert tiers == {"standard": (1, 120), "premium": (0, 0), "vvip": (1, 500)}
    tokyo = ReportFilters(MARCH.period_from, MARCH.period_to, location_id=business.tokyo.id)
    assert {row["tier"]: row["customers"] for row in customers.tier_mix(tokyo)}["standard"] == 0


def test_every_report_table_exports_a_csv_with_its_header_and_exact_yen(business):
    for name in reports.REPORTS:
        for table in reports.report_tables(name, SPRING):
            lines = "".join(reports.export_csv(name, table.slug, SPRING)[1]).removeprefix("\ufeff")
            rows = list(csv.reader(io.StringIO(lines)))
            assert rows[0] == [column.label for column in table.columns]
            assert len(rows) - 1 == len(list(table.rows()))
    by_month = "".join(reports.export_csv("revenue", "", SPRING)[1])  # the first table by default
    assert "JPY,2026-04,360000,0,360000,1" in by_month and "GBP,2026-03,5400.00,400.00,5000.00,1" in by_month


def test_csv_neutralises_formula_leading_cells(app):
    build_business(grace_name="=cmd|' /C calc'!A0")
    lines = "".join(reports.export_csv("customers", "lifetime_value", MARCH)[1])
    assert "'=cmd|' /C calc'!A0" in lines and "\n=cmd" not in lines


def test_csv_neutralises_every_formula_lead_in_text_and_keeps_negative_amounts_numeric(app):
    columns = [Column("name", "Name"), Column("currency", "Currency"), Column("net", "Net", "money"),
               Column("count", "Count", "int")]
    names = ["=1+1", "+44 20", "-2", "@SUM(A1)", "\tTab", "\rReturn", "Plain, with comma", 'Say "hi"']
    table = Table("t", "T", columns, lambda: [{"name": name, "currency": "GBP", "net": -4000, "count": 3}
                                              for name in names])
    rows = list(csv.reader(io.StringIO("".join(csv_lines(table)).removeprefix("\ufeff"))))
    assert rows[0] == ["Name", "Currency", "Net", "Count"]
    assert [row[0] for row in rows[1:]] == ["'=1+1", "'+44 20", "'-2", "'@SUM(A1)", "'\tTab", "'\rReturn",
                                            "Plain, with comma", 'Say "hi"']
    assert {(row[2], row[3]) for row in rows[1:]} == {("-40.00", "3")}  # a negative amount is still a number


def test_long_tables_stream_in_batches_rather_than_loading_every_row(business, monkeypatch):
    batches, execute = [], db.session.execute

    def spy(statement, *args, **kwargs):
        batches.append(statement.get_execution_options().get("yield_per"))
        return execute(statement, *args, **kwargs)

    monkeypatch.setattr(db.session, "execute", spy)
    _, lines = reports.export_csv("customers", "lifetime_value", MARCH)
    assert next(lines).startswith("\ufeffCustomer") and batches == []  # nothing is queried before it is needed
    assert len(list(lines)) == 3 and batches == [STREAM_BATCH]


def test_revenue_is_one_aggregate_query_however_many_tables_read_it(business, monkeypatch):
    statements, execute = [], db.session.execute

    def spy(statement, *args, **kwargs):
        statements.append(statement)
        return execute(statement, *args, **kwargs)

    monkeypatch.setattr(db.session, "execute", spy)
    pages = [table.page_rows() for table in reports.report_tables("revenue", SPRING)]
    assert len(statements) == 1 and [len(rows) for rows in pages] == [3, 3, 2]
    assert statements[0].get_execution_options().get("yield_per") is None  # grouped in SQL: a handful of rows


def _customers_who_paid(item: Item, numbers: range) -> None:
    """One customer with one paid booking per number, inserted in bulk (the factories would take minutes)."""
    first = datetime(2020, 1, 1, tzinfo=UTC)
    customer_ids = db.session.execute(insert(Customer).returning(Customer.id), [
        {"name": f"Customer {n:06d}", "email": f"c{n}@example.com", "tier": "standard"} for n in numbers
    ]).scalars().all()
    booking_ids = db.session.execute(insert(Booking).returning(Booking.id), [
        {"reference": f"MID-{n:08d}", "checkout_token": f"token-{n}", "customer_id": customer_id,
         "item_id": item.id, "status": "completed", "starts_at": first + timedelta(days=n),
         "ends_at": first + timedelta(days=n, hours=8), "block_starts_at": first + timedelta(days=n),
         "block_ends_at": first + timedelta(days=n, hours=8), "currency": "GBP", "total_amount": 1000 + n,
         "deposit_amount": 0} for n, customer_id in zip(numbers, customer_ids, strict=True)]).scalars().all()
    db.session.execute(insert(Payment), [
        {"booking_id": booking_id, "provider": "stripe", "kind": "charge", "status": "succeeded",
         "amount": 1000 + n, "currency": "GBP", "amount_captured": 1000 + n, "amount_refunded": 0,
         "idempotency_key": f"key-{n}", "succeeded_at": first + timedelta(days=n)}
        for n, booking_id in zip(numbers, booking_ids, strict=True)])
    db.session.commit()


def _peak_streaming() -> tuple[int, int, int]:
    """(rows, bytes, peak traced memory) of the full lifetime-value CSV, consumed line by line."""
    _, lines = reports.export_csv("customers", "lifetime_value", MARCH)
    rows = size = 0
    tracemalloc.start()
    try:
        for line in lines:
            rows, size = rows + 1, size + len(line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return rows - 1, size, peak


def test_a_large_export_streams_in_flat_memory(app):
    item = factories.item(factories.location())
    _customers_who_paid(item, range(2 * STREAM_BATCH))
    rows, size, small_peak = _peak_streaming()
    assert rows == 2 * STREAM_BATCH
    db.session.rollback()
    _customers_who_paid(item, range(2 * STREAM_BATCH, 10 * STREAM_BATCH))  # five times the rows in all
    rows, big_size, big_peak = _peak_streaming()
    assert rows == 10 * STREAM_BATCH and big_size > 4 * size
    # Memory is bounded by a batch, not by the export: five times the rows may not take even twice the memory.
    assert big_peak < 2 * small_peak, (small_peak, big_peak)


def test_utilization_page_lists_the_least_utilized_items_and_the_csv_every_item(app):
    london = factories.location()
    cars = [factories.item(london, name=f"Car {n:02d}") for n in range(utilization.ITEMS_SHOWN + 2)]
    book(cars[0], factories.customer(), at(3), 2, "completed")  # the only car that earned anything
    table = next(t for t in reports.report_tables("utilization", MARCH) if t.slug == "by_item")
    shown = [row["item"] for row in table.page_rows()]
    assert len(shown) == utilization.ITEMS_SHOWN and "Car 00" not in shown
    lines = "".join(reports.export_csv("utilization", "by_item", MARCH)[1]).splitlines()
    assert len(lines) == 1 + len(cars) and lines[-1].startswith("Car 00,car,London Mayfair,2.0,31.0,6.45")


def test_reports_give_postgresql_room_to_group_in_memory_for_their_transaction_only(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("work_mem is a PostgreSQL setting")
    default = db.session.execute(text("SHOW work_mem")).scalar()
    reports.report_tables("revenue", MARCH)
    assert db.session.execute(text("SHOW work_mem")).scalar() == REPORT_WORK_MEM
    db.session.rollback()
    assert db.session.execute(text("SHOW work_mem")).scalar() == default
