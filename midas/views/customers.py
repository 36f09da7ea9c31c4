"""Customers area."""

from __future__ import annotations

from flask import request

from midas.htmx import render
from midas.models import Tier
from midas.services import bookings, customers
from midas.views.guards import staff_blueprint

bp = staff_blueprint("customers", __name__, url_prefix="/customers")


@bp.get("")
def index():
    filters = customers.CustomerFilters(
        q=request.args.get("q", ""), tier=request.args.get("tier", ""),
        sort=request.args.get("sort", ""), page=request.args.get("page", 1, type=int),
    )
    page, sort = customers.list_customers(filters)
    return render("customers/index.html", "results", page=page, sort=sort, filters=filters, tiers=Tier.values())


@bp.get("/<int:customer_id>")
def show(customer_id: int):
    customer = customers.get_customer(customer_id)
    history, _ = bookings.list_bookings(bookings.BookingFilters(customer_id=customer.id))
    return render("customers/show.html", customer=customer, bookings=history)
