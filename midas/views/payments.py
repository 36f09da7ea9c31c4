"""Payments area: payments, deposit holds and disputes."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user

from midas.htmx import render
from midas.models import PaymentStatus, Provider, Role, utcnow
from midas.money import format_money, parse_major
from midas.services import (
    DomainError,
    InvalidInput,
    deposits,
    payment_kpis,
    payments,
    paypal_payments,
    reconciliation,
)
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("payments", __name__, url_prefix="/payments")


@bp.get("")
def index():
    if request.args.get("disputes"):
        disputes = payments.list_disputes(request.args["disputes"] == "open", request.args.get("page", 1, type=int))
        return render("payments/disputes.html", "results", page=disputes)
    filters = payments.parse_filters(request.args)
    return render("payments/index.html", "results", page=payments.list_payments(filters), filters=filters,
                  kpis=payment_kpis.payment_kpis(utcnow()), statuses=PaymentStatus.values(),
                  providers=Provider.values(), currencies=payments.currencies())


@bp.get("/<int:payment_id>")
def show(payment_id: int):
    payment = payments.get_payment(payment_id)
    return render("payments/show.html", payment=payment, timeline=payments.payment_timeline(payment))


@bp.get("/reconciliation")
@role_required(Role.ADMIN)
def reconciliation_page():
    today = utcnow().date()
    return render("payments/reconciliation.html", report=reconciliation.last_report(), today=today,
                  max_days=reconciliation.MAX_PAGE_DAYS)


@bp.post("/reconciliation")
@role_required(Role.ADMIN)
def run_reconciliation():
    """Compare a short period with Stripe now, in the request; the page shows the kept report."""
    try:
        since, until = reconciliation.parse_period(request.form.get("since", ""), request.form.get("until", ""),
                                                   utcnow().date())
        report = reconciliation.run_and_save(since, until)
    except DomainError as exc:
        flash(str(exc), "error")
    else:
        flash("No differences." if report.clean else f"{len(report.differences)} difference(s) found.", "success")
    return redirect(url_for(".reconciliation_page"), 303)


@bp.post("/reconciliation/fix")
@role_required(Role.ADMIN)
def fix_difference():
    """Refetch one Stripe object and apply it as its webhook would (audited)."""
    try:
        flash(reconciliation.fix(request.form.get("kind", ""), request.form.get("provider_id", ""), current_user),
              "success")
    except DomainError as exc:
        flash(str(exc), "error")
    return redirect(url_for(".reconciliation_page"), 303)


@bp.post("/<int:payment_id>/confirm-offline")
@role_required(Role.ADMIN)
def confirm_offline(payment_id: int):
    """An admin records a bank transfer or a payment at pick-up as received."""
    try:
        paypal_payments.confirm_offline_payment(current_user, payment_id, request.form.get("reference_note", ""))
    except InvalidInput as exc:
        flash(str(exc), "error")
    else:
        flash("Payment recorded as received.", "success")
    return redirect(url_for(".show", payment_id=payment_id), 303)


@bp.post("/<int:payment_id>/capture-deposit")
@role_required(Role.ADMIN)
def capture_deposit(payment_id: int):
    """Keep part (or all) of a security deposit hold, typed in major units; Stripe releases the rest."""
    payment = payments.get_payment(payment_id)
    try:
        amount = parse_major(request.form.get("amount", ""), payment.currency)
    except ValueError:
        flash(f"Enter the amount to keep in {payment.currency}, e.g. 1,250.00.", "error")
    else:
        deposits.capture_deposit(current_user, payment_id, amount)
        flash(f"Kept {format_money(amount, payment.currency)} of the deposit; the rest is released.", "success")
    return redirect(url_for(".show", payment_id=payment_id), 303)


@bp.post("/<int:payment_id>/release-deposit")
def release_deposit(payment_id: int):
    deposits.release_deposit(current_user, payment_id)
    flash("Deposit hold released in full.", "success")
    return redirect(url_for(".show", payment_id=payment_id), 303)
