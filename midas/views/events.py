"""Webhook events area: what Stripe and PayPal told us, and what we did with it."""

from __future__ import annotations

import json

from flask import request

from midas.htmx import render
from midas.models import EventStatus, Role
from midas.services import webhooks
from midas.views.guards import staff_blueprint

bp = staff_blueprint("events", __name__, minimum=Role.ADMIN, url_prefix="/webhooks/events")


@bp.get("")
def index():
    args = {"provider": request.args.get("provider", ""), "status": request.args.get("status", ""),
            "event_type": request.args.get("type", "")}
    page = webhooks.list_events(**args, page=request.args.get("page", 1, type=int))
    return render("events/index.html", "results", page=page, filters=args, statuses=EventStatus.values())


@bp.get("/<int:event_id>")
def show(event_id: int):
    event = webhooks.get_event(event_id)
    return render("events/show.html", event=event, payload=json.dumps(event.payload, indent=2, sort_keys=True))
