"""Error logs area."""

from __future__ import annotations

from flask import request

from midas.htmx import render
from midas.models import ErrorCategory, GroupStatus, Role, Severity
from midas.services import errors
from midas.views.guards import staff_blueprint

bp = staff_blueprint("errors", __name__, minimum=Role.ADMIN, url_prefix="/errors")


@bp.get("")
def index():
    args = {key: request.args.get(key, "") for key in ("category", "severity", "status")}
    page = errors.list_groups(**args, page=request.args.get("page", 1, type=int))
    return render("errors/index.html", "results", page=page, filters=args, categories=ErrorCategory.values(),
                  severities=Severity.values(), statuses=GroupStatus.values())
