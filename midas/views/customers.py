"""Customers area: the list, profiles, the customer page, duplicates and privacy requests."""

from __future__ import annotations

import json

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from midas.forms.customers import CustomerForm, EraseForm, MergeForm
from midas.htmx import render
from midas.models import Role, Tier
from midas.services import InvalidInput, customers
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("customers", __name__, url_prefix="/customers")


def customer_filters(args: MultiDict) -> customers.CustomerFilters:
    return customers.CustomerFilters(
        q=args.get("q", ""), tier=args.get("tier", ""), segment=args.get("segment", ""),
        location_id=args.get("location", type=int), sort=args.get("sort", ""), page=args.get("page", 1, type=int),
    )


@bp.get("")
def index():
    filters = customer_filters(request.args)
    page, sort = customers.list_customers(filters)
    return render("customers/index.html", "results", page=page, sort=sort, filters=filters, tiers=Tier.values(),
                  segments=customers.SEGMENTS, locations=customers.list_locations(),
                  badges=customers.segments_for([customer.id for customer in page.items]))


@bp.get("/search")
def search_results():
    """The booking flow's search-as-you-type: a fragment of up to ten bookable customers."""
    q = request.args.get("q", "")
    return render_template("customers/_search_results.html", q=q, matches=customers.search_customers(q))


@bp.get("/<int:customer_id>")
def show(customer_id: int):
    return _customer_page(customer_id)


def _customer_page(customer_id: int, merge_form: MergeForm | None = None, erase_form: EraseForm | None = None):
    merge_form, erase_form = merge_form or MergeForm(formdata=None), erase_form or EraseForm(formdata=None)
    data = customers.customer_page(customer_id, request.args.get("page", 1, type=int))
    status = 422 if merge_form.errors or erase_form.errors else 200
    return render("customers/show.html", "history", page=data, customer=data.customer, merge_form=merge_form,
                  erase_form=erase_form, segments=customers.SEGMENTS), status


@bp.route("/new", methods=["GET", "POST"])
def create():
    form = _customer_form()
    if form.validate_on_submit():
        customer = _save(form, lambda data: customers.create_customer(current_user, data))
        if customer:
            flash(f"{customer.name} added.", "success")
            return redirect(url_for("customers.show", customer_id=customer.id))
    return render("customers/form.html", form=form, customer=None), 422 if form.errors else 200


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
def update(customer_id: int):
    customer = customers.get_editable_customer(customer_id)
    form = _customer_form(customer)
    if form.validate_on_submit():
        saved = _save(form, lambda data: customers.update_customer(current_user, customer_id, data))
        if saved:
            flash(f"{saved.name} updated.", "success")
            return redirect(url_for("customers.show", customer_id=customer_id))
    return render("customers/form.html", form=form, customer=customer), 422 if form.errors else 200


def _customer_form(customer=None) -> CustomerForm:
    form = CustomerForm(obj=customer if customer and request.method == "GET" else None)
    form.set_locations(customers.list_locations())
    return form


def _save(form: CustomerForm, action):
    data = customers.CustomerInput(
        name=form.name.data, email=form.email.data, phone=form.phone.data or "", tier=form.submitted_tier(),
        email_opt_in=form.email_opt_in.data, sms_opt_in=form.sms_opt_in.data,
        marketing_consent=form.marketing_consent.data, notes=form.notes.data or "",
        preferred_location_id=form.preferred_location_id.data,
    )
    try:
        return action(data)
    except InvalidInput as exc:
        form[exc.field or "name"].errors.append(str(exc))
        return None


@bp.post("/<int:customer_id>/merge")
@role_required(Role.ADMIN)
def merge(customer_id: int):
    form = MergeForm()
    if form.validate_on_submit():
        try:
            survivor = customers.merge_customers(current_user, customer_id, form.duplicate_id.data)
        except InvalidInput as exc:
            form.duplicate_id.errors.append(str(exc))
        else:
            flash(f"Customer #{form.duplicate_id.data} merged into {survivor.name}.", "success")
            return redirect(url_for("customers.show", customer_id=customer_id))
    return _customer_page(customer_id, merge_form=form)


@bp.get("/<int:customer_id>/export.json")
@role_required(Role.ADMIN)
def export(customer_id: int):
    data = customers.export_customer(current_user, customer_id)
    response = Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="customer-{customer_id}.json"'
    return response


@bp.post("/<int:customer_id>/erase")
@role_required(Role.ADMIN)
def erase(customer_id: int):
    form = EraseForm()
    if form.validate_on_submit():
        customers.erase_customer(current_user, customer_id)
        flash("Personal data erased. Bookings and payments are kept for the accounts.", "success")
        return redirect(url_for("customers.show", customer_id=customer_id))
    return _customer_page(customer_id, erase_form=form)
