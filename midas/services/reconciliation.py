"""Reconciliation: Stripe's PaymentIntents and Refunds of a period against our Payment and Refund rows.

Differences are found by reading only; a fix refetches Stripe's current object and hands it to
payment_events, the same state-monotonic path the webhook jobs use, so fixing twice changes nothing more.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from midas.extensions import db
from midas.integrations.stripe_gateway import ProviderError, StripeGateway, stripe_gateway
from midas.models import Payment, Refund, Setting, StaffUser, utcnow
from midas.services import DomainError, InvalidInput, audit, payment_events

LAST_REPORT = "reconciliation:last"
INTENT, REFUND = "payment_intent", "refund"
MISSING_HERE, MISSING_THERE = "missing_here", "missing_there"
STATUS_DIFFERS, AMOUNT_DIFFERS = "status_differs", "amount_differs"
LABELS = {MISSING_HERE: "Missing here", MISSING_THERE: "Missing at Stripe",
          STATUS_DIFFERS: "Status differs", AMOUNT_DIFFERS: "Amount differs"}
# Our refund rows that Stripe should know about (earlier states have not been sent to Stripe yet).
SENT_REFUNDS = ("processing", "succeeded", "failed")
MAX_PAGE_DAYS = 31  # longer periods belong to the CLI or the daily job, not a web request


class NothingToFix(DomainError):
    """The object is not at Stripe (or not ours to apply): a fix cannot come from Stripe."""

    status_code = 422


@dataclass(frozen=True)
class Difference:
    kind: str  # payment_intent | refund
    provider_id: str
    problem: str  # missing_here | missing_there | status_differs | amount_differs
    ours: str = ""
    theirs: str = ""
    payment_id: int | None = None

    @property
    def label(self) -> str:
        return LABELS[self.problem]

    @property
    def fixable(self) -> bool:
        return self.problem != MISSING_THERE


@dataclass
class Report:
    since: date
    until: date | None
    ran_at: datetime
    intents_checked: int = 0
    refunds_checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"since": self.since.isoformat(), "until": self.until.isoformat() if self.until else None,
                "ran_at": self.ran_at.isoformat(), "intents_checked": self.intents_checked,
                "refunds_checked": self.refunds_checked, "differences": [asdict(d) for d in self.differences]}

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        until = date.fromisoformat(data["until"]) if data.get("until") else None
        return cls(since=date.fromisoformat(data["since"]), until=until,
                   ran_at=datetime.fromisoformat(data["ran_at"]), intents_checked=data.get("intents_checked", 0),
                   refunds_checked=data.get("refunds_checked", 0),
                   differences=[Difference(**d) for d in data.get("differences", [])])


def reconcile(since: date, until: date | None = None) -> Report:
    """Compare every Stripe PaymentIntent and Refund created from `since` through `until` (inclusive) with ours."""
    start, end = _moment(since), _moment(until + timedelta(days=1)) if until else None
    gateway = stripe_gateway()
    report = Report(since=since, until=until, ran_at=utcnow())
    intents = list(gateway.iter_payment_intents(start, end))
    refunds = list(gateway.iter_refunds(start, end))
    report.intents_checked, report.refunds_checked = len(intents), len(refunds)
    report.differences = (_intent_differences(gateway, intents, start, end)
                          + _refund_differences(gateway, refunds, start, end))
    db.session.rollback()  # only reads were made
    return report


def _moment(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


def _in_period(column, start: datetime, end: datetime | None):
    return column >= start if end is None else (column >= start) & (column < end)


# PaymentIntents.

def _intent_differences(gateway: StripeGateway, intents: list[dict], start: datetime,
                        end: datetime | None) -> list[Difference]:
    ours = {p.provider_ref: p for p in db.session.scalars(select(Payment).where(
        Payment.provider == payment_events.STRIPE, Payment.provider_ref.in_([i["id"] for i in intents])))}
    found = [d for intent in intents for d in _compare_intent(ours.get(intent["id"]), intent)]
    unlisted = db.session.scalars(select(Payment).where(
        Payment.provider == payment_events.STRIPE, Payment.provider_ref.is_not(None),
        _in_period(Payment.created_at, start, end)).order_by(Payment.id))
    listed = {intent["id"] for intent in intents}
    for payment in unlisted:
        if payment.provider_ref not in listed:
            found += _unlisted_payment(gateway, payment)
    return found


def _compare_intent(payment: Payment | None, intent: dict) -> list[Difference]:
    theirs_money = f"{intent.get('amount')} {str(intent.get('currency') or '').upper()}"
    if payment is None:
        return [Difference(INTENT, intent["id"], MISSING_HERE, theirs=f"{intent.get('status')} {theirs_money}")]
    found = []
    expected = payment_events.status_for_intent(payment, intent).value
    if expected != payment.status and (expected, payment.status) != ("canceled", "released"):
        found.append(Difference(INTENT, intent["id"], STATUS_DIFFERS, payment.status, expected, payment.id))
    ours_money = f"{payment.amount} {payment.currency}"
    if ours_money != theirs_money:
        found.append(Difference(INTENT, intent["id"], AMOUNT_DIFFERS, ours_money, theirs_money, payment.id))
    return found


def _unlisted_payment(gateway: StripeGateway, payment: Payment) -> list[Difference]:
    """A row of the period Stripe did not list: missing there, or created just across the period's edge."""
    try:
        intent = gateway.retrieve_payment_intent(payment.provider_ref)
    except ProviderError as exc:
        if exc.code != "resource_missing":
            raise
        return [Difference(INTENT, payment.provider_ref, MISSING_THERE, f"{payment.status} {payment.amount} "
                           f"{payment.currency}", payment_id=payment.id)]
    return _compare_intent(payment, intent)


# Refunds.

def _refund_differences(gateway: StripeGateway, refunds: list[dict], start: datetime,
                        end: datetime | None) -> list[Difference]:
    rows = {r.provider_ref: r for r in db.session.scalars(select(Refund).where(
        Refund.provider_ref.in_([r["id"] for r in refunds])))}
    refunded = _refunded_by_intent(refunds)
    found = [d for refund in refunds for d in _compare_refund(rows.get(refund["id"]), refund, refunded)]
    listed = {refund["id"] for refund in refunds}
    unlisted = db.session.scalars(select(Refund).join(Refund.payment).where(
        Payment.provider == payment_events.STRIPE, Refund.provider_ref.is_not(None),
        Refund.status.in_(SENT_REFUNDS), _in_period(Refund.created_at, start, end)).order_by(Refund.id))
    for row in unlisted:
        if row.provider_ref not in listed:
            found += _unlisted_refund(gateway, row)
    return found


def _refunded_by_intent(refunds: list[dict]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for refund in refunds:
        if refund.get("status") == "succeeded":
            totals[_intent_id(refund)] += int(refund.get("amount") or 0)
    return totals


def _intent_id(refund: dict) -> str:
    intent = refund.get("payment_intent")
    return str(intent.get("id") if isinstance(intent, dict) else intent or "")


def _compare_refund(row: Refund | None, refund: dict, refunded: dict[str, int]) -> list[Difference]:
    theirs_money = f"{refund.get('amount')} {str(refund.get('currency') or '').upper()}"
    if row is None:
        return [] if _accounted_on_payment(refund, refunded) else [
            Difference(REFUND, refund["id"], MISSING_HERE, theirs=f"{refund.get('status')} {theirs_money}")]
    found = []
    expected = payment_events.REFUND_STATUS.get(refund.get("status"))
    if expected is not None and expected.value != row.status:
        found.append(Difference(REFUND, refund["id"], STATUS_DIFFERS, row.status, expected.value, row.payment_id))
    ours_money = f"{row.amount} {row.currency}"
    if ours_money != theirs_money:
        found.append(Difference(REFUND, refund["id"], AMOUNT_DIFFERS, ours_money, theirs_money, row.payment_id))
    return found


def _accounted_on_payment(refund: dict, refunded: dict[str, int]) -> bool:
    """A refund made in Stripe's dashboard has no Refund row; the payment's refunded amount records it."""
    intent_id = _intent_id(refund)
    payment = db.session.scalar(select(Payment).where(
        Payment.provider == payment_events.STRIPE, Payment.provider_ref == intent_id)) if intent_id else None
    return payment is not None and payment.amount_refunded >= refunded.get(intent_id, 0) > 0


def _unlisted_refund(gateway: StripeGateway, row: Refund) -> list[Difference]:
    try:
        refund = gateway.retrieve_refund(row.provider_ref)
    except ProviderError as exc:
        if exc.code != "resource_missing":
            raise
        return [Difference(REFUND, row.provider_ref, MISSING_THERE, f"{row.status} {row.amount} {row.currency}",
                           payment_id=row.payment_id)]
    return _compare_refund(row, refund, _refunded_by_intent([refund]))


# Fixes.

def fix(kind: str, provider_id: str, actor: StaffUser | None = None) -> str:
    """Refetch Stripe's object and apply it through payment_events (the webhook path); returns what happened."""
    prefix = {INTENT: "pi_", REFUND: "re_"}.get(kind)
    if prefix is None or not provider_id.startswith(prefix) or not provider_id[3:].isalnum():
        raise InvalidInput(f"Not a Stripe {kind or 'object'} id: {provider_id!r}.", "provider_id")
    gateway = stripe_gateway()
    try:
        outcome = _apply_intent(gateway, provider_id) if kind == INTENT else _apply_refund(gateway, provider_id)
    except ProviderError as exc:
        raise NothingToFix(f"Stripe could not give {provider_id}: {exc}") from exc
    audit.record("reconciliation.fix", kind, provider_id, actor=actor, actor_label=None if actor else "reconcile",
                 after={"outcome": outcome})
    db.session.commit()
    return outcome


def _apply_intent(gateway: StripeGateway, intent_id: str) -> str:
    intent = gateway.retrieve_payment_intent(intent_id)
    try:
        payment = payment_events.apply_payment_intent(intent, "reconciliation")
    except (payment_events.PaymentMismatch, payment_events.PaidButNotConfirmed) as exc:
        return f"Applied {intent_id}; flagged for staff: {exc}"
    if payment is None:
        raise NothingToFix(f"{intent_id} names no booking of ours; it cannot be recorded automatically.")
    return f"Applied {intent_id}: payment {payment.id} is {payment.status}."


def _apply_refund(gateway: StripeGateway, refund_id: str) -> str:
    refund = gateway.retrieve_refund(refund_id)
    try:
        row = payment_events.apply_refund(refund, "reconciliation")
    except payment_events.UnknownObject as exc:
        raise NothingToFix(f"{exc} Fix its payment first.") from exc
    if row is not None:
        return f"Applied {refund_id}: refund {row.id} is {row.status}."
    charge_id = refund.get("charge")
    if isinstance(charge_id, str) and charge_id:  # made in Stripe's dashboard: the charge says how much came back
        payment_events.apply_charge_refund(gateway.retrieve_charge(charge_id), "reconciliation")
    return f"Applied {refund_id} to its payment's refunded amount."


# The last report, kept for the reconciliation page.

def save_last(report: Report) -> None:
    """Keep the report as the Setting `reconciliation:last` (what the page shows)."""
    setting = db.session.get(Setting, LAST_REPORT)
    if setting is None:
        db.session.add(Setting(key=LAST_REPORT, value=report.to_dict(), version=1))
    else:
        setting.value, setting.version = report.to_dict(), setting.version + 1
    db.session.commit()


def last_report() -> Report | None:
    setting = db.session.get(Setting, LAST_REPORT)
    return Report.from_dict(setting.value) if setting else None


def parse_period(since: str, until: str, today: date) -> tuple[date, date | None]:
    """The page's period as dates: `since` required, at most MAX_PAGE_DAYS long, not in the future."""
    try:
        start = date.fromisoformat(since.strip())
        end = date.fromisoformat(until.strip()) if until.strip() else None
    except ValueError as exc:
        raise InvalidInput("Enter the period as dates, e.g. 2026-01-01.", "since") from exc
    if start > today or (end is not None and end < start):
        raise InvalidInput("The period must start on or before its end, and not in the future.", "since")
    if ((end or today) - start).days >= MAX_PAGE_DAYS:
        raise InvalidInput(f"Reconcile at most {MAX_PAGE_DAYS} days here; use `flask reconcile` for more.", "since")
    return start, end


def run_and_save(since: date, until: date | None = None) -> Report:
    """Reconcile the period and keep the report for the page."""
    report = reconcile(since, until)
    save_last(report)
    return report
