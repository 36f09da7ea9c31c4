"""Refunds area: the queue, the policy preview and request form, decisions and execution."""

from __future__ import annotations

from datetime import date

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from midas.htmx import render
from midas.models import Provider, RefundOverride, RefundStatus, Role
from midas.money import exponent, parse_major
from midas.services import DomainError, InvalidInput, refund_dashboard, refunds
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("refunds", __name__, url_prefix="/refunds")


@bp.get("")
def index():
    filters = _history_filters()
    page = refund_dashboard.history(filters, request.args.get("page", 1, type=int))
    if request.htmx and not request.htmx.boosted:  # the filters re-fetch the history alone
        return render("refunds/index.html", "results", page=page, filters=filters)
    return render("refunds/index.html", page=page, filters=filters, queues=refund_dashboard.queues(),
                  kpis=refund_dashboard.kpis(), statuses=RefundStatus.values(), overrides=RefundOverride.values(),
                  currencies=refund_dashboard.currencies(), providers=Provider.values())


def _history_filters() -> refund_dashboard.HistoryFilters:
    args = request.args
    return refund_dashboard.HistoryFilters(
        status=args.get("status", ""), currency=args.get("currency", "").upper()[:3],
        provider=args.get("provider", "") if args.get("provider") in Provider.values() else "",
        override=args.get("override", ""), q=args.get("q", "").strip()[:80],
        since=_date(args.get("since")), until=_date(args.get("until")),
        requested_by_id=current_user.id if args.get("mine") else None)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        abort(400, f"{value!r} is not a date (YYYY-MM-DD).")


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


@bp.post("/<int:refund_id>/retry")
@role_required(Role.ADMIN)
def retry(refund_id: int):
    """A failed refund is tried again as a new refund (new key); the page of the new one opens."""
    try:
        again = refunds.retry(current_user, refund_id)
    except DomainError as exc:
        if exc.status_code == 403:
            abort(403)
        return _answer(refund_id, str(exc))
    flash(f"Refund #{again.id} sent again for #{refund_id}: {again.status.replace('_', ' ')}.", "success")
    if request.htmx:
        return "", 204, {"HX-Redirect": url_for(".show", refund_id=again.id)}
    return redirect(url_for(".show", refund_id=again.id), 303)


@bp.post("/<int:refund_id>/follow")
def follow(refund_id: int):
    """Ask PayPal how a processing refund ended."""
    return _act(refund_id, lambda: refunds.follow_paypal(refund_id))


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
    return _answer(refund_id, error)


def _answer(refund_id: int, error: str | None):
    if request.htmx:
        status = 422 if error else 200
        return render("refunds/show.html", "refund", refund=refunds.get_refund(refund_id), error=error), status
    flash(error or "Done.", "error" if error else "success")
    return redirect(url_for(".show", refund_id=refund_id), 303)
