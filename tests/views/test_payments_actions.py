"""Staff act on a payment from its page: confirm an offline payment, open a refund."""

from __future__ import annotations

from midas.extensions import db
from midas.models import Payment
from tests import factories
from tests.conftest import soup


def _payment(provider: str, status: str, kind: str = "charge") -> Payment:
    booking = factories.booking(factories.item(), status="pending_payment")
    payment = Payment(booking=booking, provider=provider, kind=kind, status=status, amount=booking.total_amount,
                      currency=booking.currency, idempotency_key=f"{provider}:{booking.reference}")
    db.session.add(payment)
    db.session.commit()
    return payment


def test_admin_records_a_bank_transfer_as_received_from_the_payment_page(login_as):
    payment = _payment("bank_transfer", "pending")
    admin = login_as("admin")
    page = admin.page(f"/payments/{payment.id}")
    assert page.select_one("form[action$='/confirm-offline']") is not None
    admin.post(f"/payments/{payment.id}/confirm-offline", {"reference_note": "BARCLAYS 88812"})
    assert db.session.get(Payment, payment.id).status == "succeeded"


def test_concierge_sees_no_confirm_button_and_cannot_post_it(login_as):
    payment = _payment("bank_transfer", "pending")
    concierge = login_as("concierge")
    assert concierge.page(f"/payments/{payment.id}").select_one("form[action$='/confirm-offline']") is None
    assert concierge.post(f"/payments/{payment.id}/confirm-offline", {"reference_note": "X"}).status_code == 403
    assert db.session.get(Payment, payment.id).status == "pending"


def test_a_succeeded_payment_offers_a_refund(login_as):
    payment = _payment("stripe", "succeeded")
    link = login_as("concierge").page(f"/payments/{payment.id}").find("a", string="Open a refund")
    assert link["href"].startswith("/refunds/new?booking=")


def test_deposit_capture_refuses_an_amount_that_is_not_money(login_as):
    payment = _payment("stripe", "authorized", kind="deposit")
    response = login_as("admin").post(f"/payments/{payment.id}/capture-deposit", {"amount": "lots"},
                                      follow_redirects=True)
    assert "Enter the amount to keep" in soup(response).get_text()
    assert db.session.get(Payment, payment.id).status == "authorized"
