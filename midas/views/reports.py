"""Reports area."""

from __future__ import annotations

from midas.htmx import render
from midas.models import Role
from midas.services import reports
from midas.views.guards import staff_blueprint

bp = staff_blueprint("reports", __name__, minimum=Role.ADMIN, url_prefix="/reports")


@bp.get("")
def index():
    return render("reports/index.html", revenue=reports.revenue_by_month())
