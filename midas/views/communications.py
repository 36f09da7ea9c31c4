"""Communications area: every email, SMS and Slack message, its delivery, and a resend for admins."""

from __future__ import annotations

from flask import Response, flash, redirect, request, url_for
from flask_login import current_user

from midas.htmx import render
from midas.models import Channel, NotificationStatus, Role
from midas.observability import CSP
from midas.services import DomainError, notifications, outbox
from midas.views.guards import role_required, staff_blueprint

bp = staff_blueprint("communications", __name__, url_prefix="/communications")
# The detail page frames its own preview of the email; the preview itself may only style itself.
SHOW_CSP = CSP.replace("frame-src ", "frame-src 'self' ")
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; frame-ancestors 'self'"
FILTERS = ("q", "channel", "status", "template", "period")


@bp.get("")
def index():
    filters = notifications.MessageFilters(
        **{key: request.args.get(key, "") for key in FILTERS},
        customer_id=request.args.get("customer_id", type=int), page=request.args.get("page", 1, type=int),
    )
    return render("communications/index.html", "results", page=notifications.list_notifications(filters),
                  filters=filters, kpis=notifications.kpis(), channels=Channel.values(),
                  statuses=NotificationStatus.values(), templates=sorted(outbox.KINDS),
                  periods=notifications.PERIODS, customer=notifications.customer_name(filters.customer_id))


@bp.get("/<int:notification_id>")
def show(notification_id: int):
    message = notifications.get_notification(notification_id)
    rendered, render_error = notifications.preview(message)
    response = Response(render("communications/show.html", message=message, rendered=rendered,
                               render_error=render_error, attempts=outbox.delivery_log(message)))
    response.headers["Content-Security-Policy"] = SHOW_CSP
    return response


@bp.get("/<int:notification_id>/preview")
def preview(notification_id: int):
    """The email's HTML alone, for the sandboxed frame on the detail page."""
    rendered, _ = notifications.preview(notifications.get_notification(notification_id))
    response = Response(rendered.html if rendered and rendered.html else "", mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/<int:notification_id>/resend")
@role_required(Role.ADMIN)
def resend(notification_id: int):
    try:
        message = notifications.resend(current_user, notification_id)
    except DomainError as exc:
        flash(str(exc), "error")
        return redirect(url_for("communications.show", notification_id=notification_id))
    flash(f"Message {message.id} is {message.status}.", "success")
    return redirect(url_for("communications.show", notification_id=message.id))
