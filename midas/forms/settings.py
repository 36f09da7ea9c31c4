"""Owner settings forms: locations, season rules, tier multipliers."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from midas.forms.inventory import choices
from midas.models import Category, Tier
from midas.services.locations import CURRENCIES


class LocationForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(min=2, max=8)])
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    city = StringField("City", validators=[DataRequired(), Length(max=120)])
    country = StringField("Country (ISO code)", validators=[DataRequired(), Length(min=2, max=2)])
    timezone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])
    currency = SelectField("Currency", choices=choices(list(CURRENCIES)))
    tax_rate_bp = IntegerField("Tax rate (basis points)", default=0,
                               validators=[InputRequired(), NumberRange(0, 10000)])
    service_fee_bp = IntegerField("Service fee (basis points)", default=0,
                                  validators=[InputRequired(), NumberRange(0, 10000)])


def _optional_int(value) -> int | None:
    return int(value) if value not in (None, "", "None") else None


class SeasonForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    starts_on = DateField("First day", validators=[DataRequired()])
    ends_on = DateField("Last day", validators=[DataRequired()])
    multiplier_bp = IntegerField("Multiplier (basis points)", default=10000,
                                 validators=[InputRequired(), NumberRange(1, 100000)])
    location_id = SelectField("Location", coerce=_optional_int, validators=[Optional()])
    category = SelectField("Category", choices=[SelectChoice("", "All categories"), *choices(Category.values())])
    priority = IntegerField("Priority", default=0, validators=[InputRequired(), NumberRange(-100, 100)])


class TierForm(FlaskForm):
    standard = IntegerField("Standard", validators=[InputRequired(), NumberRange(1, 100000)])
    premium = IntegerField("Premium", validators=[InputRequired(), NumberRange(1, 100000)])
    vvip = IntegerField("VVIP", validators=[InputRequired(), NumberRange(1, 100000)])

    def values(self) -> dict[str, int]:
        return {tier: self[tier].data for tier in Tier.values()}
