"""Payments area: payments, deposit holds and disputes."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user

from midas.htmx import render
from midas.models import PaymentStatus, Provider, Role
from midas.money import format_money, parse_major
from midas.services import InvalidInput, deposits, payments, paypal_payments
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("payments", __name__, url_prefix="/payments")


@bp.get("")
def index():
    if request.args.get("disputes"):
        disputes = payments.list_disputes(request.args["disputes"] == "open", request.args.get("page", 1, type=int))
        return render("payments/disputes.html", "results", page=disputes)
    filters = payments.PaymentFilters(
        q=request.args.get("q", ""), status=request.args.get("status", ""),
        provider=request.args.get("provider", ""), sort=request.args.get("sort", ""),
        page=request.args.get("page", 1, type=int),
    )
    page, sort = payments.list_payments(filters)
    return render("payments/index.html", "results", page=page, sort=sort, filters=filters,
                  statuses=PaymentStatus.values(), providers=Provider.values())


@bp.get("/<int:payment_id>")
def show(payment_id: int):
    return render("payments/show.html", payment=payments.get_payment(payment_id))


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
