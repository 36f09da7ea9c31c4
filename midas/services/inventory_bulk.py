"""Bulk work on the fleet: CSV export of a filtered list, all-or-nothing CSV import, price and status changes."""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select

from midas.database import begin_write
from midas.extensions import db
from midas.models import AuditEntry, Category, Item, ItemStatus, Location, Role, StaffUser, utcnow
from midas.money import apply_bp, exponent, format_money, parse_major
from midas.services import DomainError, InvalidInput, audit
from midas.services.auth import require_role
from midas.services.inventory import MAX_AMOUNT, ItemFilters, item_query

MINIMUM_ROLE = Role.ADMIN  # import and bulk changes; views and services check the same constant
COLUMNS = [
    "id", "name", "category", "location_code", "currency", "daily_rate", "security_deposit", "insurance_rate_bp",
    "buffer_before_hours", "buffer_after_hours", "min_days", "status", "specs",
]
REQUIRED = ["name", "category", "location_code", "daily_rate"]
MAX_ROWS = 5_000
MAX_BYTES = 2 * 1024 * 1024
MAX_PERCENT_BP = 100_000  # +1000 %
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection
BATCH = "inventory_batch"  # audit entity of a whole import or bulk change; its id is the form's one-time token
EXPORT_BATCH_SIZE = 500
TEMPLATE_ROWS = [
    ["", "Ferrari SF90 Stradale", "car", "MCO", "EUR", "1800.00", "10000.00", "350", "2", "2", "1", "active",
     '{"seats": 2, "power_hp": 986}'],
    ["", "Château Lumière", "property", "MCO", "", "12500", "25000", "0", "24", "24", "3", "",
     '{"bedrooms": 8, "pool": true}'],
]


class ImportRejected(DomainError):
    """The file was refused as a whole; `errors` lists every problem found, row by row."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"Nothing was imported: {len(errors)} problem{'s' if len(errors) != 1 else ''} found.")
        self.errors = errors


class AlreadyApplied(DomainError):
    """The same form was submitted again (double click, back button): the first submission already acted."""

    status_code = 409


def new_token() -> str:
    """A one-time token for an import or bulk form, so submitting it twice acts once."""
    return secrets.token_urlsafe(16)


# --- Export ---------------------------------------------------------------------------------------------------


def matching_items(filters: ItemFilters) -> Select:
    """Every item the inventory list shows for these filters, in the list's order, without pagination."""
    return item_query(filters)


def export_csv(filters: ItemFilters) -> Iterator[str]:
    """The filtered list as CSV, one line at a time; a BOM first so spreadsheets read accents as UTF-8."""
    yield "\ufeff" + csv_line(COLUMNS)
    stmt = matching_items(filters).join(Item.location).add_columns(Location.code)
    for item, code in db.session.execute(stmt.execution_options(yield_per=EXPORT_BATCH_SIZE)):
        yield csv_line(_export_cells(item, code))


def export_filename() -> str:
    return f"midas-inventory-{utcnow():%Y-%m-%d}.csv"


def template_csv() -> str:
    """The import template: the header and two example rows."""
    return "\ufeff" + "".join(csv_line(row) for row in [COLUMNS, *TEMPLATE_ROWS])


def csv_line(cells: list[Any]) -> str:
    """One CSV record; any cell a spreadsheet would run as a formula gets a leading quote."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([neutralise(str(cell)) for cell in cells])
    return buffer.getvalue()


def neutralise(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def major_units(amount: int, currency: str) -> str:
    """180000 GBP → '1800.00', 350000 JPY → '350000': plain text that parse_major reads back exactly."""
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**digits)
    return f"{sign}{major}" + (f".{minor:0{digits}d}" if digits else "")


def _export_cells(item: Item, location_code: str) -> list[Any]:
    return [
        item.id, item.name, item.category, location_code, item.currency,
        major_units(item.daily_rate, item.currency), major_units(item.security_deposit, item.currency),
        item.insurance_rate_bp, item.buffer_before_hours, item.buffer_after_hours, item.min_days, item.status,
        json.dumps(item.specs or {}, ensure_ascii=False, sort_keys=True),
    ]


# --- Import ---------------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def count(self) -> int:
        return self.created + self.updated + self.unchanged

    @property
    def message(self) -> str:
        text = f"Imported {self.count} item{'s' if self.count != 1 else ''}."
        if self.updated or self.unchanged:
            text += f" {self.created} new, {self.updated} updated, {self.unchanged} unchanged."
        return text


@dataclass
class _Row:
    number: int  # as the spreadsheet shows it: the header is row 1
    cells: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    item: Item | None = None  # the item an `id` cell names, for updates


def import_items(actor: StaffUser, data: bytes, token: str) -> ImportResult:
    """Validate every row of a CSV file, then create (or, rows with an id, update) all items in one transaction."""
    require_role(actor, MINIMUM_ROLE)
    _check_token(token)
    rows = read_rows(data)
    begin_write(db.session())
    _refuse_repeat(token)
    _validate_rows(rows)
    errors = [f"Row {row.number}: {error}" for row in rows for error in row.errors]
    if errors:
        db.session.rollback()
        raise ImportRejected(errors)
    result = _save_rows(actor, rows)
    audit.record("inventory.imported", BATCH, token, actor=actor,
                 after={"count": result.count, "created": result.created, "updated": result.updated})
    db.session.commit()
    return result


def read_rows(data: bytes) -> list[_Row]:
    """Decode and split the file; file-level problems (size, encoding, header) refuse it at once."""
    if len(data) > MAX_BYTES:
        raise ImportRejected(["The file is larger than 2 MB: split it into smaller files."])
    records = _records(_decode(data))
    if not records or not any(cell.strip() for cell in records[0]):
        raise ImportRejected(["The file is empty: start from the template, which has the header row."])
    header = _header(records[0])
    rows = [_row(number, record, header) for number, record in enumerate(records[1:], start=2)
            if any(cell.strip() for cell in record)]
    if not rows:
        raise ImportRejected(["The file has a header but no items."])
    if len(rows) > MAX_ROWS:
        raise ImportRejected([f"The file has {len(rows):,} items; at most {MAX_ROWS:,} per file: split it."])
    return rows


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected([f"The file is not UTF-8 text (byte {exc.start + 1}): save it as “CSV UTF-8”."]) from exc
    if "\x00" in text:  # a workbook or UTF-16 text, not CSV; PostgreSQL would refuse the NUL anyway
        raise ImportRejected(["The file contains NUL bytes, so it is not CSV text: save it as “CSV UTF-8”."])
    return text


def _records(text: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        return list(reader)
    except csv.Error as exc:
        raise ImportRejected([f"Line {reader.line_num}: the CSV could not be read ({exc})."]) from exc


def _header(cells: list[str]) -> list[str]:
    header = [cell.strip().lower() for cell in cells]
    problems = [f"Unknown column {_shown(name)}: the columns are {', '.join(COLUMNS)}."
                for name in header if name not in COLUMNS]
    problems += [f"Column {name!r} appears more than once." for name in sorted(set(header)) if header.count(name) > 1]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        problems.append(f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.")
    if problems:
        raise ImportRejected(problems)
    return header


def _row(number: int, record: list[str], header: list[str]) -> _Row:
    row = _Row(number, dict(zip(header, (cell.strip() for cell in record), strict=False)))
    if any(cell.strip() for cell in record[len(header):]):
        row.errors.append(f"has {len(record)} cells but the header has {len(header)} columns")
    return row


def _validate_rows(rows: list[_Row]) -> None:
    locations = {location.code: location for location in db.session.scalars(select(Location))}
    items = _items_named_by_id(rows)
    first_row_of: dict[int, int] = {}
    for row in rows:
        _parse_row(row, locations)
        item_id = row.values.pop("id", None)
        if item_id is None:
            continue
        row.item = items.get(item_id)
        if row.item is None:
            row.errors.append(f"id: there is no item {item_id} (leave id blank to create a new item)")
        elif first_row_of.setdefault(item_id, row.number) != row.number:
            row.errors.append(f"id: item {item_id} is already updated by row {first_row_of[item_id]}")


def _items_named_by_id(rows: list[_Row]) -> dict[int, Item]:
    ids = {_small_int(row.cells.get("id", "")) for row in rows} - {None}
    if not ids:
        return {}
    return {item.id: item for item in db.session.scalars(select(Item).where(Item.id.in_(ids)).with_for_update())}


def _parse_row(row: _Row, locations: dict[str, Location]) -> None:
    """Fill row.values with the row's non-blank cells, parsed; each problem goes to row.errors."""
    hostile = [column for column in COLUMNS if row.cells.get(column, "").startswith(FORMULA_STARTS)]
    row.errors += [f"{column}: {_shown(row.cells[column])} starts with {row.cells[column][0]!r}; cells starting "
                   "with = + - @ are refused because spreadsheets run them as formulas" for column in hostile]
    row.errors += [f"{column}: is required" for column in REQUIRED if not row.cells.get(column)]
    location = None if "location_code" in hostile else _row_location(row, locations)
    for column, parse in _parsers(location).items():
        raw = row.cells.get(column, "")
        if raw and parse is not None and column not in hostile:
            _take(row, column, raw, parse)


def _row_location(row: _Row, locations: dict[str, Location]) -> Location | None:
    """The row's location, which also sets its currency; None when missing or unknown."""
    code = row.cells.get("location_code", "")
    location = locations.get(code.upper())
    if location is None:
        if code:
            row.errors.append(f"location_code: no location has the code {_shown(code)}")
        return None
    row.values.update(location_id=location.id, currency=location.currency)
    return location


def _take(row: _Row, column: str, raw: str, parse: Callable[[str], Any]) -> None:
    try:
        row.values[column] = parse(raw)
    except ValueError as exc:
        row.errors.append(f"{column}: {exc}")


def _parsers(location: Location | None) -> dict[str, Callable[[str], Any] | None]:
    """How each column is read; currency and amounts need the row's location (None: cannot be checked yet)."""
    currency = location.currency if location else None
    return {
        "id": _whole_number(1, 10**15),
        "name": _name,
        "category": _one_of(Category.values()),
        "currency": _same_currency(currency) if currency else None,
        "daily_rate": _amount(currency, minimum=1) if currency else None,
        "security_deposit": _amount(currency, minimum=0) if currency else None,
        "insurance_rate_bp": _whole_number(0, 10_000),
        "buffer_before_hours": _whole_number(0, 720),
        "buffer_after_hours": _whole_number(0, 720),
        "min_days": _whole_number(1, 365),
        "status": _one_of(ItemStatus.values()),
        "specs": _specs,
    }


def _name(raw: str) -> str:
    if len(raw) > 160:
        raise ValueError(f"is {len(raw)} characters long; at most 160")
    if any(unicodedata.category(char) == "Cc" for char in raw):
        raise ValueError(f"{_shown(raw)} contains control characters (line breaks, tabs)")
    return raw


def _one_of(choices: list[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(f"{_shown(raw)} is not one of {', '.join(choices)}")
        return raw.lower()

    return parse


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        number = _small_int(raw)
        if number is None or not low <= number <= high:
            raise ValueError(f"{_shown(raw)} is not a whole number from {low:,} to {high:,}")
        return number

    return parse


def _small_int(raw: str) -> int | None:
    """Plain ASCII digits, short enough to be a real count or id; None otherwise."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def _same_currency(currency: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.upper() != currency:
            raise ValueError(f"{_shown(raw)} does not match the location's currency {currency}")
        return currency

    return parse


def _amount(currency: str, minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            minor = parse_major(raw, currency) if len(raw) <= 32 and raw.isascii() else None
        except ValueError:
            minor = None
        if minor is None:
            raise ValueError(f"{_shown(raw)} is not an amount in {currency} (e.g. {major_units(180000, currency)})")
        if minor > MAX_AMOUNT:
            raise ValueError(f"{_shown(raw)} is too large: at most {format_money(MAX_AMOUNT, currency)}")
        if minor < minimum:
            raise ValueError(f"{_shown(raw)} must be {'more than' if minimum else 'at least'} zero")
        return minor

    return parse


def _specs(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise ValueError(f'{_shown(raw)} is not a JSON object such as {{"seats": 2}}')
    return value


def _shown(raw: str) -> str:
    """A cell quoted for an error message, shortened so a hostile 100 kB cell does not flood the page."""
    return repr(raw if len(raw) <= 40 else raw[:37] + "…")


def _save_rows(actor: StaffUser, rows: list[_Row]) -> ImportResult:
    result = ImportResult()
    for row in rows:
        if row.item is None:
            db.session.add(Item(**row.values))
            result.created += 1
        elif _update_item(actor, row.item, row.values):
            result.updated += 1
        else:
            result.unchanged += 1
    db.session.flush()
    return result


def _update_item(actor: StaffUser, item: Item, values: dict[str, Any]) -> bool:
    """Apply an import row to an existing item; blank optional cells kept its values. True if anything changed."""
    changed = {key: value for key, value in values.items() if getattr(item, key) != value}
    if not changed:
        return False
    before = audit.snapshot(item, list(changed))
    for key, value in changed.items():
        setattr(item, key, value)
    audit.record("item.updated", "item", item.id, actor=actor, before=before, after=changed)
    return True


# --- Bulk price and status changes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkChange:
    action: str  # "price" or "status"
    percent: str = ""
    status: str = ""


@dataclass
class PlannedChange:
    item: Item
    before: Any
    after: Any


@dataclass
class BulkPlan:
    change: BulkChange
    matched: int
    changes: list[PlannedChange]
    scope: str = ""
    basis_points: int | None = None
    token: str = field(default_factory=new_token)

    @property
    def count(self) -> int:
        return len(self.changes)

    @property
    def summary(self) -> str:
        if self.change.action == "status":
            return f"Set the status to {self.change.status}"
        sign = "+" if self.basis_points > 0 else "−"
        return f"Change the daily rate by {sign}{_percent_text(abs(self.basis_points))} %, rounded half-up"


def plan_bulk_change(actor: StaffUser, filters: ItemFilters, change: BulkChange) -> BulkPlan:
    """What a bulk change would do to the items matching the filters, without doing it."""
    require_role(actor, MINIMUM_ROLE)
    plan = _plan(list(db.session.scalars(matching_items(filters))), change)
    plan.scope = describe_filters(filters)
    return plan


def describe_filters(filters: ItemFilters) -> str:
    """The filters in words, for a confirmation: 'yacht · Monaco (MCO) · active · name contains “riva”'."""
    location = db.session.get(Location, filters.location_id) if filters.location_id else None
    parts = [filters.category if filters.category in Category.values() else "",
             f"{location.name} ({location.code})" if location else "",
             filters.status if filters.status in ItemStatus.values() else "",
             f"name contains “{filters.q.strip()}”" if filters.q.strip() else ""]
    return " · ".join(part for part in parts if part) or "every item in the fleet"


def apply_bulk_change(
    actor: StaffUser, filters: ItemFilters, change: BulkChange, token: str, expected: int | None = None
) -> BulkPlan:
    """Apply a reviewed bulk change in one transaction: one audit entry per item changed, plus a summary."""
    require_role(actor, MINIMUM_ROLE)
    _check_token(token)
    begin_write(db.session())
    _refuse_repeat(token)
    try:
        plan = _plan(list(db.session.scalars(matching_items(filters).with_for_update())), change)
        _check_reviewed(plan, expected)
    except DomainError:
        db.session.rollback()
        raise
    plan.token = token
    for planned in plan.changes:
        _apply_one(actor, planned, change.action)
    audit.record(f"inventory.bulk_{change.action}_changed", BATCH, token, actor=actor, after={
        "summary": plan.summary, "changed": plan.count, "matched": plan.matched, "q": filters.q,
        "category": filters.category, "location_id": filters.location_id, "status": filters.status,
    })
    db.session.commit()
    return plan


def _check_reviewed(plan: BulkPlan, expected: int | None) -> None:
    if expected is not None and plan.count != expected:
        raise InvalidInput(f"The items matching these filters changed since you reviewed them: {plan.count} "
                           f"would change now, not {expected}. Nothing was changed: review it again.")


def percent_to_bp(text: str) -> int:
    """'-10' → -1000, '12.5' → 1250, '+0.25' → 25: parsed exactly (no floats), at most two decimals."""
    match = re.fullmatch(r"([+-]?)(\d{1,4})(?:\.(\d{1,2}))?", text.strip().rstrip("%").strip().replace("−", "-"))
    if match is None:
        raise InvalidInput(f"{_shown(text)} is not a percentage such as -10 or 12.5 (at most two decimals).",
                           "percent")
    sign, whole, fraction = match.groups()
    bp = int(whole) * 100 + int((fraction or "0").ljust(2, "0"))
    bp = -bp if sign == "-" else bp
    if bp == 0 or not -10_000 < bp <= MAX_PERCENT_BP:
        raise InvalidInput("Enter a percentage other than 0, above -100 and at most +1000.", "percent")
    return bp


def _plan(items: list[Item], change: BulkChange) -> BulkPlan:
    if change.action == "price":
        bp = percent_to_bp(change.percent)
        changes = [PlannedChange(item, item.daily_rate, _new_rate(item, bp)) for item in items]
        return BulkPlan(change, len(items), [c for c in changes if c.after != c.before], basis_points=bp)
    if change.action == "status":
        if change.status not in ItemStatus.values():
            raise InvalidInput(f"Choose a status: {', '.join(ItemStatus.values())}.", "status")
        changes = [PlannedChange(item, item.status, change.status) for item in items if item.status != change.status]
        return BulkPlan(change, len(items), changes)
    raise InvalidInput("Choose what to change: the daily rate by a percentage, or the status.", "action")


def _new_rate(item: Item, bp: int) -> int:
    rate = apply_bp(item.daily_rate, 10_000 + bp)
    if rate <= 0:
        raise InvalidInput(f"{item.name} would cost {format_money(rate, item.currency)} a day: "
                           "choose a smaller reduction.", "percent")
    if rate > MAX_AMOUNT:
        raise InvalidInput(f"{item.name} would cost more than {format_money(MAX_AMOUNT, item.currency)} a day.",
                           "percent")
    return rate


def _apply_one(actor: StaffUser, planned: PlannedChange, action: str) -> None:
    item = planned.item
    if action == "price":
        item.daily_rate = planned.after
        audit.record("item.price_changed", "item", item.id, actor=actor,
                     before={"daily_rate": planned.before, "currency": item.currency},
                     after={"daily_rate": planned.after, "currency": item.currency})
    else:
        item.status = planned.after
        audit.record("item.status_changed", "item", item.id, actor=actor,
                     before={"status": planned.before}, after={"status": planned.after})


def _percent_text(bp: int) -> str:
    whole, fraction = divmod(bp, 100)
    return f"{whole}.{fraction:02d}".rstrip("0").rstrip(".") if fraction else str(whole)


def _check_token(token: str) -> None:
    if not token or len(token) > 64:
        raise DomainError("This form has expired: reload the page and try again.")


def _refuse_repeat(token: str) -> None:
    """A one-time token already recorded means this exact form was submitted before."""
    done = db.session.scalar(select(AuditEntry.id).where(AuditEntry.entity_type == BATCH,
                                                         AuditEntry.entity_id == token))
    if done:
        db.session.rollback()
        raise AlreadyApplied("This was already done: the first submission went through, so nothing was repeated.")
