"""No N+1 queries: every list page runs the same number of SQL statements with N rows shown as with 3N.

Each row shown hangs off its own location, item, customer, concierge, booking and payment, so a relation
loaded lazily per row adds statements as rows are added and the counts differ. Statements are counted
with SQLAlchemy's before_cursor_execute event, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event

from midas.extensions import db
from midas.models import (
    AuditEntry,
    Blackout,
    BookingLine,
    ErrorEvent,
    ErrorGroup,
    Notification,
    Payment,
    Refund,
    StaffUser,
    WebhookEvent,
    utcnow,
)
from midas.services.reports import REPORTS
from tests import factories

N = 3  # rows shown in the small case; 3N = 9 stays on one page everywhere

LIST_PAGES = ["/", "/bookings", "/customers", "/inventory", "/payments", "/refunds", "/errors", "/communications",
              "/webhooks/events", *(f"/reports/{name}" for name in REPORTS)]


@contextmanager
def counting() -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def statements_for(staff, url: str) -> list[str]:
    staff.get(url)  # warm: first-request work (settings, the signed-in user's row) is not per row
    with counting() as statements:
        response = staff.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return statements


def add_rows(start: int, count: int, customer=None, booking=None) -> list[dict]:
    """`count` rows of everything, numbered from `start`; each row with its own relations (or the given ones)."""
    made, now = [], utcnow()
    for n in range(start, start + count):
        loc = factories.location(f"Q{n:02d}", name=f"Location {n}", currency="GBP")
        item = factories.item(loc, name=f"Item number {n}")
        db.session.add(Blackout(item=item, starts_at=now + timedelta(days=300 + n),
                                ends_at=now + timedelta(days=301 + n), reason=f"Service {n}"))
        staff = StaffUser(email=f"concierge{n}@midas.test", name=f"Concierge {n}", role="concierge",
                          password_hash="!unusable")
        db.session.add(staff)
        who = customer or factories.customer(name=f"Customer number {n}", email=f"customer{n}@example.com")
        row = booking or factories.booking(item, starts_at=now + timedelta(days=10 + n * 5), who=who)
        row.concierge = staff
        db.session.add(BookingLine(booking=row, position=n + 10, kind="adjustment", description=f"Extra {n}",
                                   amount=1000, refundable=True))
        payment = Payment(booking=row, provider="stripe", kind="charge", status="succeeded", amount=row.total_amount,
                          currency=row.currency, amount_captured=row.total_amount, amount_refunded=0,
                          provider_ref=f"pi_count_{n}", idempotency_key=f"count-pay-{n}", method="visa",
                          succeeded_at=now - timedelta(minutes=n), created_at=now - timedelta(minutes=n))
        refund = Refund(payment=payment, booking=row, amount=1000, currency=row.currency, status="pending_approval",
                        reason=f"Refund reason {n}", idempotency_key=f"count-refund-{n}", requested_by=staff,
                        created_at=now - timedelta(minutes=n))
        note = Notification(dedupe_key=f"count-note-{n}", channel="email", template="booking_confirmation",
                            recipient=f"customer{n}@example.com", subject=f"Confirmed {row.reference} #{n}",
                            context={"reference": row.reference}, status="sent", attempts=1, provider="smtp",
                            booking=row, customer=who, created_at=now - timedelta(minutes=n), sent_at=now)
        hook = WebhookEvent(provider="stripe", event_id=f"evt_count_{n}", type="payment_intent.succeeded",
                            payload={"id": f"evt_count_{n}", "data": {"object": {"id": f"pi_count_{n}"}}},
                            status="processed", attempts=1, booking=row, received_at=now - timedelta(minutes=n),
                            processed_at=now)
        group = ErrorGroup(fingerprint=f"{n:064d}", category="PAYMENT", severity="HIGH", error_type=f"CountError{n}",
                           message=f"Count failure {n}", status="open",
                           last_seen_at=now - timedelta(minutes=n))
        db.session.add_all([payment, refund, note, hook, group])
        db.session.flush()
        db.session.add(ErrorEvent(group=group, severity="HIGH", message=f"Count failure {n}", booking_id=row.id,
                                  customer_id=who.id, payment_id=payment.id, occurred_at=now - timedelta(minutes=n)))
        db.session.add(AuditEntry(actor_id=staff.id, actor_label=staff.email, action="payment.succeeded",
                                  entity_type="payment", entity_id=str(payment.id)))
        db.session.add(AuditEntry(actor_id=staff.id, actor_label=staff.email, action="booking.updated",
                                  entity_type="booking", entity_id=row.reference))
        db.session.commit()
        made.append({"reference": row.reference, "item": item.name, "customer": who.name,
                     "event": hook.event_id, "error": group.message, "recipient": note.recipient})
    return made


def shows(staff, url: str, text: str) -> bool:
    return text in staff.get(url).get_data(as_text=True)


def test_list_pages_run_as_many_statements_for_3n_rows_as_for_n(login_as):
    staff = login_as("owner")
    first = add_rows(0, N)
    small = {url: statements_for(staff, url) for url in LIST_PAGES}
    later = add_rows(N, 2 * N)
    large = {url: statements_for(staff, url) for url in LIST_PAGES}

    # The pages really show the rows: the counts compare N rows on screen with 3N.
    for url, key in (("/bookings", "reference"), ("/customers", "customer"), ("/inventory", "item"),
                     ("/payments", "reference"), ("/refunds", "reference"), ("/errors", "error"),
                     ("/communications", "recipient"), ("/webhooks/events", "event")):
        assert all(shows(staff, url, row[key]) for row in first + later), (url, key)
    differing = {url: (len(small[url]), len(large[url])) for url in LIST_PAGES if len(small[url]) != len(large[url])}
    assert not differing, _explain(differing, small, large)


def test_customer_page_statements_do_not_grow_with_their_bookings(login_as):
    staff = login_as("owner")
    who = factories.customer(name="Constant Counter", email="constant@example.com")
    add_rows(0, N, customer=who)
    url = f"/customers/{who.id}"
    small = statements_for(staff, url)
    later = add_rows(N, 2 * N, customer=who)
    large = statements_for(staff, url)
    assert all(shows(staff, url, row["reference"]) for row in later)
    assert len(small) == len(large), _explain({url: (len(small), len(large))}, {url: small}, {url: large})


def test_booking_page_statements_do_not_grow_with_its_payments_refunds_and_messages(login_as):
    staff = login_as("owner")
    row = factories.booking(factories.item(factories.location("QBK", name="Booking place")))
    add_rows(0, N, customer=row.customer, booking=row)
    url = f"/bookings/{row.reference}"
    small = statements_for(staff, url)
    add_rows(N, 2 * N, customer=row.customer, booking=row)
    large = statements_for(staff, url)
    assert shows(staff, url, "Extra 8")  # the last line added is on the page
    assert len(small) == len(large), _explain({url: (len(small), len(large))}, {url: small}, {url: large})


def _explain(differing: dict, small: dict, large: dict) -> str:
    lines = []
    for url, (a, b) in differing.items():
        extra = [s for s in large[url] if large[url].count(s) > small[url].count(s)]
        lines.append(f"{url}: {a} statements with {N} rows, {b} with {3 * N}; repeated: "
                     + "; ".join(sorted({" ".join(s.split())[:160] for s in extra})))
    return "\n".join(lines)



def test_item_page_statements_do_not_grow_with_its_bookings(login_as):
    # The month calendar and the upcoming list name each booking's customer.
    staff = login_as("owner")
    item = factories.item(factories.location("QIT", name="Item place"), name="Counted Aston Martin")
    now = utcnow()

    def book(start: int, count: int) -> list[str]:
        rows = [factories.booking(item, starts_at=now + timedelta(days=1 + n * 2), days=1,
                                  who=factories.customer(name=f"Item guest {n}", email=f"item-guest{n}@example.com"))
                for n in range(start, start + count)]
        db.session.commit()
        return [row.customer.name for row in rows]

    url = f"/inventory/{item.id}"
    book(0, N)
    small = statements_for(staff, url)
    names = book(N, 2 * N)
    large = statements_for(staff, url)
    assert all(shows(staff, url, name) for name in names)
    assert len(small) == len(large), _explain({url: (len(small), len(large))}, {url: small}, {url: large})
