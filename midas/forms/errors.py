"""Error log forms: snoozing a group, and the owner's alert rules."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, Form, FormField, IntegerField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, Optional

from midas.models import ErrorCategory, Severity
from midas.services.errors import MAX_SNOOZE_EVENTS, SNOOZE_PERIODS


class SnoozeForm(FlaskForm):
    period = SelectField("For", choices=[SelectChoice("", "—"), *(SelectChoice(p, p) for p in SNOOZE_PERIODS)],
                         validators=[Optional()])
    events = IntegerField("or until this many more events", validators=[Optional(), NumberRange(1, MAX_SNOOZE_EVENTS)])


class AlertRuleForm(Form):
    """One category's rule (a sub-form: its fields are named "PAYMENT-events" and so on)."""

    enabled = BooleanField("On")
    min_severity = SelectField("Minimum severity", choices=Severity.values())
    events = IntegerField("Events", validators=[InputRequired(), NumberRange(1, 10000)])
    minutes = IntegerField("Within minutes", validators=[InputRequired(), NumberRange(1, 24 * 60)])


class AlertRulesForm(FlaskForm):
    PAYMENT = FormField(AlertRuleForm, "Payment")
    BOOKING = FormField(AlertRuleForm, "Booking")
    AUTHENTICATION = FormField(AlertRuleForm, "Authentication")
    WEBHOOK = FormField(AlertRuleForm, "Webhook")
    NOTIFICATION = FormField(AlertRuleForm, "Notification")
    SYSTEM = FormField(AlertRuleForm, "System")

    def values(self) -> dict[str, dict]:
        return {category: dict(self[category].data) for category in ErrorCategory.values()}
