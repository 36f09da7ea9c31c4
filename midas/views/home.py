"""The home dashboard."""

from __future__ import annotations

from midas.htmx import render
from midas.services import dashboard
from midas.views.guards import staff_blueprint

bp = staff_blueprint("home", __name__)


@bp.get("/")
def index():
    return render("home/index.html", "tiles", tiles=dashboard.today_tiles())
