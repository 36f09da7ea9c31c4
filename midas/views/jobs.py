"""Jobs area: the state of the background queues."""

from __future__ import annotations

from flask import current_app

from midas.htmx import render
from midas.models import Role
from midas.tasks import queue
from midas.views.guards import staff_blueprint

bp = staff_blueprint("jobs", __name__, minimum=Role.ADMIN, url_prefix="/jobs")


@bp.get("")
def index():
    return render("jobs/index.html", "queues", queues=queue.queue_overview(),
                  redis_configured=bool(current_app.config["REDIS_URL"]))
