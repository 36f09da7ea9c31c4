"""Bookings area."""

from __future__ import annotations

from flask import request

from midas.htmx import render
from midas.models import BookingStatus
from midas.services import bookings
from midas.views.guards import staff_blueprint

bp = staff_blueprint("bookings", __name__, url_prefix="/bookings")


@bp.get("")
def index():
    filters = bookings.BookingFilters(
        q=request.args.get("q", ""), status=request.args.get("status", ""),
        sort=request.args.get("sort", ""), page=request.args.get("page", 1, type=int),
    )
    page, sort = bookings.list_bookings(filters)
    return render("bookings/index.html", "results", page=page, sort=sort, filters=filters,
                  statuses=BookingStatus.values())


@bp.get("/<reference>")
def show(reference: str):
    return render("bookings/show.html", booking=bookings.get_booking(reference))
