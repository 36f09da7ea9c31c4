"""Sign-in and staff account forms."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length

from midas.models import Role
from midas.services.auth import MIN_PASSWORD_LENGTH

ROLE_CHOICES = [(role.value, role.value.capitalize()) for role in Role]


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class StaffForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.CONCIERGE.value)
    password = PasswordField(
        "Initial password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024)]
    )


class PasswordResetForm(FlaskForm):
    password = PasswordField(
        "New password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024)]
    )
