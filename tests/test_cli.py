"""Operator commands, as in DESIGN.md."""

from midas.extensions import db
from midas.models import StaffUser
from tests.conftest import StaffClient


def test_users_create_reads_the_password_from_stdin(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "Boss@Midas.test", "--name", "Bo Ss", "--role", "owner", "--password-stdin"],
        input="a-very-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created owner boss@midas.test" in result.output
    assert StaffClient(app.test_client()).login("boss@midas.test", "a-very-long-password").status_code == 302


def test_users_create_prompts_twice_when_interactive(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "c@midas.test", "--name", "C"], input="a-very-long-password\na-very-long-password\n"
    )
    assert result.exit_code == 0 and db.session.query(StaffUser).one().role == "concierge"


def test_users_create_refuses_a_short_password_and_changes_nothing(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "d@midas.test", "--name", "D", "--password-stdin"], input="short\n"
    )
    assert result.exit_code != 0 and "at least 12 characters" in result.output
    assert db.session.query(StaffUser).count() == 0
