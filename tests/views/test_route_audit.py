"""What a refused or switched-off staff member sees."""

from __future__ import annotations

from tests.conftest import make_staff

# Every route × every role is checked against the readable table in tests/reliability/test_attack_authorization.py.


def test_forbidden_page_is_styled_and_explains(login_as):
    response = login_as("concierge").get("/staff")
    assert response.status_code == 403
    assert "You do not have access to this page" in response.get_data(as_text=True)


def test_deactivated_staff_is_signed_out_on_next_request(app, login_as):
    staff = login_as("admin")
    owner = login_as("owner")
    owner.post(f"/staff/{staff.user_id}/deactivate")
    assert staff.get("/").status_code == 302


def test_every_navigation_area_opens_for_an_owner(app, login_as):
    from flask import url_for

    from midas.formatting import NAV_AREAS

    owner = login_as("owner")
    make_staff("concierge", email="other@midas.test")
    for endpoint, label, _ in NAV_AREAS:
        with app.test_request_context():
            url = url_for(endpoint)
        page = owner.page(url)
        assert page.h1, label
