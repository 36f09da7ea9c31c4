"""Jinja filters and globals: money, local times, status badges."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, request, url_for

from midas.models import Role
from midas.money import format_money


def local_time(value: datetime | None, tz: str | None = None, fmt: str = "%d %b %Y %H:%M") -> str:
    """A UTC time shown in the venue's zone (UTC when none is given), with the zone's abbreviation."""
    if value is None:
        return "—"
    zone = ZoneInfo(tz or "UTC")
    local = value.astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname()}"


def humanize(value: str | None) -> str:
    return (value or "").replace("_", " ").capitalize()


def url_with(**changes) -> str:
    """The current URL with some query arguments changed: pagination and sorting keep the filters."""
    # Keys starting with "_" would reach url_for as its own options (_external, _anchor…): never pass them on.
    args = {key: value for key, value in request.args.items() if not key.startswith("_")}
    args.update({key: value for key, value in changes.items() if value is not None})
    for key in [key for key, value in changes.items() if value is None]:
        args.pop(key, None)
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["humanize"] = humanize
    app.jinja_env.globals["url_with"] = url_with
    app.jinja_env.globals["nav_areas"] = NAV_AREAS
    app.jinja_env.globals["role_of"] = Role


# (endpoint, label, minimum role) in the order staff think of their day.
NAV_AREAS = [
    ("home.index", "Home", "concierge"),
    ("bookings.index", "Bookings", "concierge"),
    ("inventory.index", "Inventory", "concierge"),
    ("customers.index", "Customers", "concierge"),
    ("payments.index", "Payments", "concierge"),
    ("refunds.index", "Refunds", "concierge"),
    ("communications.index", "Communications", "concierge"),
    ("events.index", "Webhook events", "admin"),
    ("errors.index", "Error logs", "admin"),
    ("jobs.index", "Jobs", "admin"),
    ("reports.index", "Reports", "admin"),
    ("settings.index", "Settings", "owner"),
    ("staff.index", "Staff", "owner"),
]
