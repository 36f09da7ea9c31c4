"""Customer forms: the profile (fields named after the columns), merge and erase confirmations."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, SelectField, StringField, TelField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import HiddenInput

from midas.models import Location, Tier


def tier_label(tier: str) -> str:
    return "VVIP" if tier == Tier.VVIP.value else tier.capitalize()


def optional_int(value) -> int | None:
    return int(value) if value not in (None, "", "None") else None


class CustomerForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=160)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    phone = TelField("Phone", validators=[Optional(), Length(max=40)])
    tier = SelectField("Service tier", choices=[SelectChoice(t, tier_label(t)) for t in Tier.values()],
                       default=Tier.STANDARD.value)
    preferred_location_id = SelectField("Preferred location", coerce=optional_int, validators=[Optional()])
    email_opt_in = BooleanField("Service emails (confirmations, receipts, reminders)", default=True)
    sms_opt_in = BooleanField("Service text messages", default=True)
    marketing_consent = BooleanField("Agrees to receive marketing", default=False)
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=4000)])

    def set_locations(self, locations: list[Location]) -> None:
        self.preferred_location_id.choices = [SelectChoice("", "No preference"),
                                              *(SelectChoice(loc.id, loc.name) for loc in locations)]

    def submitted_tier(self) -> str | None:
        """The tier only when the form sent one: concierges' forms have no tier field, and keep the tier."""
        return self.tier.data if self.tier.raw_data else None


class MergeForm(FlaskForm):
    duplicate_id = IntegerField("Duplicate", widget=HiddenInput(), validators=[InputRequired()])
    confirm = BooleanField("These are the same person", validators=[DataRequired("Tick the box to confirm the merge.")])


class EraseForm(FlaskForm):
    confirm = BooleanField("The customer asked for their personal data to be erased",
                           validators=[DataRequired("Tick the box to confirm the erasure.")])
