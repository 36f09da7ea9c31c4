"""Owners manage staff accounts; nobody else can, whatever they post."""

from __future__ import annotations

import pytest

from midas.extensions import db
from midas.models import AuditEntry, Role, StaffUser
from midas.services import PermissionDenied, auth
from tests.conftest import PASSWORD, StaffClient, make_staff, soup


def test_owner_adds_a_concierge_who_can_then_sign_in(app, login_as):
    owner = login_as("owner")
    response = owner.post("/staff/new", {"name": "Nora Night", "email": "Nora@Midas.test", "role": "concierge",
                                         "password": "a-long-enough-password"})
    assert response.status_code == 302
    page = owner.page("/staff")
    assert "nora@midas.test" in page.get_text()
    newcomer = StaffClient(app.test_client())
    assert newcomer.login("nora@midas.test", "a-long-enough-password").status_code == 302
    entry = db.session.query(AuditEntry).filter_by(action="staff.created").one()
    assert entry.after["email"] == "nora@midas.test" and entry.actor_label.startswith("owner-")


def test_new_staff_form_explains_what_is_wrong(login_as):
    owner = login_as("owner")
    response = owner.post("/staff/new", {"name": "", "email": "not-an-email", "role": "concierge", "password": "short"})
    assert response.status_code == 422
    errors = " ".join(e.get_text() for e in soup(response).select(".field-error"))
    assert "This field is required" in errors and "Invalid email" in errors and "12" in errors
    assert db.session.query(StaffUser).count() == 1


def test_duplicate_staff_email_is_refused(login_as):
    owner = login_as("owner")
    make_staff("admin", email="taken@midas.test")
    response = owner.post("/staff/new", {"name": "Twin", "email": "taken@midas.test", "role": "admin",
                                         "password": "a-long-enough-password"})
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)


def test_owner_resets_a_password_and_unlocks_the_account(app, login_as):
    from datetime import timedelta

    from midas.models import utcnow

    owner = login_as("owner")
    user = make_staff("concierge", email="locked@midas.test", locked_until=utcnow() + timedelta(minutes=10))
    assert owner.post(f"/staff/{user.id}/password", {"password": "brand-new-password-1"}).status_code == 302
    visitor = StaffClient(app.test_client())
    assert visitor.login("locked@midas.test", PASSWORD).status_code == 422
    assert visitor.login("locked@midas.test", "brand-new-password-1").status_code == 302


def test_owner_deactivates_and_reactivates_staff(login_as):
    owner = login_as("owner")
    user = make_staff("admin", email="leaving@midas.test")
    owner.post(f"/staff/{user.id}/deactivate")
    assert db.session.get(StaffUser, user.id).is_active is False
    assert "Deactivate" not in str(soup(owner.get("/staff")).find(id=f"staff-{user.id}"))
    owner.post(f"/staff/{user.id}/activate")
    assert db.session.get(StaffUser, user.id).is_active is True


def test_owner_cannot_deactivate_themselves(login_as):
    owner = login_as("owner")
    response = owner.post(f"/staff/{owner.user_id}/deactivate")
    assert response.status_code == 422
    assert "your own account" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["concierge", "admin"])
def test_non_owners_cannot_create_staff_even_by_posting_directly(login_as, role):
    staff = login_as(role)
    response = staff.post("/staff/new", {"name": "Mallory", "email": "mallory@midas.test", "role": "owner",
                                         "password": "a-long-enough-password"})
    assert response.status_code == 403
    assert db.session.query(StaffUser).filter_by(email="mallory@midas.test").count() == 0


def test_staff_service_rechecks_the_role_itself(app):
    admin = make_staff("admin")
    with pytest.raises(PermissionDenied):
        auth.create_staff(admin, "x@midas.test", "X", "owner", "a-long-enough-password")
    with pytest.raises(PermissionDenied):
        auth.reset_password(admin, admin.id, "a-long-enough-password")
    assert Role.OWNER.at_least(Role.ADMIN) and not Role.CONCIERGE.at_least(Role.ADMIN)
