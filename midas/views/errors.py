"""Error logs area (admin and up): groups with trends and impact, a group's events, and triage via HTMX."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user

from midas.forms.errors import SnoozeForm
from midas.htmx import render
from midas.models import ErrorCategory, GroupStatus, Role, Severity
from midas.services import InvalidInput, errors
from midas.views.guards import staff_blueprint

bp = staff_blueprint("errors", __name__, minimum=Role.ADMIN, url_prefix="/errors")
FILTERS = ("category", "severity", "status", "period")


@bp.get("")
def index():
    args = {key: request.args.get(key, "") for key in FILTERS}
    page = errors.list_groups(errors.GroupFilters(**args, page=request.args.get("page", 1, type=int)))
    return render("errors/index.html", "results", page=page, filters=args, categories=ErrorCategory.values(),
                  severities=Severity.values(), statuses=GroupStatus.values(), periods=list(errors.PERIODS),
                  trend_period=errors.trend_period(args["period"]))


@bp.get("/<int:group_id>")
def show(group_id: int):
    return _group_page(group_id)


@bp.post("/<int:group_id>/resolve")
def resolve(group_id: int):
    errors.resolve_group(current_user, group_id)
    return _changed(group_id, "Marked resolved: it reopens as a regression if it happens again.")


@bp.post("/<int:group_id>/ignore")
def ignore(group_id: int):
    errors.ignore_group(current_user, group_id)
    return _changed(group_id, "Ignored: still counted, never alerted.")


@bp.post("/<int:group_id>/reopen")
def reopen(group_id: int):
    errors.reopen_group(current_user, group_id)
    return _changed(group_id, "Reopened.")


@bp.post("/<int:group_id>/snooze")
def snooze(group_id: int):
    form = SnoozeForm()
    if form.validate_on_submit():
        try:
            errors.snooze_group(current_user, group_id, form.period.data or "", form.events.data)
        except InvalidInput as exc:
            form[exc.field or "period"].errors.append(str(exc))
        else:
            return _changed(group_id, "Snoozed: no alerts until then.")
    if request.htmx:
        return _group_page(group_id, snooze_form=form)
    flash(" ".join(error for field_errors in form.errors.values() for error in field_errors), "error")
    return redirect(url_for("errors.show", group_id=group_id))


def _changed(group_id: int, message: str):
    if request.htmx:
        return _group_page(group_id)
    flash(message, "success")
    return redirect(url_for("errors.show", group_id=group_id))


def _group_page(group_id: int, snooze_form: SnoozeForm | None = None):
    detail = errors.group_detail(group_id, page=request.args.get("page", 1, type=int))
    return render("errors/show.html", "group_header", detail=detail, group=detail.group,
                  snooze_form=snooze_form or SnoozeForm(formdata=None))
