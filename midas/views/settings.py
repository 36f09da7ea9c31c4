"""Settings area (owner only)."""

from __future__ import annotations

from midas.htmx import render
from midas.models import Role
from midas.services import settings
from midas.views.guards import staff_blueprint

bp = staff_blueprint("settings", __name__, minimum=Role.OWNER, url_prefix="/settings")


@bp.get("")
def index():
    return render("settings/index.html", integrations=settings.integrations())
