"""The home dashboard."""

from __future__ import annotations

from flask import current_app

from midas.htmx import render
from midas.services import dashboard
from midas.views.guards import staff_blueprint

bp = staff_blueprint("home", __name__)


@bp.get("/")
def index():
    """The whole page, or (every HOME_REFRESH_SECONDS, through HTMX) the board alone."""
    return render("home/index.html", "board", board=dashboard.home_board(),
                  refresh_seconds=current_app.config["HOME_REFRESH_SECONDS"])
