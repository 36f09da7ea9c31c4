"""The outbox: messages written with their change, sent once, retried, failed over, swept and captured.

Providers are real servers on 127.0.0.1 (aiosmtpd, pytest-httpserver). On PostgreSQL with Redis the send
jobs wait in Redis until `run_jobs()` runs a real worker; on SQLite they run in-process after commit.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta

import pytest

from midas.database import begin_write
from midas.extensions import db
from midas.models import (
    AuditEntry,
    Booking,
    Dispute,
    ErrorGroup,
    Notification,
    Payment,
    Refund,
    utcnow,
)
from midas.services import DomainError, InvalidInput, PermissionDenied, booking_states, bookings, notifications, outbox
from midas.services.availability import BookingConflict
from midas.tasks import queue
from tests import factories
from tests.conftest import make_staff
from tests.integrations import fakes
from tests.integrations.fakes import run_jobs

# Provider fakes on 127.0.0.1, shared with the integration tests.
closed_port, fake_api, fake_api_server = fakes.closed_port, fakes.fake_api, fakes.fake_api_server
providers, smtp_server = fakes.providers, fakes.smtp_server

PHONE = "+447911123456"


@pytest.fixture
def staff(app):
    return make_staff("admin")


@pytest.fixture
def smtp(smtp_server, providers):
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=smtp_server.url)
    return smtp_server


def quote(staff, customer=None, start_in: timedelta = timedelta(days=7), **item_fields) -> Booking:
    item = factories.item(**item_fields)
    customer = customer or factories.customer(phone=PHONE)
    start = utcnow() + start_in
    return bookings.create_booking(staff, customer.id, item.id, start, start + timedelta(days=2), status="quote")


def confirmed(staff, customer=None) -> Booking:
    return booking_states.confirm(staff, quote(staff, customer).reference)


def messages(**where) -> list[Notification]:
    db.session.rollback()  # a fresh snapshot: jobs wrote through their own sessions
    return db.session.query(Notification).filter_by(**where).order_by(Notification.id).all()


def reload(notification: Notification) -> Notification:
    db.session.rollback()
    return db.session.get(Notification, notification.id)


def pending_row(to: str = "grace@example.com", channel: str = "email", **fields) -> Notification:
    """A row committed without its dispatch, as when Redis was down at commit or the job was lost."""
    context = {"reference": "MID-TEST01", "item": "Riva Aquarama", "customer": "Grace Hopper", "total": "£1.00",
               **fields.pop("context", {})}
    defaults = {"dedupe_key": f"test:{secrets.token_hex(4)}", "template": "booking_confirmation",
                "subject": "Confirmed: Riva Aquarama, booking MID-TEST01"}
    notification = Notification(channel=channel, recipient=to, context=context, **{**defaults, **fields})
    db.session.add(notification)
    db.session.commit()
    return notification


# Written with the change, in the same transaction.

def test_confirming_a_booking_emails_the_confirmation_once_with_both_parts(staff, smtp):
    booking = confirmed(staff)
    run_jobs()

    [email] = messages(channel="email")
    assert email.dedupe_key == f"booking:{booking.reference}:booking_confirmation:email"
    assert (email.status, email.provider, email.attempts) == ("sent", "smtp", 1)
    [received] = smtp.messages
    assert received["Subject"] == email.subject == f"Confirmed: Ferrari SF90 Stradale, booking {booking.reference}"
    assert received["To"] == booking.customer.email and received["Message-ID"] == email.provider_message_id
    assert [part.get_content_type() for part in received.iter_parts()] == ["text/plain", "text/html"]
    html = received.get_body(("html",)).get_content()
    assert "#a8843a" in html and "#14171f" in html and booking.reference in html
    assert "Dear Grace," in received.get_body(("plain",)).get_content()


def test_the_confirmation_is_part_of_the_transaction_that_confirms(staff, smtp):
    booking = quote(staff)
    begin_write(db.session)
    changed = db.session.get(Booking, booking.id)
    changed.status = "confirmed"
    notifications.booking_confirmed(changed)
    assert db.session.query(Notification).count() == 2  # email and SMS, inside the transaction
    db.session.rollback()  # the change fails after the messages were written

    run_jobs()
    assert messages() == [] and smtp.messages == []
    assert queue.queue_lengths() in ({"high": 0, "default": 0, "low": 0}, {"high": None, "default": None, "low": None})


def test_a_refused_transition_writes_no_message(staff, smtp):
    first = quote(staff)
    start = first.starts_at
    bookings.create_booking(staff, factories.customer().id, first.item_id, start, start + timedelta(days=1),
                            status="confirmed")
    before = len(messages())
    with pytest.raises(BookingConflict):
        booking_states.confirm(staff, first.reference)
    assert len(messages()) == before and not messages(booking_id=first.id)


def test_writing_the_same_message_twice_keeps_one_row_and_sends_once(staff, smtp):
    booking = confirmed(staff)
    begin_write(db.session)
    notifications.booking_confirmed(db.session.get(Booking, booking.id))
    db.session.commit()
    run_jobs()
    assert len(messages(channel="email")) == 1 and len(smtp.messages) == 1


# Sent once, however often the job runs.

def test_running_the_send_job_twice_sends_once(smtp):
    row = pending_row()
    queue.enqueue(outbox.SEND_JOB, row.id, queue="high")
    queue.enqueue(outbox.SEND_JOB, row.id, queue="high")
    run_jobs()
    assert len(smtp.messages) == 1 and reload(row).status == "sent" and reload(row).attempts == 1
    assert outbox.deliver(row.id) == "skipped"


def test_two_workers_racing_for_one_message_send_it_once(app, smtp):
    row_id = pending_row().id
    db.session.rollback()  # SQLite: an open transaction, even a read, holds the write lock
    outcomes, start = [], threading.Barrier(2)

    def worker():
        with app.app_context():
            start.wait()
            outcomes.append(outbox.deliver(row_id))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["sent", "skipped"] and len(smtp.messages) == 1


def test_the_same_event_written_twice_in_parallel_is_one_message(app, staff, smtp):
    booking_id = quote(staff).id
    db.session.rollback()

    def write():
        with app.app_context():
            begin_write(db.session)
            notifications.booking_confirmed(db.session.get(Booking, booking_id))
            db.session.commit()

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    run_jobs()
    assert len(messages(channel="email")) == 1 and len(smtp.messages) == 1


# Failover, retries, permanent failures.

def test_smtp_refused_falls_over_to_sendgrid_and_records_the_failure(staff, providers, closed_port, fake_api):
    fake_api.expect_request("/v3/mail/send", method="POST").respond_with_data("", status=202,
                                                                              headers={"X-Message-Id": "sg-1"})
    providers(EMAIL_PROVIDERS=["smtp", "sendgrid"], SMTP_URL=f"smtp://127.0.0.1:{closed_port}",
              SENDGRID_API_KEY="SG.key", SENDGRID_API_BASE=fake_api.url_for("/"))
    confirmed(staff)
    run_jobs()

    [email] = messages(channel="email")
    assert (email.status, email.provider, email.provider_message_id) == ("sent", "sendgrid", "sg-1")
    assert email.last_error.startswith("smtp: ConnectionRefusedError")
    assert [(a["provider"], a["ok"]) for a in outbox.delivery_log(email)] == [("smtp", False), ("sendgrid", True)]
    assert len(fake_api.log) == 1
    assert notifications.kpis().failovers == 1


def test_with_every_provider_down_the_message_is_retried_with_backoff_then_fails(providers, closed_port):
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=f"smtp://127.0.0.1:{closed_port}")
    row = pending_row()
    waits = []
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        before = utcnow()
        assert outbox.deliver(row.id) == "retry"
        row = reload(row)
        assert row.status == "pending" and "ConnectionRefusedError" in row.last_error
        waits.append(round((datetime.fromisoformat(row.context["_delivery"]["next_attempt_at"]) - before)
                           .total_seconds()))
    assert waits == list(outbox.BACKOFF)
    assert outbox.deliver(row.id) == "failed"
    row = reload(row)
    assert (row.status, row.attempts) == ("failed", outbox.MAX_ATTEMPTS) and len(outbox.delivery_log(row)) == 5


def test_an_invalid_address_fails_at_once_without_failover(staff, smtp_server, providers, fake_api):
    providers(EMAIL_PROVIDERS=["smtp", "sendgrid"], SMTP_URL=smtp_server.url, SENDGRID_API_KEY="SG.key",
              SENDGRID_API_BASE=fake_api.url_for("/"))
    confirmed(staff, factories.customer(email="invalid@example.com"))
    run_jobs()
    [email] = messages(channel="email")
    assert (email.status, email.attempts, email.provider) == ("failed", 1, None)
    assert "550" in email.last_error and fake_api.log == [] and smtp_server.messages == []


def test_a_message_that_cannot_render_fails_with_the_reason(smtp):
    row = pending_row()
    db.session.execute(Notification.__table__.update().where(Notification.id == row.id).values(template="nope"))
    db.session.commit()
    assert outbox.deliver(row.id) == "failed"
    assert reload(row).last_error.startswith("could not render") and smtp.messages == []


# Consent.

def test_confirmations_reach_customers_who_turned_off_email_but_texts_need_consent(staff, smtp):
    customer = factories.customer(phone=PHONE, email_opt_in=False, sms_opt_in=False)
    confirmed(staff, customer)
    run_jobs()
    email, sms = messages(channel="email") + messages(channel="sms")
    assert email.status == "sent" and len(smtp.messages) == 1
    assert (sms.status, sms.last_error) == ("cancelled", "The customer has not agreed to SMS.")


def test_a_customer_who_opts_out_before_sending_is_not_texted(staff, smtp):
    customer = factories.customer(phone=PHONE)
    row = pending_row(to=PHONE, channel="sms", customer_id=customer.id)
    customer.sms_opt_in = False
    db.session.commit()
    assert outbox.deliver(row.id) == "cancelled"
    assert reload(row).status == "cancelled"


# The sweep: lost jobs and killed workers.

def test_the_sweep_sends_messages_left_pending_for_over_a_minute(smtp):
    now = utcnow()
    lost = pending_row(created_at=now - timedelta(minutes=2))
    fresh = pending_row(created_at=now - timedelta(seconds=20))

    result = outbox.sweep(now)
    run_jobs()

    assert (result.requeued, result.unstuck) == ([lost.id], [])
    assert reload(lost).status == "sent" and reload(fresh).status == "pending" and len(smtp.messages) == 1


def test_a_swept_message_is_not_swept_again_for_a_few_minutes(providers):
    now = utcnow()
    row = pending_row(created_at=now - timedelta(minutes=2),
                      context={"_delivery": {"swept_at": (now - timedelta(minutes=1)).isoformat()}})
    assert outbox.sweep(now).requeued == []
    assert outbox.sweep(now + outbox.RESWEEP_AFTER).requeued == [row.id]


def test_a_message_waiting_for_its_backoff_is_not_swept_early(app):
    now = utcnow()
    pending_row(created_at=now - timedelta(minutes=5),
                context={"_delivery": {"next_attempt_at": (now + timedelta(minutes=10)).isoformat()}})
    assert outbox.sweep(now).requeued == []


def test_a_worker_killed_while_sending_is_retried_by_the_sweep_and_sends_once(smtp):
    now = utcnow()
    killed = pending_row(status="sending", attempts=1, created_at=now - timedelta(minutes=20),
                         context={"_delivery": {"claimed_at": (now - timedelta(minutes=15)).isoformat()}})
    busy = pending_row(status="sending", attempts=1, created_at=now - timedelta(minutes=20),
                       context={"_delivery": {"claimed_at": (now - timedelta(minutes=2)).isoformat()}})

    result = outbox.sweep(now)
    run_jobs()
    outbox.sweep(now + timedelta(minutes=1))  # a second sweep finds nothing more to do
    run_jobs()

    assert result.unstuck == [killed.id]
    killed, busy = reload(killed), reload(busy)
    assert (killed.status, killed.attempts) == ("sent", 2) and busy.status == "sending"
    assert len(smtp.messages) == 1
    assert outbox.delivery_log(killed)[0]["error"] == "the worker stopped while sending"


def test_a_text_twilio_took_before_the_worker_died_is_not_sent_again(providers, fake_api):
    sid, now = "AC0123456789abcdef0123456789abcdef", utcnow()
    providers(TWILIO_ACCOUNT_SID=sid, TWILIO_AUTH_TOKEN="token", TWILIO_FROM_NUMBER="+15005550006",
              TWILIO_API_BASE=fake_api.url_for("/"))
    claimed = now - timedelta(minutes=15)
    row = pending_row(to=PHONE, channel="sms", status="sending", attempts=1, created_at=now - timedelta(minutes=20),
                      context={"_delivery": {"claimed_at": claimed.isoformat()}})
    body = outbox.render(row).text
    messages_url = f"/2010-04-01/Accounts/{sid}/Messages.json"
    fake_api.expect_request(messages_url, method="GET").respond_with_json({
        "messages": [{"sid": "SMtaken", "to": PHONE, "body": body,
                      "date_created": (claimed + timedelta(seconds=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")}],
        "end": 0, "first_page_uri": messages_url, "next_page_uri": None, "previous_page_uri": None, "page": 0,
        "page_size": 20, "start": 0, "uri": messages_url})

    assert outbox.sweep(now).unstuck == [row.id]
    run_jobs()

    row = reload(row)
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "twilio", "SMtaken")
    assert [request.method for request, _ in fake_api.log] == ["GET"]  # asked, and sent nothing


def test_a_message_stuck_after_its_last_attempt_is_marked_failed(smtp):
    now = utcnow()
    row = pending_row(status="sending", attempts=outbox.MAX_ATTEMPTS, created_at=now - timedelta(hours=1))
    assert outbox.sweep(now).failed == [row.id]
    assert reload(row).status == "failed" and smtp.messages == []


# Without providers: captured locally.

def test_without_providers_messages_are_captured_locally(app, staff, providers):
    confirmed(staff)
    run_jobs()
    email, sms = messages(channel="email") + messages(channel="sms")
    assert (email.status, email.provider, sms.status, sms.provider) == ("sent", "local", "sent", "local")
    folder = outbox.capture_dir()
    assert (folder / f"{email.id}-booking_confirmation.eml").read_bytes().count(b"Content-Type: text/html") == 1
    assert PHONE in (folder / f"{sms.id}-booking_confirmation.sms.txt").read_text()


# Templates.

def _full_context(booking: Booking) -> dict:
    return notifications.booking_context(booking, with_checkout=True) | {
        "amount": "£1,200.00", "method": "visa", "paid_at": "Monday 01 June 2026, 10:00 BST", "failure": "Declined",
        "reason": "customer changed plans", "status": "needs response", "provider": "stripe",
        "provider_ref": "dp_1", "url": "http://127.0.0.1:5000/payments", "evidence_due": "Friday 12 June 2026",
        "category": "PAYMENT", "severity": "HIGH", "error_type": "CardError", "message": "Card declined",
        "occurrences": 3, "hold_expires": "Monday 01 June 2026, 10:30 BST", "hold_expires_time": "10:30 BST"}


@pytest.mark.parametrize("template", sorted(outbox.KINDS))
def test_every_email_renders_in_the_house_style(staff, template):
    booking = quote(staff)
    context = _full_context(booking)
    row = Notification(id=1, channel="email", template=template, recipient="x@example.com", dedupe_key="k",
                       context=context, subject=outbox.subject_for(outbox.KINDS[template], context))
    rendered = outbox.render(row)
    assert "#a8843a" in rendered.html and "#fbf9f4" in rendered.html and "MIDAS" in rendered.html
    assert rendered.text.startswith("M I D A S") and "{{" not in rendered.text + rendered.html
    assert row.subject and "{" not in row.subject


@pytest.mark.parametrize("template", ["booking_confirmation", "checkout_link", "hold_expiring", "pickup_reminder",
                                      "return_reminder", "payment_failed", "booking_cancellation", "balance_due"])
def test_texts_are_short_and_useful(staff, template):
    booking = quote(staff)
    row = Notification(id=1, channel="sms", template=template, recipient=PHONE, dedupe_key="k",
                       context=_full_context(booking))
    text = outbox.render(row).text
    assert text.startswith("Midas:") and "\n" not in text and len(text) <= 200
    assert booking.reference in text or "Ferrari" in text


# Reminders.

def test_reminders_are_written_when_due_and_only_once(staff, smtp):
    now = utcnow()
    loc = factories.location()
    tomorrow = factories.booking(factories.item(loc), starts_at=now + timedelta(hours=20), status="confirmed",
                                 who=factories.customer(phone=PHONE))
    tomorrow.created_at = now - timedelta(days=5)
    held = factories.booking(factories.item(loc, name="Riva Aquarama", category="yacht"),
                             starts_at=now + timedelta(days=9), status="pending_payment")
    held.hold_expires_at = now + timedelta(minutes=6)
    returning = factories.booking(factories.item(loc, name="Bentley Bentayga"), starts_at=now - timedelta(days=2),
                                  status="in_progress", who=factories.customer(phone="+447911654321"))
    returning.ends_at = now + timedelta(hours=3)
    db.session.commit()
    due = notifications.return_reminder_due(returning.ends_at, loc.timezone)

    written = notifications.queue_reminders(max(now, due))
    assert notifications.queue_reminders(max(now, due)) == 0
    run_jobs()

    keys = {n.dedupe_key for n in messages()}
    assert written == 5 and keys == {
        f"booking:{tomorrow.reference}:pickup_reminder:email", f"booking:{tomorrow.reference}:pickup_reminder:sms",
        f"booking:{held.reference}:hold_expiring:email:hold-{int(held.hold_expires_at.timestamp())}",
        f"booking:{returning.reference}:return_reminder:email",
        f"booking:{returning.reference}:return_reminder:sms",
    }
    assert len(smtp.messages) == 3


def test_no_pickup_reminder_right_after_a_last_minute_booking(staff, smtp):
    factories.booking(factories.item(), starts_at=utcnow() + timedelta(hours=5), status="confirmed")
    assert notifications.queue_reminders() == 0


def test_return_reminders_go_out_in_the_morning_or_the_evening_before():
    london = "Europe/London"
    assert notifications.return_reminder_due(datetime(2026, 6, 1, 16, 0, tzinfo=UTC), london) == datetime(
        2026, 6, 1, 7, 0, tzinfo=UTC)  # 08:00 BST
    assert notifications.return_reminder_due(datetime(2026, 6, 1, 7, 30, tzinfo=UTC), london) == datetime(
        2026, 5, 31, 17, 0, tzinfo=UTC)  # 08:30 BST return: 18:00 the evening before


def test_a_cancelled_quote_the_customer_never_saw_sends_nothing(staff, smtp):
    booking = quote(staff)
    booking_states.cancel(staff, booking.reference, "staff typo")
    assert messages(booking_id=booking.id) == []


def test_cancelling_a_held_booking_tells_the_customer(staff, smtp):
    booking = quote(staff)
    booking_states.send_for_payment(staff, booking.reference)
    booking_states.cancel(staff, booking.reference, "customer changed plans")
    run_jobs()
    assert [n.template for n in messages(channel="email")] == ["checkout_link", "booking_cancellation"]
    assert "customer changed plans" in smtp.messages[-1].get_body(("plain",)).get_content()


# Staff actions.

def test_staff_send_the_checkout_link_by_email_or_sms_and_a_double_click_sends_once(staff, smtp):
    concierge = make_staff("concierge", email="c@midas.test")
    booking = quote(staff)
    now = utcnow()

    email = notifications.send_checkout_link(concierge, booking.reference, "email", now=now)
    again = notifications.send_checkout_link(concierge, booking.reference.lower(), "email", now=now)
    sms = notifications.send_checkout_link(concierge, booking.reference, "sms", now=now)
    run_jobs()

    assert again.id == email.id and sms.recipient == PHONE
    assert f"/pay/{booking.checkout_token}" in email.context["checkout_url"]
    assert len(smtp.messages) == 1 and f"/pay/{booking.checkout_token}" in smtp.messages[0].get_body(
        ("plain",)).get_content()
    assert {reload(email).status, reload(sms).status} == {"sent"}
    audits = db.session.query(AuditEntry).filter_by(action="booking.checkout_link_sent").all()
    assert [a.after["channel"] for a in audits] == ["email", "sms"]


def test_the_checkout_link_is_refused_when_there_is_nothing_to_pay_or_nowhere_to_send(staff, smtp):
    paid = confirmed(staff)
    with pytest.raises(DomainError, match="nothing left to pay"):
        notifications.send_checkout_link(staff, paid.reference, "email")
    no_phone = quote(staff, factories.customer(phone=None))
    with pytest.raises(InvalidInput, match="no mobile number"):
        notifications.send_checkout_link(staff, no_phone.reference, "sms")
    no_consent = quote(staff, factories.customer(phone=PHONE, sms_opt_in=False))
    with pytest.raises(DomainError, match="not agreed to SMS"):
        notifications.send_checkout_link(staff, no_consent.reference, "sms")
    with pytest.raises(InvalidInput):
        notifications.send_checkout_link(staff, no_phone.reference, "pigeon")


def test_an_admin_resends_a_failed_message_and_it_is_audited(staff, smtp):
    row = pending_row(status="failed", attempts=5, last_error="smtp: timeout")
    with pytest.raises(PermissionDenied):
        notifications.resend(make_staff("concierge", email="c@midas.test"), row.id)

    notifications.resend(staff, row.id)
    run_jobs()

    row = reload(row)
    assert (row.status, row.attempts) == ("sent", 1) and len(smtp.messages) == 1
    entry = db.session.query(AuditEntry).filter_by(action="notification.resent").one()
    assert entry.before == {"status": "failed"} and entry.actor_id == staff.id


def test_sending_a_sent_message_again_makes_a_copy(staff, smtp):
    row = pending_row(status="sent")
    copy = notifications.resend(staff, row.id)
    run_jobs()
    assert copy.id != row.id and reload(copy).status == "sent" and len(smtp.messages) == 1
    with pytest.raises(DomainError, match="a moment ago"):
        notifications.resend(staff, row.id)


# Money and alerts (for the payment, refund and webhook services to call).

def test_payments_refunds_and_disputes_write_their_messages(staff, providers, fake_api):
    providers(ALERT_EMAILS=["ops@midas.test", "finance@midas.test"], SLACK_WEBHOOK_URL=fake_api.url_for("/hook"))
    fake_api.expect_request("/hook", method="POST").respond_with_data("ok")
    booking = confirmed(staff)
    payment = Payment(booking=booking, provider="stripe", status="succeeded", amount=488160, currency="GBP",
                      idempotency_key="pay-1", method="visa", succeeded_at=utcnow())
    db.session.add(payment)
    db.session.flush()
    refund = Refund(payment=payment, booking=booking, amount=100000, currency="GBP", status="succeeded",
                    reason="goodwill", idempotency_key="ref-1")
    dispute = Dispute(payment=payment, booking=booking, provider="stripe", provider_ref="dp_1", amount=488160,
                      currency="GBP", reason="fraudulent", status="needs_response")
    db.session.add_all([refund, dispute])
    db.session.flush()
    notifications.payment_received(payment)
    notifications.refund_succeeded(refund)
    notifications.dispute_opened(dispute)
    db.session.commit()
    run_jobs()

    sent = {(n.template, n.recipient) for n in messages(status="sent")}
    assert {("payment_receipt", booking.customer.email), ("refund_processed", booking.customer.email),
            ("dispute_alert", "ops@midas.test"), ("dispute_alert", "finance@midas.test"),
            ("dispute_alert", "slack")} <= sent
    [slack] = [request for request, _ in fake_api.log]
    assert booking.reference in slack.get_json()["text"] and "£4,881.60" in slack.get_json()["text"]


def test_error_alerts_go_to_admins_when_no_alert_emails_are_set(staff, providers):
    make_staff("owner", email="owner@midas.test")
    group = ErrorGroup(fingerprint="f" * 64, category="PAYMENT", severity="HIGH", error_type="CardError",
                       message="Card declined: insufficient_funds")
    db.session.add(group)
    db.session.flush()
    notifications.error_alert(group)
    db.session.commit()
    run_jobs()
    assert {n.recipient for n in messages(template="error_alert")} == {staff.email, "owner@midas.test"}
    assert {n.dedupe_key for n in messages(template="error_alert")} == {
        f"alert:{'f' * 16}:email:{staff.email}", f"alert:{'f' * 16}:email:owner@midas.test"}


# With Redis: the production shape.

def test_a_confirmation_waits_in_redis_until_a_worker_sends_it(app, staff, smtp):
    if not app.config["REDIS_URL"]:
        pytest.skip("needs Redis (TEST_REDIS_URL)")
    confirmed(staff)
    assert queue.queue_lengths()["high"] == 2 and smtp.messages == []
    run_jobs()
    assert queue.queue_lengths()["high"] == 0 and len(smtp.messages) == 1


def test_redis_down_at_commit_loses_nothing_the_sweep_sends_it_once(app, staff, smtp, monkeypatch, closed_port):
    if not app.config["REDIS_URL"]:
        pytest.skip("needs Redis (TEST_REDIS_URL)")
    real_url = app.config["REDIS_URL"]
    monkeypatch.setitem(app.config, "REDIS_URL", f"redis://127.0.0.1:{closed_port}/0")
    app.extensions.pop("midas_redis", None)
    booking = confirmed(staff)  # no error for the user: the booking commits
    app.config["REDIS_URL"] = real_url
    app.extensions.pop("midas_redis", None)

    assert booking.status == "confirmed" and {n.status for n in messages()} == {"pending"}
    assert outbox.sweep(utcnow() + timedelta(minutes=2)).requeued == [n.id for n in messages()]
    run_jobs()
    assert {n.status for n in messages()} == {"sent"} and len(smtp.messages) == 1
