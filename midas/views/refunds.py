"""Refunds area: the queue, the policy preview and request form, decisions and execution."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from midas.htmx import render
from midas.models import RefundOverride, RefundStatus, Role
from midas.money import exponent, parse_major
from midas.services import DomainError, InvalidInput, refunds
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("refunds", __name__, url_prefix="/refunds")


@bp.get("")
def index():
    status = request.args.get("status", "")
    page = refunds.list_refunds(status, request.args.get("page", 1, type=int))
    return render("refunds/index.html", "results", page=page, status=status, statuses=RefundStatus.values())


@bp.route("/new", methods=["GET", "POST"])
def create():
    reference = request.values.get("booking", "").strip()
    if not reference:
        abort(400, "Say which booking: /refunds/new?booking=<reference>.")
    payment_id = request.values.get("payment_id", type=int)
    shown = refunds.preview(reference, payment_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            refund = refunds.request_refund(current_user, reference, payment_id or 0, _amount(shown),
                                            request.form.get("reason", ""), request.form.get("override", "none"))
        except InvalidInput as exc:
            errors[exc.field or "amount"] = str(exc)
        else:
            flash(f"Refund #{refund.id} recorded: {refund.status.replace('_', ' ')}.", "success")
            return redirect(url_for(".show", refund_id=refund.id), 303)
    default = _major(shown.quote.amount, shown.quote.currency) if shown.quote else ""
    return render("refunds/new.html", shown=shown, errors=errors, form=request.form, default_amount=default,
                  overrides=RefundOverride.values()), 422 if errors else 200


def _major(amount: int, currency: str) -> str:
    """Minor units as the form expects them back: 12345 EUR → '123.45', 5000 JPY → '5000'."""
    digits = exponent(currency)
    return f"{amount // 10**digits}.{amount % 10**digits:0{digits}d}" if digits else str(amount)


def _amount(shown: refunds.Preview) -> int:
    if shown.payment is None:
        raise InvalidInput("This booking has no captured payment to refund.", "payment_id")
    try:
        return parse_major(request.form.get("amount", ""), shown.payment.currency)
    except ValueError as exc:
        raise InvalidInput(f"Give the amount in {shown.payment.currency}, e.g. 1,250.00.", "amount") from exc


@bp.get("/<int:refund_id>")
def show(refund_id: int):
    return render("refunds/show.html", "refund", refund=refunds.get_refund(refund_id))


@bp.post("/<int:refund_id>/approve")
@role_required(Role.ADMIN)
def approve(refund_id: int):
    return _act(refund_id, lambda: refunds.approve(current_user, refund_id, request.form.get("decision_reason", "")))


@bp.post("/<int:refund_id>/reject")
@role_required(Role.ADMIN)
def reject(refund_id: int):
    return _act(refund_id, lambda: refunds.reject(current_user, refund_id, request.form.get("decision_reason", "")))


@bp.post("/<int:refund_id>/execute")
@role_required(Role.ADMIN)
def execute(refund_id: int):
    return _act(refund_id, lambda: refunds.execute(current_user, refund_id))


@bp.post("/<int:refund_id>/offline")
@role_required(Role.ADMIN)
def offline(refund_id: int):
    return _act(refund_id, lambda: refunds.record_offline(current_user, refund_id, request.form.get("reference", "")))


def _act(refund_id: int, action):
    """Run one decision; HTMX gets the refund block back, a browser a redirect to the page."""
    try:
        action()
    except DomainError as exc:
        if exc.status_code == 403:
            abort(403)
        error = str(exc)
    else:
        error = None
    if request.htmx:
        status = 422 if error else 200
        return render("refunds/show.html", "refund", refund=refunds.get_refund(refund_id), error=error), status
    flash(error or "Done.", "error" if error else "success")
    return redirect(url_for(".show", refund_id=refund_id), 303)
