"""The payments dashboard: counters per currency, filters parsed exactly, keyset pages, a payment's timeline."""

from __future__ import annotations

import itertools
from datetime import timedelta

from werkzeug.datastructures import MultiDict

from midas.extensions import db
from midas.models import Dispute, Payment, Refund, WebhookEvent, utcnow
from midas.services import audit, payment_kpis, payments
from tests import factories

_days = itertools.count(1)


def booking(name: str = "Grace Hopper", email: str | None = None, currency: str = "EUR"):
    code = {"EUR": "MCM", "GBP": "LON", "JPY": "TYO"}[currency]
    location = factories.location(code, currency=currency, timezone="UTC")
    item = factories.item(location, name=f"Item {code}")
    who = factories.customer(name=name, **({"email": email} if email else {}))
    return factories.booking(item, starts_at=utcnow() + timedelta(days=10 * next(_days)), who=who)


def payment(status: str = "succeeded", amount: int = 100000, currency: str = "EUR", ref: str | None = None,
            on=None, refunded: int = 0, provider: str = "stripe") -> Payment:
    row = Payment(booking=on or booking(currency=currency), provider=provider, kind="charge", status=status,
                  amount=amount, currency=currency, amount_refunded=refunded, provider_ref=ref,
                  succeeded_at=utcnow() if status == "succeeded" else None,
                  idempotency_key=f"k:{next(_days)}:{amount}")
    db.session.add(row)
    db.session.commit()
    return row


def test_revenue_is_charges_minus_refunds_per_currency_never_summed_across(app):
    eur = payment(amount=100000, refunded=20000)
    payment(amount=50000, currency="GBP")
    db.session.add(Refund(payment=eur, booking=eur.booking, amount=20000, currency="EUR", status="succeeded",
                          reason="Goodwill", idempotency_key="r1", succeeded_at=utcnow()))
    db.session.commit()

    kpis = payment_kpis.payment_kpis(utcnow())

    assert kpis.revenue["today"] == {"EUR": 80000, "GBP": 50000}
    assert kpis.revenue["month"] == {"EUR": 80000, "GBP": 50000}
    assert kpis.average_payment == {"EUR": 100000, "GBP": 50000}
    assert kpis.refund_rate == 0.5


def test_success_rate_failures_of_the_day_and_open_disputes(app):
    ok = payment()
    payment(status="succeeded")
    payment(status="failed")
    db.session.add(Dispute(provider="stripe", provider_ref="dp_1", payment=ok, booking=ok.booking,
                           status="needs_response", amount=1000, currency="EUR", reason="fraudulent"))
    db.session.commit()

    kpis = payment_kpis.payment_kpis(utcnow())

    assert round(kpis.success_rate, 3) == 0.667 and kpis.failed_24h == 1 and kpis.open_disputes == 1


def test_no_payments_shows_no_rates_rather_than_zero(app):
    kpis = payment_kpis.payment_kpis(utcnow())
    assert kpis.success_rate is None and kpis.refund_rate is None and kpis.revenue["today"] == {}


def test_amount_range_is_parsed_exactly_in_the_chosen_currency(app):
    payment(amount=99999)
    inside = payment(amount=125050)
    payment(amount=125000, currency="GBP")

    filters = payments.parse_filters(MultiDict({"currency": "eur", "amount_min": "1,250.50", "amount_max": "1250.50"}))

    assert (filters.amount_min, filters.amount_max, filters.errors) == (125050, 125050, {})
    assert [p.id for p in payments.list_payments(filters).items] == [inside.id]


def test_an_amount_without_a_currency_is_explained_and_ignored(app):
    payment()
    filters = payments.parse_filters(MultiDict({"amount_min": "10"}))
    assert filters.amount_min is None and "Choose a currency" in filters.errors["amount_min"]
    assert len(payments.list_payments(filters).items) == 1


def test_zero_decimal_currencies_take_no_decimals(app):
    filters = payments.parse_filters(MultiDict({"currency": "JPY", "amount_min": "120,000", "amount_max": "1.5"}))
    assert filters.amount_min == 120000 and filters.amount_max is None and "JPY" in filters.errors["amount_max"]


def test_search_finds_by_customer_name_email_reference_and_provider_id(app):
    ada = payment(on=booking(name="Ada Lovelace", email="ada@engine.test"), ref="pi_AdaIntent")
    payment(ref="pi_other")
    for q in ("lovelace", "ada@engine", ada.booking.reference.lower(), "pi_AdaIntent"):
        found = payments.list_payments(payments.parse_filters(MultiDict({"q": q}))).items
        assert [p.id for p in found] == [ada.id], q


def test_status_provider_and_period_filters(app):
    old = payment(status="failed", provider="paypal")
    old.created_at = utcnow() - timedelta(days=40)
    payment(status="failed")
    db.session.commit()
    since = (utcnow() - timedelta(days=41)).date().isoformat()
    until = (utcnow() - timedelta(days=39)).date().isoformat()
    args = MultiDict({"status": "failed", "provider": "paypal", "from": since, "to": until})
    assert [p.id for p in payments.list_payments(payments.parse_filters(args)).items] == [old.id]


def test_keyset_pages_walk_through_every_payment_once(app):
    on = booking()
    made = {payment(amount=1000 + n, on=on).id for n in range(30)}
    first = payments.list_payments(payments.parse_filters(MultiDict()))
    second = payments.list_payments(payments.parse_filters(MultiDict({"after": first.next_cursor})))
    assert len(first.items) == 25 and first.total == 30 and not second.has_next
    assert {p.id for p in first.items + second.items} == made


def test_the_timeline_shows_audit_entries_and_events_naming_the_payment(app):
    paid = payment(ref="pi_Timeline1")
    audit.record("payment.succeeded", "payment", paid.id, actor_label="stripe")
    db.session.add_all([
        WebhookEvent(provider="stripe", event_id="evt_1", type="payment_intent.succeeded", status="processed",
                     payload={"data": {"object": {"id": "pi_Timeline1"}}}),
        WebhookEvent(provider="stripe", event_id="evt_2", type="payment_intent.succeeded", status="processed",
                     payload={"data": {"object": {"id": "pi_someone_else"}}}),
        WebhookEvent(provider="paypal", event_id="ipn_1", type="ipn.completed", status="processed",
                     payload={"custom": paid.booking.reference}),
    ])
    db.session.commit()

    timeline = payments.payment_timeline(paid)

    assert [(e.source, e.title) for e in timeline] == [("audit", "payment.succeeded"),
                                                       ("webhook", "stripe payment_intent.succeeded"),
                                                       ("webhook", "paypal ipn.completed")]
