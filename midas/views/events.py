"""Webhook events area: what Stripe and PayPal told us, and what we did with it."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user

from midas.htmx import render
from midas.models import EventStatus, Role, utcnow
from midas.services import DomainError, webhooks
from midas.views.guards import staff_blueprint

bp = staff_blueprint("events", __name__, minimum=Role.ADMIN, url_prefix="/webhooks/events")


@bp.get("")
def index():
    filters = webhooks.parse_filters(request.args)
    return render("events/index.html", "results", page=webhooks.list_events(filters), filters=filters,
                  kpis=webhooks.event_kpis(utcnow()), statuses=EventStatus.values(), providers=webhooks.PROVIDERS)


@bp.get("/<int:event_id>")
def show(event_id: int):
    event = webhooks.get_event(event_id)
    return render("events/show.html", event=event, payload=webhooks.pretty_payload(event),
                  payments=webhooks.payments_touched(event), history=webhooks.event_history(event))


@bp.post("/<int:event_id>/rerun")
def rerun(event_id: int):
    """Retry a failed event or replay a processed one (admin, audited, idempotent)."""
    try:
        action = webhooks.rerun_event(current_user, event_id)
    except DomainError as exc:
        flash(str(exc), "error")
    else:
        flash("Event queued to be " + ("retried." if action == "retry" else "replayed."), "success")
    return redirect(url_for(".show", event_id=event_id), 303)
