"""Booking forms: a new booking, and the changes staff make to one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from midas.forms.inventory import choices
from midas.models import Category

LOCAL = "%Y-%m-%dT%H:%M"
# Ids beyond a 32-bit key are never ours, and a database driver would choke on them.
ROW_ID = NumberRange(1, 2**31 - 1, message="That is not one of the choices offered.")


class NewBookingForm(FlaskForm):
    customer_id = IntegerField("Customer", validators=[InputRequired(message="Choose the customer."), ROW_ID])
    location_id = SelectField("Location", coerce=int)
    category = SelectField("Category", choices=[SelectChoice("", "Any category"), *choices(Category.values())],
                           validators=[Optional()])
    starts_at = DateTimeLocalField("Pick-up", format=LOCAL, validators=[DataRequired()])
    ends_at = DateTimeLocalField("Return", format=LOCAL, validators=[DataRequired()])
    item_id = IntegerField("Item", validators=[InputRequired(message="Choose an available item."), ROW_ID])
    notes = TextAreaField("Notes for the team", validators=[Optional(), Length(max=4000)])
    special_requests = TextAreaField("Special requests", validators=[Optional(), Length(max=4000)])
    status = SelectField("Create as", choices=[SelectChoice("pending_payment", "Hold and send for payment"),
                                               SelectChoice("quote", "Quote only (no hold)")])


class CancelForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired(message="Say why the booking is cancelled."),
                                               Length(max=240)])


class ReturnForm(FlaskForm):
    returned_at = DateTimeLocalField("Returned at (local time)", format=LOCAL, validators=[DataRequired()])


class TransitionForm(FlaskForm):
    """A bare confirmation: the CSRF token is the payload."""

    note = HiddenField()


class ChangeForm(FlaskForm):
    item_id = SelectField("Item", coerce=int)
    starts_at = DateTimeLocalField("Pick-up", format=LOCAL, validators=[DataRequired()])
    ends_at = DateTimeLocalField("Return", format=LOCAL, validators=[DataRequired()])


class RedeemForm(FlaskForm):
    points = IntegerField("Points to redeem", validators=[
        InputRequired(message="Enter how many points to redeem."),
        NumberRange(1, 2**31 - 1, message="Enter a number of points."),
    ])


class ReassignForm(FlaskForm):
    concierge_id = SelectField("Concierge", coerce=int)
