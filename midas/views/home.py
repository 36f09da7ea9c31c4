"""The home dashboard."""

from __future__ import annotations

from midas.htmx import render
from midas.models import utcnow
from midas.services import dashboard, webhooks
from midas.views.guards import staff_blueprint

bp = staff_blueprint("home", __name__)


@bp.get("/")
def index():
    now = utcnow()
    return render("home/index.html", "tiles", tiles=dashboard.today_tiles(now), stale_feeds=webhooks.stale_feeds(now))
