"""Payments area: payments, deposit holds and disputes."""

from __future__ import annotations

from flask import request

from midas.htmx import render
from midas.models import PaymentStatus, Provider
from midas.services import payments
from midas.views.guards import staff_blueprint

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
