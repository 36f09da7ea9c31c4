"""Inventory area: the fleet of cars, yachts, jets and properties."""

from __future__ import annotations

from datetime import date

from flask import Response, flash, redirect, request, stream_with_context, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from midas.forms.inventory import BlackoutForm, ItemForm, StatusForm
from midas.forms.inventory_bulk import BulkForm, ImportForm
from midas.htmx import render
from midas.models import Category, ItemStatus, Role, utcnow
from midas.services import InvalidInput, calendar, feeds, inventory, inventory_bulk
from midas.timeutil import to_local
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("inventory", __name__, url_prefix="/inventory")


def item_filters(args: MultiDict) -> inventory.ItemFilters:
    """The list's filters from query arguments (shared by the list, export and bulk actions)."""
    return inventory.ItemFilters(
        q=args.get("q", ""), category=args.get("category", ""), location_id=args.get("location", type=int),
        status=args.get("status", ""), sort=args.get("sort", ""), page=args.get("page", 1, type=int),
    )


@bp.get("")
def index():
    filters = item_filters(request.args)
    page, sort = inventory.list_items(filters)
    return render("inventory/index.html", "results", page=page, sort=sort, filters=filters,
                  counts=inventory.category_counts(), locations=inventory.list_locations(),
                  categories=Category.values(), statuses=ItemStatus.values(), status_form=StatusForm())


@bp.get("/available")
def available():
    """Free items for a category, location and local dates (hand-over at 10:00 at the location)."""
    search = inventory.AvailabilitySearch(
        category=request.args.get("category", ""), location_id=request.args.get("location", type=int),
        starts_on=_date_arg("starts_on"), ends_on=_date_arg("ends_on"),
    )
    result = inventory.search_available(search)
    return render("inventory/available.html", "results", search=search, result=result,
                  locations=inventory.list_locations(), categories=Category.values())


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


@bp.get("/<int:item_id>")
def show(item_id: int):
    return _item_page(item_id, BlackoutForm())


def _item_page(item_id: int, blackout_form: BlackoutForm):
    """The item page; an HTMX month change asks for the calendar block alone."""
    item = inventory.get_item(item_id)
    first = _month_arg(item)
    return render(
        "inventory/show.html", "calendar", item=item, month=first, prev_month=_shift(first, -1),
        next_month=_shift(first, 1), weeks=calendar.month_grid(item, first.year, first.month),
        upcoming=calendar.upcoming_bookings(item.id), utilization=calendar.utilization_bp(item),
        blackout_form=blackout_form, feed_url=feeds.feed_url("item", item.id),
    ), 422 if blackout_form.errors else 200


def _month_arg(item) -> date:
    try:
        year, month = (int(part) for part in request.args.get("month", "").split("-"))
        return date(max(2000, min(year, 2100)), max(1, min(month, 12)), 1)
    except ValueError:
        return to_local(utcnow(), item.location.timezone).date().replace(day=1)


def _shift(first: date, months: int) -> str:
    index = first.year * 12 + first.month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def create():
    form = _item_form()
    if form.validate_on_submit():
        item = _save(form, lambda data: inventory.create_item(current_user, data))
        if item:
            flash(f"{item.name} added to the fleet.", "success")
            return redirect(url_for("inventory.show", item_id=item.id))
    return render("inventory/form.html", form=form, item=None), 422 if form.errors else 200


@bp.route("/<int:item_id>/edit", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def update(item_id: int):
    item = inventory.get_item(item_id)
    form = _item_form(item)
    if form.validate_on_submit():
        saved = _save(form, lambda data: inventory.update_item(current_user, item_id, data))
        if saved:
            flash(f"{saved.name} updated.", "success")
            return redirect(url_for("inventory.show", item_id=item_id))
    return render("inventory/form.html", form=form, item=item), 422 if form.errors else 200


def _item_form(item=None) -> ItemForm:
    form = ItemForm(data=_item_data(item) if item and request.method == "GET" else None)
    form.location_id.choices = [SelectChoice(loc.id, f"{loc.name} ({loc.currency})")
                                for loc in inventory.list_locations()]
    return form


def _item_data(item) -> dict:
    from midas.money import exponent

    def major(amount: int) -> str:
        digits = exponent(item.currency)
        return f"{amount // 10**digits}.{amount % 10**digits:0{digits}d}" if digits else str(amount)

    fields = ("name", "category", "location_id", "insurance_rate_bp", "buffer_before_hours", "buffer_after_hours",
              "min_days", "status", "description")
    return {**{name: getattr(item, name) for name in fields}, **item.specs,
            "daily_rate": major(item.daily_rate), "security_deposit": major(item.security_deposit)}


def _save(form: ItemForm, action):
    data = inventory.ItemInput(
        name=form.name.data, category=form.category.data, location_id=form.location_id.data,
        daily_rate=form.daily_rate.data, security_deposit=form.security_deposit.data,
        insurance_rate_bp=form.insurance_rate_bp.data, buffer_before_hours=form.buffer_before_hours.data,
        buffer_after_hours=form.buffer_after_hours.data, min_days=form.min_days.data, status=form.status.data,
        description=form.description.data or "", specs=form.specs(),
    )
    try:
        return action(data)
    except InvalidInput as exc:
        form[exc.field or "name"].errors.append(str(exc))
        return None


@bp.post("/<int:item_id>/status")
@role_required(Role.ADMIN)
def change_status(item_id: int):
    form = StatusForm()
    if form.validate_on_submit():
        item = inventory.set_status(current_user, item_id, form.status.data)
    else:
        item = inventory.get_item(item_id)
    if request.htmx:
        return render("inventory/_item_row.html", item=item, status_form=StatusForm())
    flash(f"{item.name} is now {item.status}.", "success")
    return redirect(url_for("inventory.show", item_id=item_id))


@bp.post("/<int:item_id>/blackouts")
@role_required(Role.ADMIN)
def add_blackout(item_id: int):
    form = BlackoutForm()
    if form.validate_on_submit():
        try:
            inventory.add_blackout(current_user, item_id, form.starts_at.data, form.ends_at.data, form.reason.data)
        except InvalidInput as exc:
            form[exc.field or "reason"].errors.append(str(exc))
        else:
            flash("Blackout added.", "success")
            return redirect(url_for("inventory.show", item_id=item_id))
    return _item_page(item_id, form)


@bp.route("/blackouts/<int:blackout_id>/edit", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit_blackout(blackout_id: int):
    blackout = inventory.get_blackout(blackout_id)
    tz = blackout.item.location.timezone
    form = BlackoutForm(data=None if request.method == "POST" else {
        "starts_at": to_local(blackout.starts_at, tz).replace(tzinfo=None),
        "ends_at": to_local(blackout.ends_at, tz).replace(tzinfo=None), "reason": blackout.reason})
    if form.validate_on_submit():
        try:
            inventory.update_blackout(current_user, blackout_id, form.starts_at.data, form.ends_at.data,
                                      form.reason.data)
        except InvalidInput as exc:
            form[exc.field or "reason"].errors.append(str(exc))
        else:
            flash("Blackout changed.", "success")
            return redirect(url_for("inventory.show", item_id=blackout.item_id))
    return render("inventory/blackout.html", form=form, blackout=blackout), 422 if form.errors else 200


@bp.post("/blackouts/<int:blackout_id>/delete")
@role_required(Role.ADMIN)
def remove_blackout(blackout_id: int):
    item = inventory.remove_blackout(current_user, blackout_id)
    flash("Blackout removed.", "success")
    return redirect(url_for("inventory.show", item_id=item.id))


# Bulk operations: CSV export and import, price and status changes over the filtered list.


@bp.get("/export.csv")
def export():
    rows = inventory_bulk.export_csv(item_filters(request.args))
    return _csv_download(stream_with_context(rows), inventory_bulk.export_filename())


@bp.get("/import/template.csv")
@role_required(inventory_bulk.MINIMUM_ROLE)
def import_template():
    return _csv_download(inventory_bulk.template_csv(), "midas-inventory-template.csv")


@bp.route("/import", methods=["GET", "POST"])
@role_required(inventory_bulk.MINIMUM_ROLE)
def import_items():
    form = ImportForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            result = inventory_bulk.import_items(current_user, form.file.data.read(), form.token.data)
        except inventory_bulk.ImportRejected as exc:
            errors = exc.errors
        except inventory_bulk.AlreadyApplied as exc:
            flash(str(exc), "info")
            return redirect(url_for("inventory.index"))
        else:
            flash(result.message, "success")
            return redirect(url_for("inventory.index"))
    return render("inventory/import.html", form=form, errors=errors), 422 if errors or form.errors else 200


@bp.post("/bulk")
@role_required(inventory_bulk.MINIMUM_ROLE)
def bulk():
    """Bulk price or status change: the first post shows what would change, the confirmed one applies it."""
    form, plan = BulkForm(), None
    if form.validate_on_submit():
        try:
            if form.confirmed:
                return _apply_bulk(form)
            plan = inventory_bulk.plan_bulk_change(current_user, form.filters(), form.change())
        except InvalidInput as exc:
            form[exc.field or "action"].errors.append(str(exc))
    status = 422 if form.errors else 200
    return render("inventory/_bulk_confirm.html", form=form, plan=plan, filters=form.filters()), status


def _apply_bulk(form: BulkForm):
    filters = form.filters()
    try:
        plan = inventory_bulk.apply_bulk_change(current_user, filters, form.change(), form.token.data,
                                                form.expected.data)
        flash(f"{plan.summary}: {plan.count} item{'s' if plan.count != 1 else ''} changed.", "success")
    except inventory_bulk.AlreadyApplied as exc:
        flash(str(exc), "info")
    return redirect(url_for("inventory.index", q=filters.q or None, category=filters.category or None,
                            location=filters.location_id, status=filters.status or None))


def _csv_download(body, filename: str) -> Response:
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
