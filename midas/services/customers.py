"""Customers: profiles, search, computed segments, the customer page, duplicates, merges and privacy requests."""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, Exists, Select, and_, case, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from midas.extensions import db
from midas.models import (
    Booking,
    BookingStatus,
    Customer,
    ErrorEvent,
    Item,
    Location,
    Notification,
    NotificationStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    Role,
    StaffUser,
    Tier,
    utcnow,
)
from midas.money import exponent
from midas.services import DomainError, InvalidInput, NotFound, PermissionDenied, audit
from midas.services.auth import require_role
from midas.services.listing import Page, like, order_by, paginate

CUSTOMER_FIELDS = ["name", "email", "phone", "tier", "notes", "email_opt_in", "sms_opt_in", "marketing_consent",
                   "marketing_consent_at", "marketing_consent_source", "preferred_location_id", "loyalty_points"]
SORTS = {"name": Customer.name, "created_at": Customer.created_at, "tier": Customer.tier,
         "loyalty_points": Customer.loyalty_points}
DEFAULT_PHONE_REGION = "GB"  # national numbers of customers without a preferred location
MAX_NAME, MAX_NOTES = 160, 4000
MAX_ID = 2**31 - 1  # larger ids cannot exist; PostgreSQL would refuse to compare them
SEARCH_LIMIT = 10
RECENT_LIMIT = 20
HISTORY_PER_PAGE = 10

# Segments, computed in SQL from the data (never stored).
# Bookings that went or will go ahead count; quotes, unpaid holds, cancellations and no-shows do not.
BOOKED_STATUSES = (BookingStatus.CONFIRMED.value, BookingStatus.IN_PROGRESS.value, BookingStatus.COMPLETED.value)
NEW_WITHIN = timedelta(days=90)  # first booking (or, with none, the profile) at most this old
AT_RISK_AFTER = timedelta(days=365)  # had bookings, but none starting in this long
REPEAT_MIN_COMPLETED = 2
# Lifetime value (net of refunds, per currency, never converted) that makes a customer VIP, in major units.
# A currency not listed here never makes anyone VIP or high value by value alone.
VIP_LIFETIME_VALUE = {
    "GBP": 250_000, "EUR": 300_000, "USD": 300_000, "CHF": 300_000, "CAD": 400_000, "AUD": 450_000,
    "SGD": 400_000, "AED": 1_100_000, "QAR": 1_100_000, "SAR": 1_100_000, "BHD": 110_000, "KWD": 90_000,
    "HKD": 2_300_000, "MXN": 5_500_000, "THB": 10_000_000, "JPY": 45_000_000, "KRW": 400_000_000,
}
HIGH_LIFETIME_VALUE = {currency: value // 5 for currency, value in VIP_LIFETIME_VALUE.items()}
SEGMENTS = {"vip": "VIP", "new": "New", "repeat": "Repeat", "at_risk": "At risk", "high_value": "High value"}

# Duplicates: a very similar normalised name, among customers sharing both initials and a close length.
NAME_SIMILARITY = 0.9
DUPLICATE_CANDIDATES = 300
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")  # mailboxes that ignore dots in the local part


# Listing and search.

@dataclass
class CustomerFilters:
    q: str = ""
    tier: str = ""
    segment: str = ""
    location_id: int | None = None
    sort: str = "name"
    page: int = 1


def list_customers(filters: CustomerFilters, now: datetime | None = None) -> tuple[Page, str]:
    """Customers matching the filters; a segment filter is one SQL condition, however many customers."""
    stmt = select(Customer)
    if filters.q.strip():
        stmt = stmt.where(_search(filters.q))
    if filters.tier in Tier.values():
        stmt = stmt.where(Customer.tier == filters.tier)
    if filters.segment in SEGMENTS:
        stmt = stmt.where(segment_conditions(now or utcnow())[filters.segment])
    if filters.location_id:
        stmt = stmt.where(Customer.preferred_location_id == filters.location_id)
    stmt, sort = order_by(stmt, filters.sort, SORTS, "name", Customer.id)
    return paginate(stmt, filters.page), sort


def search_customers(q: str, limit: int = SEARCH_LIMIT) -> list[Customer]:
    """Bookable customers (not erased) whose name, email or phone matches, for search-as-you-type."""
    if len(q.strip()) < 2:
        return []
    stmt = select(Customer).where(_search(q), Customer.erased_at.is_(None)).order_by(Customer.name, Customer.id)
    return list(db.session.scalars(stmt.limit(limit)))


def _search(q: str) -> ColumnElement[bool]:
    # Emails are stored lowercase (a CHECK says so) and phones as E.164 digits, so a plain LIKE with the
    # lowercased pattern finds what ILIKE would, at half the cost over every customer.
    pattern = like(q)
    condition = or_(Customer.name.ilike(pattern, escape="\\"), Customer.email.like(pattern, escape="\\"),
                    Customer.phone.like(pattern, escape="\\"))
    digits = re.sub(r"\D", "", q).lstrip("0")
    if len(digits) >= 6:  # a number typed the national way ("020 7946 0958") still finds +442079460958
        condition = or_(condition, Customer.phone.contains(digits))
    return condition


def list_locations() -> list[Location]:
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def get_customer(customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id) if 0 < customer_id <= MAX_ID else None
    if customer is None:
        raise NotFound("No such customer.")
    return customer


# Segments.

def segment_conditions(now: datetime, customer_ids: list[int] | None = None) -> dict[str, ColumnElement[bool]]:
    """One SQL condition over Customer per segment, for a list filter or for badges on a page of rows.

    Existence tests are correlated EXISTS (PostgreSQL runs them as semi- and anti-joins); aggregates are
    IN (… GROUP BY … HAVING …) sets computed once per query, narrowed to `customer_ids` when given.
    """
    new_since, active_since = now - NEW_WITHIN, now - AT_RISK_AFTER
    return {
        "vip": or_(Customer.tier == Tier.VVIP.value,
                   Customer.id.in_(_valued_at_least(VIP_LIFETIME_VALUE, customer_ids))),
        "new": and_(~_booked(Booking.created_at < new_since),
                    or_(_booked(Booking.created_at >= new_since), Customer.created_at >= new_since)),
        "repeat": Customer.id.in_(_regulars(customer_ids)),
        "at_risk": and_(_booked(), ~_booked(Booking.starts_at >= active_since)),
        "high_value": Customer.id.in_(_valued_at_least(HIGH_LIFETIME_VALUE, customer_ids)),
    }


def segments_for(customer_ids: list[int], now: datetime | None = None) -> dict[int, list[str]]:
    """The segments of a few customers (a page of the list, one profile) in one query."""
    if not customer_ids:
        return {}
    conditions = segment_conditions(now or utcnow(), customer_ids)
    columns = [case((condition, 1), else_=0).label(name) for name, condition in conditions.items()]
    rows = db.session.execute(select(Customer.id, *columns).where(Customer.id.in_(customer_ids)))
    return {row.id: [name for name in conditions if row._mapping[name]] for row in rows}


def _booked(*conditions: ColumnElement[bool]) -> Exists:
    """The customer has a booking that went (or will go) ahead, matching `conditions`."""
    return select(Booking.id).where(Booking.customer_id == Customer.id, Booking.status.in_(BOOKED_STATUSES),
                                    *conditions).exists()


def _regulars(customer_ids: list[int] | None) -> Select:
    """Customers with at least REPEAT_MIN_COMPLETED completed bookings."""
    stmt = select(Booking.customer_id).where(Booking.status == BookingStatus.COMPLETED.value)
    return _narrowed(stmt, customer_ids).group_by(Booking.customer_id).having(func.count() >= REPEAT_MIN_COMPLETED)


def _narrowed(stmt: Select, customer_ids: list[int] | None) -> Select:
    return stmt if customer_ids is None else stmt.where(Booking.customer_id.in_(customer_ids))


# Money kept, as the reports count it: succeeded charges and late fees, captured minus refunded.
# Deposit holds are security, not revenue.
NET_REVENUE = Payment.amount_captured - Payment.amount_refunded


def _revenue() -> tuple[ColumnElement[bool], ...]:
    return Payment.status.in_(PaymentStatus.paid()), Payment.kind != PaymentKind.DEPOSIT.value


def _valued_at_least(thresholds: dict[str, int], customer_ids: list[int] | None) -> Select:
    """Customers whose net revenue reaches the threshold in at least one currency."""
    minimum = case({currency: major * 10 ** exponent(currency) for currency, major in thresholds.items()},
                   value=Payment.currency)  # NULL for other currencies: never reached
    stmt = select(Booking.customer_id).join(Payment, Payment.booking_id == Booking.id).where(*_revenue())
    return (_narrowed(stmt, customer_ids).group_by(Booking.customer_id, Payment.currency)
            .having(func.sum(NET_REVENUE) >= minimum))


# The customer page.

@dataclass
class Duplicate:
    customer: Customer
    reasons: list[str]


@dataclass
class BookingStats:
    """Bookings that went (or will go) ahead: how many, the last and next start, average total per currency."""

    count: int = 0
    last_at: datetime | None = None
    next_at: datetime | None = None
    average: dict[str, int] = field(default_factory=dict)  # currency → minor units, rounded half-up


@dataclass
class CustomerPage:
    customer: Customer
    bookings: Page
    payments: list[Payment]
    refunds: list[Refund]
    messages: list[Notification]
    counts: dict[str, int]  # payments, refunds, messages in all (the lists show the latest RECENT_LIMIT)
    lifetime_value: dict[str, int]  # currency → minor units
    stats: BookingStats
    segments: list[str]
    duplicates: list[Duplicate]


def customer_page(customer_id: int, page: int = 1, now: datetime | None = None) -> CustomerPage:
    """Everything the customer page shows, money per currency."""
    customer, now = get_customer(customer_id), now or utcnow()
    return CustomerPage(
        customer=customer, bookings=booking_history(customer.id, page), payments=_recent_payments(customer.id),
        refunds=_recent_refunds(customer.id), messages=_recent_messages(customer.id), counts=_counts(customer.id),
        lifetime_value=lifetime_value(customer.id), stats=booking_stats(customer.id, now),
        segments=segments_for([customer.id], now).get(customer.id, []), duplicates=possible_duplicates(customer),
    )


def booking_history(customer_id: int, page: int = 1) -> Page:
    stmt = (select(Booking).where(Booking.customer_id == customer_id)
            .options(joinedload(Booking.item).joinedload(Item.location))
            .order_by(Booking.starts_at.desc(), Booking.id.desc()))
    return paginate(stmt, page, HISTORY_PER_PAGE)


def lifetime_value(customer_id: int) -> dict[str, int]:
    """Net revenue from the customer per currency, in minor units (currencies are never added together)."""
    rows = db.session.execute(
        select(Payment.currency, func.sum(NET_REVENUE)).join(Booking, Payment.booking_id == Booking.id)
        .where(Booking.customer_id == customer_id, *_revenue()).group_by(Payment.currency).order_by(Payment.currency)
    )
    return {currency: int(total) for currency, total in rows}


def booking_stats(customer_id: int, now: datetime) -> BookingStats:
    booked = and_(Booking.customer_id == customer_id, Booking.status.in_(BOOKED_STATUSES))
    rows = db.session.execute(select(Booking.currency, func.count(), func.sum(Booking.total_amount)).where(booked)
                              .group_by(Booking.currency).order_by(Booking.currency)).all()
    return BookingStats(
        count=sum(count for _, count, _ in rows),
        last_at=db.session.scalar(select(func.max(Booking.starts_at)).where(booked, Booking.starts_at <= now)),
        next_at=db.session.scalar(select(func.min(Booking.starts_at)).where(booked, Booking.starts_at > now)),
        average={currency: (2 * int(total) + count) // (2 * count) for currency, count, total in rows},
    )


def _recent_payments(customer_id: int) -> list[Payment]:
    stmt = (select(Payment).join(Payment.booking).where(Booking.customer_id == customer_id)
            .options(joinedload(Payment.booking).joinedload(Booking.item).joinedload(Item.location))
            .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(RECENT_LIMIT))
    return list(db.session.scalars(stmt))


def _recent_refunds(customer_id: int) -> list[Refund]:
    stmt = (select(Refund).join(Refund.booking).where(Booking.customer_id == customer_id)
            .options(joinedload(Refund.booking).joinedload(Booking.item).joinedload(Item.location))
            .order_by(Refund.created_at.desc(), Refund.id.desc()).limit(RECENT_LIMIT))
    return list(db.session.scalars(stmt))


def _recent_messages(customer_id: int) -> list[Notification]:
    stmt = (select(Notification).where(Notification.customer_id == customer_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(RECENT_LIMIT))
    return list(db.session.scalars(stmt))


def _counts(customer_id: int) -> dict[str, int]:
    of_customer = Booking.customer_id == customer_id
    return {
        "payments": db.session.scalar(select(func.count()).select_from(Payment).join(Payment.booking)
                                      .where(of_customer)) or 0,
        "refunds": db.session.scalar(select(func.count()).select_from(Refund).join(Refund.booking)
                                     .where(of_customer)) or 0,
        "messages": db.session.scalar(select(func.count()).select_from(Notification)
                                      .where(Notification.customer_id == customer_id)) or 0,
    }


# Profiles.

@dataclass
class CustomerInput:
    """A profile as typed by staff; `tier` None keeps the current tier (standard for a new customer)."""

    name: str
    email: str
    phone: str = ""
    tier: str | None = None
    email_opt_in: bool = True
    sms_opt_in: bool = True
    marketing_consent: bool = False
    notes: str = ""
    preferred_location_id: int | None = None


def create_customer(actor: StaffUser, data: CustomerInput, now: datetime | None = None) -> Customer:
    """Add a customer (concierge and up; a tier other than standard needs an admin), audited."""
    require_role(actor, Role.CONCIERGE)
    customer = Customer(tier=Tier.STANDARD.value, marketing_consent=False, loyalty_points=0)
    values = _validated(actor, customer, data, now or utcnow())
    for name, value in values.items():
        setattr(customer, name, value)
    db.session.add(customer)
    _flush_profile()
    audit.record("customer.created", "customer", customer.id, actor=actor,
                 after=audit.snapshot(customer, CUSTOMER_FIELDS))
    db.session.commit()
    return customer


def update_customer(actor: StaffUser, customer_id: int, data: CustomerInput, now: datetime | None = None) -> Customer:
    """Change a profile (concierge and up; the tier only by an admin), audited with what changed."""
    require_role(actor, Role.CONCIERGE)
    customer = get_editable_customer(customer_id)
    values = _validated(actor, customer, data, now or utcnow())
    before = audit.snapshot(customer, CUSTOMER_FIELDS)
    for name, value in values.items():
        setattr(customer, name, value)
    after = audit.snapshot(customer, CUSTOMER_FIELDS)
    changed = [name for name in CUSTOMER_FIELDS if before[name] != after[name]]
    _flush_profile()
    if changed:
        audit.record("customer.updated", "customer", customer.id, actor=actor,
                     before={name: before[name] for name in changed}, after={name: after[name] for name in changed})
    db.session.commit()
    return customer


def _validated(actor: StaffUser, customer: Customer, data: CustomerInput, now: datetime) -> dict[str, Any]:
    """Every column the form sets, checked before anything is assigned: bad input changes nothing."""
    tier = _tier(actor, customer.tier, data.tier)
    location = _location(data.preferred_location_id)
    email = normalize_email(data.email)
    _email_free(email, customer.id)
    return {
        "name": _text(data.name, "name", MAX_NAME, required=True), "email": email,
        "phone": normalize_phone(data.phone, location.country if location else DEFAULT_PHONE_REGION),
        "tier": tier, "notes": _text(data.notes, "notes", MAX_NOTES, multiline=True),
        "email_opt_in": bool(data.email_opt_in), "sms_opt_in": bool(data.sms_opt_in),
        "preferred_location_id": location.id if location else None,
        **_consent(customer, bool(data.marketing_consent), actor, now),
    }


def normalize_email(text: str) -> str:
    """The canonical lowercase form of a customer's email, or InvalidInput saying what is wrong."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"Enter a valid email address: {exc}", "email") from exc


def normalize_phone(text: str, region: str = DEFAULT_PHONE_REGION) -> str | None:
    """'+44 20 7946 0958', or '020 7946 0958' read in `region`, → '+442079460958' (E.164); blank → None."""
    text = text.strip()
    if not text:
        return None
    hint = f"Enter a phone number such as +44 20 7946 0958 (numbers without a + are read as {region})."
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(hint, "phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"That is not a valid phone number. {hint}", "phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _text(value: str, field: str, max_length: int, required: bool = False, multiline: bool = False) -> str:
    text = (value or "").strip()
    allowed = "\n\r\t" if multiline else ""
    if any(unicodedata.category(char) == "Cc" and char not in allowed for char in text):
        raise InvalidInput("Remove the control characters from this field.", field)
    if required and not text:
        raise InvalidInput("This field is required.", field)
    if len(text) > max_length:
        raise InvalidInput(f"At most {max_length:,} characters.", field)
    return text


def _tier(actor: StaffUser, current: str | None, wanted: str | None) -> str:
    current = current or Tier.STANDARD.value
    if wanted is None or wanted == current:
        return current
    if wanted not in Tier.values():
        raise InvalidInput("Choose standard, premium or VVIP.", "tier")
    if not actor.has_role(Role.ADMIN):
        raise PermissionDenied("Only an admin or owner can change a customer's tier.")
    return wanted


def _location(location_id: int | None) -> Location | None:
    if location_id is None:
        return None
    location = db.session.get(Location, location_id) if 0 < location_id <= MAX_ID else None
    if location is None:
        raise InvalidInput("Choose a location.", "preferred_location_id")
    return location


def _email_free(email: str, customer_id: int | None) -> None:
    stmt = select(Customer.id, Customer.name).where(Customer.email == email)
    if customer_id is not None:
        stmt = stmt.where(Customer.id != customer_id)
    taken = db.session.execute(stmt).first()
    if taken:
        raise InvalidInput(f"{email} is already the email of {taken.name} (customer #{taken.id}).", "email")


def _consent(customer: Customer, wanted: bool, actor: StaffUser, now: datetime) -> dict[str, Any]:
    """Marketing consent; when it changes, when and by whom is recorded with it."""
    if wanted == bool(customer.marketing_consent):
        return {"marketing_consent": wanted}
    return {"marketing_consent": wanted, "marketing_consent_at": now,
            "marketing_consent_source": f"staff:{actor.email}"[:80]}


def _flush_profile() -> None:
    """A concurrent save of the same email becomes the same field error as one we saw coming."""
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        if "email" not in str(exc.orig).lower():
            raise
        raise InvalidInput("This email was just saved for another customer.", "email") from exc


def get_editable_customer(customer_id: int) -> Customer:
    """A customer whose profile may still change: not one erased on request."""
    customer = get_customer(customer_id)
    if customer.erased_at is not None:
        raise DomainError("This customer's personal data was erased on request; the profile cannot be changed.")
    return customer


# Duplicates and merges.

def possible_duplicates(customer: Customer) -> list[Duplicate]:
    """Profiles that may be the same person: same mailbox, same phone, or a very similar name."""
    if customer.erased_at is not None:
        return []
    found: dict[int, Duplicate] = {}
    for reason, others in (("Same email", _same_mailbox(customer)), ("Same phone", _same_phone(customer)),
                           ("Similar name", _similar_names(customer))):
        for other in others:
            found.setdefault(other.id, Duplicate(other, [])).reasons.append(reason)
    return sorted(found.values(), key=lambda duplicate: (-len(duplicate.reasons), duplicate.customer.id))


def _others(customer: Customer) -> Select:
    return select(Customer).where(Customer.id != customer.id, Customer.erased_at.is_(None))


def _same_mailbox(customer: Customer) -> list[Customer]:
    """Equal once a "+tag" is dropped from the local part; Gmail addresses also ignoring dots."""
    local, _, domain = customer.email.partition("@")
    base = local.split("+", 1)[0]
    tagged = Customer.email.like(f"{_literal(base)}+%@{_literal(domain)}", escape="\\")
    condition = or_(Customer.email == f"{base}@{domain}", tagged)
    if domain in GMAIL_DOMAINS:
        condition = or_(condition, and_(Customer.email.like(f"%@{domain}"),
                                        func.replace(Customer.email, ".", "") == f"{base}@{domain}".replace(".", "")))
    return list(db.session.scalars(_others(customer).where(condition).limit(DUPLICATE_CANDIDATES)))


def _same_phone(customer: Customer) -> list[Customer]:
    if not customer.phone:
        return []
    return list(db.session.scalars(_others(customer).where(Customer.phone == customer.phone)
                                   .limit(DUPLICATE_CANDIDATES)))


def _similar_names(customer: Customer) -> list[Customer]:
    """Compared in Python only among the few customers with both initials and a length that could reach 0.9."""
    name = _normal_name(customer.name)
    words = name.split()
    if not words:
        return []
    first, last = words[0][0], words[-1][0]
    # A ratio of 0.9 needs the shorter name to be at least 9/11 of the longer one.
    shortest, longest = len(customer.name) * 9 // 11, -(-len(customer.name) * 11 // 9)
    stmt = _others(customer).where(
        _starting_with(first),
        func.lower(Customer.name).like(f"{_literal(first)}%", escape="\\"),
        func.lower(Customer.name).like(f"%{_literal(last)}%" if len(words) == 1 else f"% {_literal(last)}%",
                                       escape="\\"),
        func.length(Customer.name).between(shortest, longest),
    ).limit(DUPLICATE_CANDIDATES)
    return [other for other in db.session.scalars(stmt)
            if difflib.SequenceMatcher(None, name, _normal_name(other.name)).ratio() >= NAME_SIMILARITY]


def _starting_with(letter: str) -> ColumnElement[bool]:
    """A superset of names starting with `letter` in either case, as ranges ix_customers_name can serve.

    lower(name) LIKE 'y%' alone reads every customer; this leaves only those of one initial to filter.
    """
    if not ("a" <= letter <= "z"):
        return true()
    ranges = [and_(Customer.name >= start, Customer.name < chr(ord(start) + 1)) for start in (letter.upper(), letter)]
    return or_(*ranges)


def _normal_name(name: str) -> str:
    """Lowercase, accents and punctuation dropped, spaces collapsed: 'Zoë  O'Brien' → 'zoe obrien'."""
    letters = unicodedata.normalize("NFKD", name.lower())
    kept = "".join(char for char in letters if char.isalnum() or char.isspace())
    return " ".join(kept.split())


def _literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


MERGE_FIELDS = ["name", "email", "phone", "notes", "preferred_location_id", "loyalty_points", "marketing_consent",
                "marketing_consent_at", "marketing_consent_source"]


def merge_customers(actor: StaffUser, survivor_id: int, duplicate_id: int) -> Customer:
    """Fold a duplicate into the survivor (admin or owner), in one transaction, then delete the duplicate.

    Bookings (and with them payments and refunds), messages and error events move; the survivor keeps its
    fields and fills empty ones; points add up; the more recent marketing consent wins with its time and source.
    """
    require_role(actor, Role.ADMIN)
    if survivor_id == duplicate_id:
        raise InvalidInput("A profile cannot be merged into itself.", "duplicate_id")
    survivor = get_customer(survivor_id)
    duplicate = db.session.get(Customer, duplicate_id) if 0 < duplicate_id <= MAX_ID else None
    if duplicate is None:
        raise InvalidInput(f"There is no customer #{duplicate_id}.", "duplicate_id")
    if survivor.erased_at or duplicate.erased_at:
        raise InvalidInput("Erased profiles cannot be merged.", "duplicate_id")
    before = audit.snapshot(survivor, MERGE_FIELDS)
    gone = audit.snapshot(duplicate, CUSTOMER_FIELDS)
    moved = _move_records(duplicate.id, survivor.id)
    _fill_from(survivor, duplicate)
    audit.record("customer.merged", "customer", survivor.id, actor=actor,
                 before={**before, "duplicate_id": duplicate.id},
                 after={**audit.snapshot(survivor, MERGE_FIELDS), "duplicate_id": duplicate.id, **moved})
    audit.record("customer.merged_away", "customer", duplicate.id, actor=actor, before=gone,
                 after={"survivor_id": survivor.id})
    db.session.delete(duplicate)
    db.session.commit()
    return survivor


def _move_records(from_id: int, to_id: int) -> dict[str, int]:
    moved = {}
    for model, key in ((Booking, "bookings_moved"), (Notification, "messages_moved"),
                       (ErrorEvent, "error_events_moved")):
        result = db.session.execute(update(model).where(model.customer_id == from_id).values(customer_id=to_id)
                                    .execution_options(synchronize_session="fetch"))
        moved[key] = result.rowcount
    return moved


def _fill_from(survivor: Customer, duplicate: Customer) -> None:
    for name in ("phone", "notes", "preferred_location_id"):
        if not getattr(survivor, name):
            setattr(survivor, name, getattr(duplicate, name))
    survivor.loyalty_points += duplicate.loyalty_points
    if duplicate.marketing_consent_at and (survivor.marketing_consent_at is None
                                           or duplicate.marketing_consent_at > survivor.marketing_consent_at):
        survivor.marketing_consent = duplicate.marketing_consent
        survivor.marketing_consent_at = duplicate.marketing_consent_at
        survivor.marketing_consent_source = duplicate.marketing_consent_source


# Privacy requests.

def export_customer(actor: StaffUser, customer_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Everything held about a customer, as JSON-ready data (admin or owner); the export itself is audited."""
    require_role(actor, Role.ADMIN)
    customer = get_customer(customer_id)
    bookings = db.session.scalars(
        select(Booking).where(Booking.customer_id == customer.id).order_by(Booking.starts_at, Booking.id)
        .options(joinedload(Booking.item), selectinload(Booking.lines),
                 selectinload(Booking.payments).selectinload(Payment.refunds))
    ).unique().all()
    messages = db.session.scalars(select(Notification).where(Notification.customer_id == customer.id)
                                  .order_by(Notification.created_at, Notification.id)).all()
    data = {"exported_at": _iso(now or utcnow()), "customer": _profile_data(customer),
            "bookings": [_booking_data(booking) for booking in bookings],
            "notifications": [_message_data(message) for message in messages]}
    audit.record("customer.exported", "customer", customer.id, actor=actor,
                 after={"bookings": len(bookings), "notifications": len(messages)})
    db.session.commit()
    return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _profile_data(customer: Customer) -> dict[str, Any]:
    fields = ["id", "name", "email", "phone", "tier", "notes", "loyalty_points", "email_opt_in", "sms_opt_in",
              "marketing_consent", "marketing_consent_source", "preferred_location_id"]
    return {**{name: getattr(customer, name) for name in fields},
            "preferred_location": customer.preferred_location.name if customer.preferred_location else None,
            "marketing_consent_at": _iso(customer.marketing_consent_at), "created_at": _iso(customer.created_at),
            "erased_at": _iso(customer.erased_at)}


def _booking_data(booking: Booking) -> dict[str, Any]:
    return {
        "reference": booking.reference, "status": booking.status, "item": booking.item.name,
        "starts_at": _iso(booking.starts_at), "ends_at": _iso(booking.ends_at), "currency": booking.currency,
        "total_amount": booking.total_amount, "deposit_amount": booking.deposit_amount, "notes": booking.notes,
        "special_requests": booking.special_requests, "cancel_reason": booking.cancel_reason,
        "created_at": _iso(booking.created_at),
        "lines": [{"kind": line.kind, "description": line.description, "amount": line.amount}
                  for line in booking.lines],
        "payments": [_payment_data(payment) for payment in booking.payments],
    }


def _payment_data(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id, "provider": payment.provider, "kind": payment.kind, "status": payment.status,
        "amount": payment.amount, "currency": payment.currency, "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded, "method": payment.method, "created_at": _iso(payment.created_at),
        "succeeded_at": _iso(payment.succeeded_at),
        "refunds": [{"id": refund.id, "amount": refund.amount, "currency": refund.currency, "status": refund.status,
                     "reason": refund.reason, "created_at": _iso(refund.created_at),
                     "succeeded_at": _iso(refund.succeeded_at)} for refund in payment.refunds],
    }


def _message_data(message: Notification) -> dict[str, Any]:
    return {"channel": message.channel, "template": message.template, "recipient": message.recipient,
            "subject": message.subject, "status": message.status, "context": message.context,
            "created_at": _iso(message.created_at), "sent_at": _iso(message.sent_at)}


ERASED_NAME, ERASED_EMAIL = "Erased customer #{id}", "erased-{id}@invalid"


def erase_customer(actor: StaffUser, customer_id: int, now: datetime | None = None) -> Customer:
    """Anonymise a customer on request (admin or owner); bookings and money records stay for the accounts.

    Name, email, phone and notes go, consent and opt-ins are switched off, and the customer's messages lose
    their recipient and content (pending ones are cancelled). Erasing twice changes nothing the second time.
    """
    require_role(actor, Role.ADMIN)
    customer = get_customer(customer_id)
    if customer.erased_at is not None:
        return customer
    now = now or utcnow()
    customer.name, customer.email = ERASED_NAME.format(id=customer.id), ERASED_EMAIL.format(id=customer.id)
    customer.phone, customer.notes = None, ""
    customer.email_opt_in = customer.sms_opt_in = customer.marketing_consent = False
    customer.marketing_consent_at, customer.marketing_consent_source = now, "erasure request"
    customer.erased_at = now
    messages = _redact_messages(customer.id)
    # The entry says what happened, never what the data was.
    audit.record("customer.erased", "customer", customer.id, actor=actor, before={"erased_at": None},
                 after={"erased_at": now, "anonymised": "name, email, phone, notes, consent", "messages": messages})
    db.session.commit()
    return customer


def _redact_messages(customer_id: int) -> int:
    of_customer = Notification.customer_id == customer_id
    pending = Notification.status == NotificationStatus.PENDING.value
    db.session.execute(update(Notification).where(of_customer, pending)
                       .values(status=NotificationStatus.CANCELLED.value).execution_options(synchronize_session="fetch"))
    result = db.session.execute(update(Notification).where(of_customer)
                                .values(recipient="erased", subject=None, context={})
                                .execution_options(synchronize_session="fetch"))
    return result.rowcount
