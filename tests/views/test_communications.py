"""The Communications page: the list with its filters and figures, one message as sent, and resending."""

from __future__ import annotations

from datetime import timedelta

from midas.extensions import db
from midas.models import AuditEntry, Notification, utcnow
from tests import factories
from tests.conftest import soup
from tests.integrations import fakes
from tests.services.test_outbox import pending_row, reload

providers = fakes.providers


def test_the_list_shows_figures_and_filters_by_template_and_period(login_as, providers):
    pending_row(status="sent", provider="local", sent_at=utcnow())
    pending_row(status="failed", template="payment_receipt", last_error="smtp: 550 user unknown")
    pending_row(status="sent", created_at=utcnow() - timedelta(days=3))
    page = login_as("concierge").page("/communications?template=payment_receipt")

    assert page.select_one("[data-kpi=sent]").get_text() == "1"
    assert page.select_one("[data-kpi=failures]").get_text() == "1"
    assert page.select_one("[data-kpi=delivery-rate]").get_text() == "50.0 %"
    rows = page.select("#results tbody tr")
    assert len(rows) == 1 and "Payment receipt" in rows[0].get_text() and "550 user unknown" in rows[0].get_text()
    assert len(login_as("concierge").page("/communications?period=24h").select("#results tbody tr")) == 2


def test_a_customers_messages_are_one_filter_away(login_as, providers):
    customer = factories.customer()
    pending_row(to=customer.email, customer_id=customer.id, status="sent")
    pending_row(status="sent")
    page = login_as("concierge").page(f"/communications?customer_id={customer.id}")
    assert [tr.select("td")[3].get_text() for tr in page.select("#results tbody tr")] == [customer.email]
    assert customer.name in page.get_text()


def test_a_message_shows_as_the_recipient_saw_it_with_its_attempts(login_as, providers):
    row = pending_row(status="sent", provider="sendgrid", last_error="smtp: ConnectionRefusedError",
                      context={"_delivery": {"log": [
                          {"at": "2026-06-01T10:00:00+00:00", "attempt": 1, "provider": "smtp", "ok": False,
                           "error": "ConnectionRefusedError", "ms": 3},
                          {"at": "2026-06-01T10:00:00+00:00", "attempt": 1, "provider": "sendgrid", "ok": True,
                           "error": None, "ms": 41}]}})
    staff = login_as("concierge")
    response = staff.get(f"/communications/{row.id}")
    assert response.status_code == 200
    page = soup(response)

    assert page.select_one("[data-status]")["data-status"] == "sent"
    assert "Dear Grace Hopper," in page.select_one("[data-text-body]").get_text()
    assert [tr.select("td")[2].get_text() for tr in page.select("section table tbody tr")] == ["sendgrid", "smtp"]
    assert "frame-src 'self'" in response.headers["Content-Security-Policy"]
    assert not page.select("form[action$='/resend']")  # concierges see, admins resend

    preview = staff.get(page.select_one("iframe[data-email-preview]")["src"])
    assert preview.mimetype == "text/html" and "Riva Aquarama" in preview.get_data(as_text=True)
    assert preview.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")


def test_an_admin_resends_a_failed_message(login_as, providers):
    row = pending_row(status="failed", attempts=5, last_error="smtp: timeout")
    admin = login_as("admin")
    assert admin.page(f"/communications/{row.id}").select_one("form[action$='/resend'] button").get_text() == "Resend"

    response = admin.post(f"/communications/{row.id}/resend")

    assert response.status_code == 302 and response.headers["Location"].endswith(f"/communications/{row.id}")
    fakes.run_jobs()
    assert reload(row).status == "sent"
    assert db.session.query(AuditEntry).filter_by(action="notification.resent", entity_id=str(row.id)).count() == 1


def test_a_concierge_cannot_resend(login_as, providers):
    row = pending_row(status="failed")
    assert login_as("concierge").post(f"/communications/{row.id}/resend").status_code == 403
    assert reload(row).status == "failed"


def test_resending_a_pending_message_explains_why_not(login_as, providers):
    row = pending_row()
    admin = login_as("admin")
    response = admin.post(f"/communications/{row.id}/resend", follow_redirects=True)
    assert "only failed or sent messages can be sent again" in response.get_data(as_text=True)
    assert db.session.query(Notification).count() == 1


def test_an_unknown_message_is_not_found(login_as):
    assert login_as("concierge").get("/communications/999999").status_code == 404
