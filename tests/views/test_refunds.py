"""The refund pages as staff see them: preview, request, decisions, offline recording."""

from __future__ import annotations

from datetime import timedelta

from midas.extensions import db
from midas.models import Refund
from midas.services import payment_events, refunds, settings
from tests.conftest import make_staff, soup
from tests.fakes.stripe_api import stripe_server  # noqa: F401
from tests.services.test_refunds import fake_stripe, paid_booking  # noqa: F401


def test_refund_page_previews_policy_amount_rule_and_lines(app, login_as):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=5))
    page = login_as("concierge").page(f"/refunds/new?booking={booking.reference}")
    preview = page.find(id="preview")
    assert preview["data-policy-amount"] == "200000" and preview["data-policy-version"] == "0"
    assert preview.find(attrs={"data-rule": True}).text == "car: 50% at 72+ hours notice"
    assert [row["data-refundable"] for row in preview.select("tbody tr")] == ["yes", "no"]
    assert page.find("input", attrs={"name": "amount"})["value"] == "2000.00"
    assert page.find("select", attrs={"name": "override"}) is None  # concierges cannot override


def test_concierge_requests_a_lower_refund_and_sees_it(app, login_as):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=5))
    staff = login_as("concierge")
    response = staff.post(f"/refunds/new?booking={booking.reference}",
                          {"payment_id": payment.id, "amount": "1,500.00", "reason": "customer asked"})
    assert response.status_code == 303
    refund = db.session.query(Refund).one()
    assert (refund.amount, refund.status) == (150_000, "approved")
    assert staff.page(response.headers["Location"]).find(attrs={"data-status": True})["data-status"] == "approved"


def test_raising_above_the_policy_is_refused_with_a_message(app, login_as):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=5))
    response = login_as("concierge").post(f"/refunds/new?booking={booking.reference}",
                                          {"payment_id": payment.id, "amount": "2000.01", "reason": "more"})
    assert response.status_code == 422
    assert "more than the policy" in soup(response).find(id="amount-errors").text
    assert db.session.query(Refund).count() == 0


def test_concierge_cannot_approve(app, login_as):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=1))
    admin = login_as("admin")
    admin.post(f"/refunds/new?booking={booking.reference}",
               {"payment_id": payment.id, "amount": "4200", "reason": "storm", "override": "force_majeure"})
    refund = db.session.query(Refund).one()
    response = login_as("concierge").post(f"/refunds/{refund.id}/approve", {"decision_reason": "ok"})
    assert response.status_code == 403
    own = admin.post(f"/refunds/{refund.id}/approve", {"decision_reason": "ok"}, htmx=True)
    assert own.status_code == 403
    db.session.refresh(refund)
    assert refund.status == "pending_approval"


def test_admin_approves_then_records_an_offline_refund_over_htmx(app, login_as):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=1))
    login_as("admin").post(f"/refunds/new?booking={booking.reference}",
                           {"payment_id": payment.id, "amount": "4200", "reason": "storm", "override": "force_majeure"})
    refund = db.session.query(Refund).one()
    owner = login_as("owner")
    approved = owner.post(f"/refunds/{refund.id}/approve", {"decision_reason": "confirmed"}, htmx=True)
    assert soup(approved).find(attrs={"data-status": True})["data-status"] == "approved"
    recorded = owner.post(f"/refunds/{refund.id}/offline", {"reference": "WIRE-77"}, htmx=True)
    assert soup(recorded).find(attrs={"data-status": True})["data-status"] == "succeeded"
    queue = owner.page("/refunds?status=succeeded")
    assert [row["data-status"] for row in queue.select("tbody tr[data-status]")] == ["succeeded"]


def test_owner_edits_the_refund_policy_and_thresholds_on_settings(app, login_as):
    owner = login_as("owner")
    form = owner.page("/settings/refund-policy")
    assert form.find("input", attrs={"name": "car"})["value"] == "7d:100, 72h:50, 0h:0"
    assert "EUR 4600.00" in form.find("textarea", attrs={"name": "thresholds"}).text
    values = {"car": "10d:100, 48h:40, 0h:0", "yacht": "30d:100, 14d:50, 0h:0", "property": "30d:100, 14d:50, 0h:0",
              "jet": "14d:90, 72h:50, 0h:0", "thresholds": "EUR 1000.00\nJPY 500000"}
    assert owner.post("/settings/refund-policy", values).status_code == 303
    policy, version = settings.get_refund_policy()
    assert version == 1 and policy["car"][1] == {"notice": 48, "unit": "hours", "refund_bp": 4000}
    assert settings.get_approval_thresholds()["JPY"] == 500000
    bad = owner.post("/settings/refund-policy", {**values, "jet": "14x:90"})
    assert bad.status_code == 422 and "14x:90" in soup(bad).find(id="policy-jet-errors").text
    assert login_as("admin").get("/settings/refund-policy").status_code == 403


def test_card_refund_over_threshold_is_approved_sent_and_followed_to_success(app, login_as, fake_stripe):  # noqa: F811
    booking, payment = paid_booking(starts_in=timedelta(days=40), rental=900_000)
    concierge = login_as("concierge")
    concierge.post(f"/refunds/new?booking={booking.reference}",
                   {"payment_id": payment.id, "amount": "9000", "reason": "trip moved"})
    refund = db.session.query(Refund).one()
    mine = concierge.page("/refunds?mine=1").select("#results tbody tr[data-status]")
    assert [row["data-status"] for row in mine] == ["pending_approval"]
    assert refund.status == "pending_approval" and not fake_stripe.calls("POST", "/v1/refunds")
    queue = login_as("admin").page("/refunds?status=pending_approval")
    assert [row["data-status"] for row in queue.select("tbody tr[data-status]")] == ["pending_approval"]
    approved = login_as("admin").post(f"/refunds/{refund.id}/approve", {"decision_reason": "ok"}, htmx=True)
    assert soup(approved).find(attrs={"data-status": True})["data-status"] == "processing"
    db.session.refresh(refund)
    sent = fake_stripe.objects["refunds"][refund.provider_ref]
    payment_events.apply_refund({**sent, "status": "succeeded"}, "test")
    assert concierge.page(f"/refunds/{refund.id}").find(attrs={"data-status": True})["data-status"] == "succeeded"


def test_refunds_dashboard_shows_queues_kpis_and_filtered_history(app, login_as):
    concierge = make_staff("concierge", email="queue-concierge@midas.test")
    waiting_booking, waiting_payment = paid_booking(provider="bank_transfer", rental=900_000)
    waiting = refunds.request_refund(concierge, waiting_booking.reference, waiting_payment.id, 800_000, "moved")
    done_booking, done_payment = paid_booking(provider="bank_transfer", currency="CHF")
    done = refunds.request_refund(concierge, done_booking.reference, done_payment.id, 100_000, "partial")
    refunds.record_offline(make_staff("admin", email="queue-admin@midas.test"), done.id, "WIRE-8")
    failed_booking, failed_payment = paid_booking(provider="bank_transfer")
    failed = refunds.request_refund(concierge, failed_booking.reference, failed_payment.id, 50_000, "bounced")
    failed.status, failed.failure_reason = "failed", "account closed"
    db.session.commit()

    page = login_as("admin").page("/refunds")
    queued = {q["data-queue"]: [int(row["data-refund-id"]) for row in q.select("tr[data-refund-id]")]
              for q in page.select("[data-queue]")}
    assert queued == {"awaiting_approval": [waiting.id], "processing": [], "failed": [failed.id]}
    assert "account closed" in page.find(attrs={"data-queue": "failed"}).text
    assert page.find(attrs={"data-kpi": "refunded-this-month"}).find(attrs={"data-currency": "CHF"}).text == \
        "CHF 1,000.00"
    assert page.find(attrs={"data-kpi": "average-days"}).text.strip() == "0.0"

    admin = login_as("admin")  # once: signing in per query would meet the login rate limit

    def history(query: str) -> list[int]:
        rows = admin.page(f"/refunds?{query}").select("#results tbody tr[data-status]")
        return [int(row.find("a").text.lstrip("#")) for row in rows]

    assert history("currency=CHF") == [done.id]
    assert history(f"q={waiting_booking.reference}") == [waiting.id]
    assert history("q=bounce") == [failed.id]  # the reason, contains
    assert history("q=%25") == [] and history("q=_") == []  # a typed % or _ is a character, not a wildcard
    assert history("status=failed") == [failed.id]
    assert history("provider=stripe") == []
    assert sorted(history("since=2000-01-01")) == sorted([waiting.id, done.id, failed.id])
    assert history("until=2000-01-01") == []
    assert admin.get("/refunds?since=yesterday").status_code == 400
    assert history("mine=1") == []  # this admin asked for none of them
    fragment = login_as("admin").get("/refunds?status=failed", headers={"HX-Request": "true"})
    assert "data-queue" not in fragment.get_data(as_text=True)


def test_failed_refund_is_retried_from_its_page(app, login_as):
    booking, payment = paid_booking(provider="bank_transfer")
    refund = refunds.request_refund(make_staff("concierge", email="retry-c@midas.test"), booking.reference,
                                    payment.id, 100_000, "part")
    refund.status, refund.failure_reason = "failed", "bounced"
    db.session.commit()
    admin = login_as("admin")
    page = admin.page(f"/refunds/{refund.id}")
    assert page.find("button", string="Retry the refund") is not None
    response = admin.post(f"/refunds/{refund.id}/retry", {})
    assert response.status_code == 303
    again = db.session.query(Refund).filter(Refund.id != refund.id).one()
    assert response.headers["Location"].endswith(f"/refunds/{again.id}") and again.status == "approved"
    assert login_as("concierge").post(f"/refunds/{refund.id}/retry", {}).status_code == 403
