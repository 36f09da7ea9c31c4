"""Customers: who is worth most (per currency), who is new, the tier mix and loyalty points outstanding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import case, func, select

from midas.extensions import db
from midas.models import Booking, Customer, Payment, PaymentKind, PaymentStatus, Tier
from midas.services.reports.base import Chart, Column, ReportFilters, Table, scoped, stream

TOP_SHOWN = 25
LTV_NOTE = ("Lifetime value: every charge and late fee that succeeded, less refunds, since the first booking — the "
            "period does not apply; location and category do. Per currency, never converted. The page shows the top "
            f"{TOP_SHOWN} in each currency; the CSV lists every customer.")
MIX_NOTE = ("New: the customer's first booking ever was made in the period. Repeat: they had booked before it. "
            "Tier mix and points are today's; with a location or category filter, only customers who booked there.")


def tables(filters: ReportFilters) -> list[Table]:
    return [
        Table("lifetime_value", "Top customers by lifetime value",
              [Column("customer", "Customer"), Column("tier", "Tier"), Column("currency", "Currency"),
               Column("value", "Lifetime value", "money"), Column("payments", "Payments", "int")],
              lambda: lifetime_value(filters), Chart("customer", "value", "Lifetime value", split="currency"),
              LTV_NOTE, preview=lambda: lifetime_value(filters, top=TOP_SHOWN)),
        Table("new_vs_repeat", "New vs repeat customers (bookings made in the period)",
              [Column("kind", "Customers"), Column("customers", "Count", "int")],
              lambda: new_vs_repeat(filters), Chart("kind", "customers", "Customers"), MIX_NOTE),
        Table("tiers", "Tier mix and loyalty points outstanding",
              [Column("tier", "Tier"), Column("customers", "Customers", "int"),
               Column("loyalty_points", "Loyalty points outstanding", "int")],
              lambda: tier_mix(filters), Chart("tier", "customers", "Customers")),
    ]


def lifetime_value(filters: ReportFilters, top: int | None = None) -> Iterator[dict[str, Any]]:
    """Per currency, customers from the most valuable down (only the first `top` of each); streamed in batches."""
    # Aggregate and rank on the booking's customer id alone; names and tiers join only the ranked rows.
    value = func.sum(Payment.amount_captured - Payment.amount_refunded)
    rank = func.row_number().over(partition_by=Payment.currency, order_by=(value.desc(), Booking.customer_id))
    ranked = scoped(
        select(Booking.customer_id, Payment.currency, value.label("value"), func.count(Payment.id).label("payments"),
               rank.label("rank"))
        .select_from(Payment).join(Booking, Payment.booking_id == Booking.id)
        .where(Payment.status.in_(PaymentStatus.paid()), Payment.kind != PaymentKind.DEPOSIT.value)
        .group_by(Booking.customer_id, Payment.currency), filters, Booking.item_id).subquery()
    stmt = (select(Customer.name, Customer.tier, ranked.c.currency, ranked.c.value, ranked.c.payments)
            .join(Customer, Customer.id == ranked.c.customer_id))
    if top:
        stmt = stmt.where(ranked.c.rank <= top)
    stmt = stmt.order_by(ranked.c.currency, ranked.c.rank)
    # The page's few rows come back in one go: a streaming (server-side) cursor forgoes PostgreSQL's parallel plans.
    for name, tier, currency, total, count in stream(stmt) if top is None else db.session.execute(stmt):
        yield {"customer": name, "tier": tier, "currency": currency, "value": int(total), "payments": count}


def new_vs_repeat(filters: ReportFilters) -> list[dict[str, Any]]:
    start, end = filters.window
    in_period = scoped(select(Booking.customer_id).where(Booking.created_at >= start, Booking.created_at < end),
                       filters, Booking.item_id).distinct().subquery()
    # Repeat: booked anywhere before the period. One hashed pass over the earlier bookings, not a minimum per customer.
    booked_before = select(Booking.customer_id).where(Booking.created_at < start)
    repeat = case((in_period.c.customer_id.in_(booked_before), 1), else_=0)
    total, repeats = db.session.execute(select(func.count(), func.coalesce(func.sum(repeat), 0))
                                        .select_from(in_period)).one()
    return [{"kind": "New", "customers": int(total) - int(repeats)}, {"kind": "Repeat", "customers": int(repeats)}]


def tier_mix(filters: ReportFilters) -> list[dict[str, Any]]:
    stmt = (select(Customer.tier, func.count(Customer.id), func.coalesce(func.sum(Customer.loyalty_points), 0))
            .where(Customer.erased_at.is_(None)).group_by(Customer.tier))
    if filters.location_id or filters.category:
        stmt = stmt.where(Customer.id.in_(scoped(select(Booking.customer_id), filters, Booking.item_id)))
    found = {tier: (count, points) for tier, count, points in db.session.execute(stmt)}
    return [{"tier": tier, "customers": found.get(tier, (0, 0))[0], "loyalty_points": int(found.get(tier, (0, 0))[1])}
            for tier in Tier.values()]
