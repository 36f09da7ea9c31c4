"""The booking funnel: how far the bookings made in the period got, and how many fell out."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import String, and_, case, cast, func, or_, select

from midas.extensions import db
from midas.models import AuditEntry, Booking, BookingStatus
from midas.services.reports.base import Chart, Column, ReportFilters, Table, ratio_bp, scoped

S = BookingStatus
NOTE = ("Bookings created in the period (UTC days). Every booking starts as a quote. A booking reached pending "
        "payment if it is, or ever was (an audit entry \"booking.pending_payment\" or \"booking.confirmed\"), held "
        "for payment or beyond; it reached confirmed if it is confirmed, in progress, completed or a no-show, or was "
        "confirmed before being cancelled. Cancellation rate: cancelled ÷ quotes. No-show rate: no-shows ÷ confirmed.")
PAST_PENDING = [s.value for s in (S.PENDING_PAYMENT, S.CONFIRMED, S.IN_PROGRESS, S.COMPLETED, S.NO_SHOW)]
PAST_CONFIRMED = [s.value for s in (S.CONFIRMED, S.IN_PROGRESS, S.COMPLETED, S.NO_SHOW)]


def tables(filters: ReportFilters) -> list[Table]:
    numbers = cache(lambda: counts(filters))  # both tables read the same single aggregate query
    return [
        Table("stages", "Funnel stages",
              [Column("stage", "Stage"), Column("bookings", "Bookings", "int"),
               Column("of_quotes", "Of quotes", "bp"), Column("from_previous", "From previous stage", "bp")],
              lambda: stages(filters, numbers()), Chart("stage", "bookings", "Bookings"), NOTE),
        Table("rates", "Cancellations and no-shows",
              [Column("outcome", "Outcome"), Column("bookings", "Bookings", "int"),
               Column("rate", "Rate", "bp"), Column("of", "Rate of")],
              lambda: rates(filters, numbers()), Chart("outcome", "rate", "Rate (%)")),
    ]


def _ever(*actions: str):
    # An uncorrelated IN: PostgreSQL hashes the matching audit entries once instead of probing them per booking,
    # and the plan's estimated cost stays low enough not to trigger JIT compilation (half a second on its own).
    return cast(Booking.id, String).in_(select(AuditEntry.entity_id).where(AuditEntry.entity_type == "booking",
                                                                            AuditEntry.action.in_(actions)))


def counts(filters: ReportFilters) -> dict[str, int]:
    """Bookings per funnel stage and outcome, in one aggregate query."""
    start, end = filters.window

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    stmt = scoped(select(
        func.count(Booking.id),
        count_if(or_(Booking.status.in_(PAST_PENDING), _ever("booking.pending_payment", "booking.confirmed"))),
        count_if(or_(Booking.status.in_(PAST_CONFIRMED),
                     and_(Booking.status == S.CANCELLED.value, _ever("booking.confirmed")))),
        count_if(Booking.status == S.COMPLETED.value),
        count_if(Booking.status == S.CANCELLED.value),
        count_if(Booking.status == S.NO_SHOW.value),
    ).where(Booking.created_at >= start, Booking.created_at < end), filters, Booking.item_id)
    keys = ("quotes", "pending_payment", "confirmed", "completed", "cancelled", "no_show")
    return dict(zip(keys, (int(n) for n in db.session.execute(stmt).one()), strict=True))


def stages(filters: ReportFilters, numbers: dict[str, int] | None = None) -> list[dict[str, Any]]:
    numbers = numbers or counts(filters)
    rows, previous = [], None
    for key, label in (("quotes", "Quotes"), ("pending_payment", "Pending payment"), ("confirmed", "Confirmed"),
                       ("completed", "Completed")):
        rows.append({"stage": label, "bookings": numbers[key], "of_quotes": ratio_bp(numbers[key], numbers["quotes"]),
                     "from_previous": None if previous is None else ratio_bp(numbers[key], previous)})
        previous = numbers[key]
    return rows


def rates(filters: ReportFilters, numbers: dict[str, int] | None = None) -> list[dict[str, Any]]:
    numbers = numbers or counts(filters)
    return [
        {"outcome": "Cancelled", "bookings": numbers["cancelled"],
         "rate": ratio_bp(numbers["cancelled"], numbers["quotes"]), "of": "quotes"},
        {"outcome": "No-show", "bookings": numbers["no_show"],
         "rate": ratio_bp(numbers["no_show"], numbers["confirmed"]), "of": "confirmed"},
    ]
