"""Settings area (owner only): integrations, locations, season rules and service-tier pricing."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from midas.forms.settings import LocationForm, SeasonForm, TierForm
from midas.htmx import render
from midas.models import Role
from midas.services import InvalidInput, locations, settings
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
