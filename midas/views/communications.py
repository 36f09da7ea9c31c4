"""Communications area: the email and SMS outbox."""

from __future__ import annotations

from flask import request

from midas.htmx import render
from midas.models import Channel, NotificationStatus
from midas.services import notifications
from midas.views.guards import staff_blueprint

bp = staff_blueprint("communications", __name__, url_prefix="/communications")


@bp.get("")
def index():
    args = {key: request.args.get(key, "") for key in ("q", "channel", "status")}
    page = notifications.list_notifications(**args, page=request.args.get("page", 1, type=int))
    return render("communications/index.html", "results", page=page, filters=args,
                  channels=Channel.values(), statuses=NotificationStatus.values())
