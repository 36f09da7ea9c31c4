"""Item and blackout forms: field names follow the model columns; amounts are typed in major units."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from midas.models import Category, ItemStatus

AMOUNT = Regexp(r"^\s*\d[\d,]*(\.\d+)?\s*$", message="Enter an amount such as 1,800.00.")
SPEC_FIELDS = ("seats", "cabins", "bedrooms", "range_nm", "length_m")


def choices(values: list[str]) -> list[SelectChoice]:
    return [SelectChoice(value, value.replace("_", " ").capitalize()) for value in values]


class ItemForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=160)])
    category = SelectField("Category", choices=choices(Category.values()))
    location_id = SelectField("Location", coerce=int, validate_choice=True)
    daily_rate = StringField("Daily rate", validators=[DataRequired(), AMOUNT])
    security_deposit = StringField("Security deposit", default="0", validators=[InputRequired(), AMOUNT])
    insurance_rate_bp = IntegerField("Insurance rate (basis points)", default=0,
                                     validators=[InputRequired(), NumberRange(0, 10000)])
    buffer_before_hours = IntegerField("Buffer before (hours)", default=0,
                                       validators=[InputRequired(), NumberRange(0, 720)])
    buffer_after_hours = IntegerField("Buffer after (hours)", default=0,
                                      validators=[InputRequired(), NumberRange(0, 720)])
    min_days = IntegerField("Minimum days", default=1, validators=[InputRequired(), NumberRange(1, 365)])
    status = SelectField("Status", choices=choices(ItemStatus.values()), default=ItemStatus.ACTIVE.value)
    description = TextAreaField("Description", validators=[Optional(), Length(max=4000)])
    seats = IntegerField("Seats", validators=[Optional(), NumberRange(1, 500)])
    cabins = IntegerField("Cabins", validators=[Optional(), NumberRange(1, 100)])
    bedrooms = IntegerField("Bedrooms", validators=[Optional(), NumberRange(1, 100)])
    range_nm = IntegerField("Range (nautical miles)", validators=[Optional(), NumberRange(1, 20000)])
    length_m = IntegerField("Length (metres)", validators=[Optional(), NumberRange(1, 500)])

    def specs(self) -> dict[str, int]:
        return {name: self[name].data for name in SPEC_FIELDS if self[name].data is not None}


class StatusForm(FlaskForm):
    status = SelectField("Status", choices=choices(ItemStatus.values()))


class BlackoutForm(FlaskForm):
    starts_at = DateTimeLocalField("From", format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    ends_at = DateTimeLocalField("Until", format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=240)])
