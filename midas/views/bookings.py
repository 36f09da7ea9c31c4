"""Bookings area: the list, a booking's page and its lifecycle, and the new-booking flow."""

from __future__ import annotations

from datetime import date

from flask import Response, flash, redirect, request, stream_with_context, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from midas.forms.bookings import (
    CancelForm,
    ChangeForm,
    NewBookingForm,
    ReassignForm,
    RedeemForm,
    ReturnForm,
    TransitionForm,
)
from midas.htmx import render
from midas.models import Category, Role, utcnow
from midas.services import (
    DomainError,
    InvalidInput,
    auth,
    booking_changes,
    booking_states,
    bookings,
    customers,
    feeds,
    inventory,
    late_fees,
    new_booking,
    notifications,
    timeline,
)
from midas.services.fleet_calendar import fleet_month
from midas.services.today import today_board
from midas.timeutil import to_local
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("bookings", __name__, url_prefix="/bookings")


@bp.get("")
def index():
    filters = booking_filters(request.args)
    return render("bookings/index.html", "results", page=bookings.list_bookings(filters), filters=filters,
                  choices=bookings.filter_choices(filters), export_url=_export_url(request.args))


@bp.route("/new", methods=["GET", "POST"])
def create():
    form = _new_booking_form()
    if form.validate_on_submit():
        try:
            booking = new_booking.create_from_form(current_user, _draft(form), form.status.data)
        except DomainError as exc:
            form.item_id.errors.append(str(exc))
        else:
            flash(f"Booking {booking.reference} created.", "success")
            return redirect(url_for("bookings.show", reference=booking.reference))
    options = new_booking.options(_draft(form))
    return render("bookings/new.html", "options", form=form, options=options), 422 if form.errors else 200


@bp.get("/new/customers")
def customer_choices():
    matches = new_booking.find_customers(request.args.get("customer_q", ""))
    return render("bookings/_customer_choices.html", customers=matches, chosen=None)


@bp.post("/new/customer")
def create_customer_inline():
    """Add a customer without leaving the booking form; the fragment comes back with them chosen."""
    data = customers.CustomerInput(name=request.form.get("new_name", ""), email=request.form.get("new_email", ""),
                                   phone=request.form.get("new_phone", ""))
    try:
        customer = customers.create_customer(current_user, data)
    except DomainError as exc:
        return render("bookings/_customer_choices.html", customers=[], chosen=None, problem=str(exc)), 422
    return render("bookings/_customer_choices.html", customers=[customer], chosen=customer)


def _new_booking_form() -> NewBookingForm:
    form = NewBookingForm(formdata=request.form if request.method == "POST" else request.args or None)
    form.location_id.choices = [SelectChoice(loc.id, f"{loc.name} ({loc.currency})")
                                for loc in new_booking.locations()]
    return form


def _draft(form: NewBookingForm) -> new_booking.Draft:
    return new_booking.Draft(
        customer_id=form.customer_id.data, location_id=form.location_id.data, category=form.category.data or None,
        local_start=form.starts_at.data, local_end=form.ends_at.data, item_id=form.item_id.data,
        notes=form.notes.data or "", special_requests=form.special_requests.data or "",
    )


@bp.get("/<reference>")
def show(reference: str):
    booking = bookings.get_booking(reference)
    return render("bookings/show.html", booking=booking, timeline=timeline.for_booking(booking),
                  next_states={s.value for s in booking_states.allowed_next(booking)},
                  checkout_url=url_for("checkout.show", token=booking.checkout_token, _external=True),
                  late_fee=late_fees.charge_for(booking),
                  cancel_form=CancelForm(), return_form=_return_form(booking), transition_form=TransitionForm(),
                  reassign_form=_reassign_form(booking), redeem_form=_redeem_form(booking))


def _redeem_form(booking) -> RedeemForm:
    """Offers the points that fit the booking's total (all of them, usually)."""
    return RedeemForm(data={"points": booking_changes.redeemable_points(booking)})


@bp.post("/<reference>/redeem-points")
def redeem_points(reference: str):
    form = RedeemForm()
    _require_valid(form)
    booking = booking_changes.redeem_points(current_user, reference, form.points.data)
    return _after(f"{form.points.data:,} loyalty points taken off {booking.reference}.", booking.reference)


def _reassign_form(booking) -> ReassignForm:
    form = ReassignForm(data={"concierge_id": booking.concierge_id})
    form.concierge_id.choices = [SelectChoice(user.id, user.name) for user in auth.list_staff() if user.is_active]
    return form


@bp.route("/<reference>/change", methods=["GET", "POST"])
def change(reference: str):
    """New dates or another item: a live preview of the new price, then the change."""
    booking = bookings.get_booking(reference)
    form = _change_form(booking)
    preview = None
    if form.validate_on_submit():
        try:
            booking_changes.change_booking(current_user, reference, form.item_id.data, form.starts_at.data,
                                           form.ends_at.data)
        except DomainError as exc:
            form.item_id.errors.append(str(exc))
        else:
            return _after(f"{booking.reference} changed and re-priced.", booking.reference)
    elif request.args:
        preview = _preview(form, booking)
    return render("bookings/change.html", "preview", booking=booking, form=form, preview=preview), \
        422 if form.errors else 200


def _change_form(booking) -> ChangeForm:
    tz = booking.item.location.timezone
    defaults = {"item_id": booking.item_id, "starts_at": to_local(booking.starts_at, tz).replace(tzinfo=None),
                "ends_at": to_local(booking.ends_at, tz).replace(tzinfo=None)}
    source = request.form if request.method == "POST" else request.args or None
    form = ChangeForm(formdata=source, data=None if source else defaults)
    form.item_id.choices = [SelectChoice(item.id, f"{item.name} ({item.category})")
                            for item in inventory.bookable_items(booking.item.location_id)]
    return form


def _preview(form: ChangeForm, booking):
    # A preview is a GET: check the fields only (the CSRF token protects the POST that saves).
    if not all([form.item_id.validate(form), form.starts_at.validate(form), form.ends_at.validate(form)]):
        return None
    try:
        return booking_changes.preview_change(booking.reference, form.item_id.data, form.starts_at.data,
                                              form.ends_at.data)
    except DomainError as exc:
        form.item_id.errors.append(str(exc))
        return None


@bp.post("/<reference>/reassign")
def reassign(reference: str):
    form = ReassignForm()
    form.concierge_id.choices = [SelectChoice(user.id, user.name) for user in auth.list_staff() if user.is_active]
    _require_valid(form)
    booking = booking_changes.reassign(current_user, reference, form.concierge_id.data)
    return _after(f"{booking.reference} is now looked after by {booking.concierge.name}.", booking.reference)


def _return_form(booking) -> ReturnForm:
    local_now = to_local(utcnow(), booking.item.location.timezone)
    return ReturnForm(data={"returned_at": local_now.replace(tzinfo=None, second=0, microsecond=0)})


def _after(action_message: str, reference: str):
    flash(action_message, "success")
    return redirect(url_for("bookings.show", reference=reference))


@bp.post("/<reference>/send-for-payment")
def send_for_payment(reference: str):
    _require_valid(TransitionForm())
    booking = booking_states.send_for_payment(current_user, reference)
    return _after(f"{booking.reference} is held for the customer until payment.", booking.reference)


@bp.post("/<reference>/confirm")
@role_required(Role.ADMIN)
def confirm(reference: str):
    _require_valid(TransitionForm())
    booking = booking_states.confirm(current_user, reference, reason="confirmed on account by staff")
    return _after(f"{booking.reference} is confirmed.", booking.reference)


@bp.post("/<reference>/hand-over")
def hand_over(reference: str):
    _require_valid(TransitionForm())
    booking = booking_states.hand_over(current_user, reference)
    return _after(f"{booking.reference} handed over.", booking.reference)


@bp.post("/<reference>/return")
def record_return(reference: str):
    form = ReturnForm()
    _require_valid(form)
    booking = booking_states.record_return(current_user, reference, form.returned_at.data)
    return _after(f"{booking.reference} returned and completed.", booking.reference)


@bp.post("/<reference>/no-show")
def no_show(reference: str):
    _require_valid(TransitionForm())
    booking = booking_states.mark_no_show(current_user, reference)
    return _after(f"{booking.reference} marked as a no-show.", booking.reference)


@bp.post("/<reference>/send-checkout-link")
def send_checkout_link(reference: str):
    """Email or text the checkout link to the customer (a double click sends once)."""
    _require_valid(TransitionForm())
    channel = request.form.get("channel", "")
    notifications.send_checkout_link(current_user, reference, channel)
    return _after(f"Checkout link sent by {'SMS' if channel == 'sms' else 'email'}.", reference)


@bp.post("/<reference>/cancel")
def cancel(reference: str):
    form = CancelForm()
    _require_valid(form)
    booking = booking_states.cancel(current_user, reference, form.reason.data)
    return _after(f"{booking.reference} cancelled.", booking.reference)


def _require_valid(form) -> None:
    """Action forms carry little besides the CSRF token; a bad one is refused with its reason (422)."""
    if not form.validate_on_submit():
        errors = [error for field_errors in form.errors.values() for error in field_errors]
        raise InvalidInput(" ".join(errors) or "The form was incomplete; please try again.")


# The dashboard's other views: its CSV export, the "today" board and the month across the fleet.

FILTER_ARGS = ("q", "status", "from", "to", "location", "category", "concierge", "customer", "item", "sort")


def booking_filters(args: MultiDict) -> bookings.BookingFilters:
    """The dashboard's filters from query arguments (shared by the list and its CSV export)."""
    return bookings.BookingFilters(
        q=args.get("q", ""), status=args.get("status", ""), period_from=_date_arg(args, "from"),
        period_to=_date_arg(args, "to"), location_id=args.get("location", type=int),
        category=args.get("category", ""), concierge_id=args.get("concierge", type=int),
        customer_id=args.get("customer", type=int), item_id=args.get("item", type=int), sort=args.get("sort", ""),
        after=args.get("after", ""), before=args.get("before", ""),
    )


def _date_arg(args: MultiDict, name: str) -> date | None:
    try:
        return date.fromisoformat(args.get(name, ""))
    except ValueError:
        return None


def _export_url(args: MultiDict) -> str:
    return url_for("bookings.export", **{name: args[name] for name in FILTER_ARGS if args.get(name)})


@bp.get("/export.csv")
def export():
    rows = bookings.export_csv(booking_filters(request.args))
    response = Response(stream_with_context(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{bookings.export_filename()}"'
    return response


@bp.get("/today")
def today():
    """Pickups and returns per location in its local day; the board block refreshes itself every minute."""
    return render("bookings/today.html", "board", board=today_board(),
                  my_feed_url=feeds.feed_url("staff", current_user.id))


@bp.get("/calendar")
def calendar():
    location_id, category = request.args.get("location", type=int), request.args.get("category", "")
    month = fleet_month(_month_arg(request.args.get("month", "")), location_id, category)
    return render("bookings/calendar.html", "calendar", month=month, location_id=location_id, category=category,
                  locations=inventory.list_locations(), categories=Category.values())


def _month_arg(text: str) -> date:
    """The first day of a 'YYYY-MM' month; this month (UTC) when missing or malformed."""
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(max(2000, min(year, 2100)), max(1, min(month, 12)), 1)
    except ValueError:
        return utcnow().date().replace(day=1)
