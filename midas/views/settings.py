"""Settings area (owner only): integrations, locations, season rules and service-tier pricing."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from midas.forms.errors import AlertRulesForm
from midas.forms.settings import LocationForm, SeasonForm, TierForm
from midas.htmx import render
from midas.models import Role, Severity
from midas.services import DomainError, InvalidInput, locations, settings
from midas.services.audit import snapshot
from midas.views.guards import staff_blueprint

bp = staff_blueprint("settings", __name__, minimum=Role.OWNER, url_prefix="/settings")


@bp.get("")
def index():
    return _settings_page(TierForm(data=settings.get_tier_multipliers()))


def _settings_page(tier_form: TierForm):
    return render("settings/index.html", integrations=settings.integrations(), locations=locations.list_locations(),
                  seasons=locations.list_seasons(), tier_form=tier_form), 422 if tier_form.errors else 200


@bp.post("/tiers")
def tiers():
    form = TierForm()
    if form.validate_on_submit():
        try:
            settings.set_tier_multipliers(current_user, form.values())
        except InvalidInput as exc:
            form[exc.field or "standard"].errors.append(str(exc))
        else:
            flash("Service-tier multipliers saved; new quotes use them.", "success")
            return redirect(url_for("settings.index"))
    return _settings_page(form)


@bp.route("/locations/new", methods=["GET", "POST"], defaults={"location_id": None})
@bp.route("/locations/<int:location_id>/edit", methods=["GET", "POST"])
def location(location_id: int | None):
    current = locations.get_location(location_id) if location_id else None
    form = LocationForm(data=snapshot(current, locations.LOCATION_FIELDS) if current else None)
    if form.validate_on_submit():
        data = locations.LocationInput(**{name: form[name].data for name in locations.LOCATION_FIELDS})
        if _saved(form, lambda: locations.save_location(current_user, data, location_id)):
            flash(f"{data.name} saved.", "success")
            return redirect(url_for("settings.index"))
    return render("settings/location.html", form=form, location=current), 422 if form.errors else 200


@bp.route("/seasons/new", methods=["GET", "POST"], defaults={"season_id": None})
@bp.route("/seasons/<int:season_id>/edit", methods=["GET", "POST"])
def season(season_id: int | None):
    current = locations.get_season(season_id) if season_id else None
    form = SeasonForm(data=snapshot(current, locations.SEASON_FIELDS) if current else None)
    form.location_id.choices = [SelectChoice("", "All locations"),
                                *(SelectChoice(loc.id, loc.name) for loc in locations.list_locations())]
    if form.validate_on_submit():
        data = locations.SeasonInput(**{name: form[name].data or None if name in ("location_id", "category")
                                        else form[name].data for name in locations.SEASON_FIELDS})
        if _saved(form, lambda: locations.save_season(current_user, data, season_id)):
            flash(f"Season “{data.name}” saved.", "success")
            return redirect(url_for("settings.index"))
    return render("settings/season.html", form=form, season=current), 422 if form.errors else 200


@bp.post("/seasons/<int:season_id>/delete")
def delete_season(season_id: int):
    locations.delete_season(current_user, season_id)
    flash("Season rule deleted.", "success")
    return redirect(url_for("settings.index"))


def _saved(form, action) -> bool:
    try:
        action()
    except InvalidInput as exc:
        form[exc.field or "name"].errors.append(str(exc))
        return False
    return True


@bp.route("/alerts", methods=["GET", "POST"])
def alerts():
    """Alert rules per error category; HTMX loads the form into the settings page."""
    form = AlertRulesForm(data=None if request.method == "POST" else settings.get_alert_rules())
    if form.validate_on_submit():
        try:
            settings.set_alert_rules(current_user, form.values())
        except DomainError as exc:
            form.form_errors.append(str(exc))
        else:
            flash("Alert rules saved; they apply to the next error captured.", "success")
            return redirect(url_for("settings.index", _anchor="alert-rules"))
    return render("settings/alerts.html", "alert_rules", form=form, severities=Severity.values()), \
        422 if form.errors or form.form_errors else 200


@bp.route("/refund-policy", methods=["GET", "POST"])
def refund_policy():
    """Refund tiers per category and approval thresholds per currency; HTMX loads the form into the page."""
    errors: dict[str, str] = {}
    values = settings.refund_policy_form()
    if request.method == "POST":
        values = {name: request.form.get(name, "") for name in values}
        try:
            settings.save_refund_policy_form(current_user, values)
        except InvalidInput as exc:
            errors[exc.field or "thresholds"] = str(exc)
        else:
            flash("Refund policy saved; new refund previews use it.", "success")
            return redirect(url_for("settings.index", _anchor="refund-policy"), 303)
    return render("settings/refund_policy.html", "refund_policy", values=values, errors=errors,
                  version=settings.get_refund_policy()[1]), 422 if errors else 200
