"""Payments: success rate by provider and method, why payments fail, how much is refunded, disputes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import case, func, select

from midas.extensions import db
from midas.models import Booking, Dispute, Payment, PaymentKind, PaymentStatus
from midas.services.reports.base import Chart, Column, ReportFilters, Table, ratio_bp, scoped, scoped_payments

P = PaymentStatus
SUCCESS = [*P.paid(), P.AUTHORIZED.value, P.RELEASED.value]  # a deposit hold that was authorised succeeded
NOTE = ("Payments created in the period (UTC days). Success rate: succeeded ÷ (succeeded + failed); payments still "
        "pending or abandoned by the customer are counted apart and not in the rate.")
REFUND_NOTE = "Charges and late fees that succeeded in the period; refund rate is refunded ÷ captured, per currency."


def tables(filters: ReportFilters) -> list[Table]:
    return [
        Table("success", "Success rate by provider and method",
              [Column("provider", "Provider"), Column("method", "Method"), Column("succeeded", "Succeeded", "int"),
               Column("failed", "Failed", "int"), Column("open", "Pending or abandoned", "int"),
               Column("success_rate", "Success rate", "bp")],
              lambda: success(filters), Chart("label", "success_rate", "Success rate (%)"), NOTE),
        Table("failures", "Failure reasons",
              [Column("failure_code", "Failure code"), Column("payments", "Failed payments", "int")],
              lambda: failures(filters), Chart("failure_code", "payments", "Failed payments")),
        Table("refunds", "Refund rate",
              [Column("currency", "Currency"), Column("payments", "Payments", "int"),
               Column("refunded_payments", "Refunded (in part or whole)", "int"),
               Column("captured", "Captured", "money"), Column("refunded", "Refunded", "money"),
               Column("refund_rate", "Refund rate", "bp")],
              lambda: refunds(filters), Chart("currency", "refund_rate", "Refund rate (%)"), REFUND_NOTE),
        Table("disputes", "Disputes",
              [Column("currency", "Currency"), Column("status", "Status"), Column("disputes", "Disputes", "int"),
               Column("amount", "Amount", "money")],
              lambda: disputes(filters), Chart("status", "disputes", "Disputes", split="currency")),
    ]


def _payments(filters: ReportFilters, *columns):
    start, end = filters.window
    stmt = select(*columns).select_from(Payment).where(Payment.created_at >= start, Payment.created_at < end)
    return scoped_payments(stmt, filters)


def _count_if(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def success(filters: ReportFilters) -> Iterator[dict[str, Any]]:
    method = func.coalesce(Payment.method, "—")
    stmt = _payments(filters, Payment.provider, method, _count_if(Payment.status.in_(SUCCESS)),
                     _count_if(Payment.status == P.FAILED.value), func.count(Payment.id)
                     ).group_by(Payment.provider, method).order_by(Payment.provider, method)
    for provider, method_, succeeded, failed, total in db.session.execute(stmt):
        yield {"provider": provider, "method": method_, "label": f"{provider} · {method_}", "succeeded": succeeded,
               "failed": failed, "open": total - succeeded - failed,
               "success_rate": ratio_bp(succeeded, succeeded + failed)}


def failures(filters: ReportFilters) -> Iterator[dict[str, Any]]:
    code = func.coalesce(Payment.failure_code, "unknown")
    stmt = (_payments(filters, code, func.count(Payment.id)).where(Payment.status == P.FAILED.value)
            .group_by(code).order_by(func.count(Payment.id).desc(), code))
    for failure_code, count in db.session.execute(stmt):
        yield {"failure_code": failure_code, "payments": count}


def refunds(filters: ReportFilters) -> Iterator[dict[str, Any]]:
    start, end = filters.window
    stmt = scoped_payments(
        select(Payment.currency, func.count(Payment.id), _count_if(Payment.amount_refunded > 0),
               func.sum(Payment.amount_captured), func.sum(Payment.amount_refunded))
        .where(Payment.status.in_(P.paid()), Payment.kind != PaymentKind.DEPOSIT.value,
               Payment.succeeded_at >= start, Payment.succeeded_at < end)
        .group_by(Payment.currency).order_by(Payment.currency), filters)
    for currency, count, refunded_count, captured, refunded in db.session.execute(stmt):
        yield {"currency": currency, "payments": count, "refunded_payments": refunded_count,
               "captured": int(captured), "refunded": int(refunded),
               "refund_rate": ratio_bp(int(refunded), int(captured))}


def disputes(filters: ReportFilters) -> Iterator[dict[str, Any]]:
    start, end = filters.window
    stmt = (select(Dispute.currency, Dispute.status, func.count(Dispute.id), func.sum(Dispute.amount))
            .outerjoin(Booking, Dispute.booking_id == Booking.id)
            .where(Dispute.created_at >= start, Dispute.created_at < end)
            .group_by(Dispute.currency, Dispute.status).order_by(Dispute.currency, Dispute.status))
    for currency, status, count, amount in db.session.execute(scoped(stmt, filters, Booking.item_id)):
        yield {"currency": currency, "status": status, "disputes": count, "amount": int(amount)}
