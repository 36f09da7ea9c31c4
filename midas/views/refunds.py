"""Refunds area."""

from __future__ import annotations

from flask import request

from midas.htmx import render
from midas.models import RefundStatus
from midas.services import refunds
from midas.views.guards import staff_blueprint

bp = staff_blueprint("refunds", __name__, url_prefix="/refunds")


@bp.get("")
def index():
    status = request.args.get("status", "")
    page = refunds.list_refunds(status, request.args.get("page", 1, type=int))
    return render("refunds/index.html", "results", page=page, status=status, statuses=RefundStatus.values())
