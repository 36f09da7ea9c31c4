"""Sign-in and staff account forms."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from midas.models import Role
from midas.services import DomainError
from midas.services.auth import MIN_PASSWORD_LENGTH, normalize_email

ROLE_CHOICES = [SelectChoice(role.value, role.value.capitalize()) for role in Role]


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def staff_email(_form, field) -> None:
    try:
        normalize_email(field.data or "")
    except DomainError as exc:
        raise ValidationError(str(exc)) from exc


class StaffForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), staff_email])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.CONCIERGE.value)
    password = PasswordField(
        "Initial password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024)]
    )


class PasswordResetForm(FlaskForm):
    password = PasswordField(
        "New password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024)]
    )
