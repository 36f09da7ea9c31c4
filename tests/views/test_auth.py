"""Signing in and out: the front door of the back office."""

from __future__ import annotations

from datetime import timedelta

from midas.extensions import db
from midas.models import AuditEntry, StaffUser, utcnow
from tests.conftest import PASSWORD, StaffClient, make_staff, soup


def test_staff_member_signs_in_and_lands_on_home(browser: StaffClient):
    make_staff("admin", email="ada@midas.test")
    response = browser.login("ADA@midas.test ")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Welcome back" in browser.page("/").get_text()


def test_wrong_password_shows_one_message_and_counts_the_failure(browser: StaffClient):
    user = make_staff()
    response = browser.login(user.email, "not the password")
    assert response.status_code == 422
    assert "Invalid email or password." in soup(response).select_one(".field-error").get_text()
    assert db.session.get(StaffUser, user.id).failed_logins == 1


def test_unknown_email_gets_the_same_message_as_a_wrong_password(browser: StaffClient):
    response = browser.login("nobody@midas.test", "whatever-password")
    assert "Invalid email or password." in response.get_data(as_text=True)


def test_five_failures_lock_the_account_for_fifteen_minutes(browser: StaffClient):
    user = make_staff()
    for _ in range(5):
        browser.login(user.email, "wrong password!")
    response = browser.login(user.email, PASSWORD)
    assert "locked for 15 minutes" in response.get_data(as_text=True)
    locked_until = db.session.get(StaffUser, user.id).locked_until
    assert timedelta(minutes=14) < locked_until - utcnow() <= timedelta(minutes=15)
    assert db.session.query(AuditEntry).filter_by(action="staff.locked").count() == 1


def test_lock_expires_after_fifteen_minutes(browser: StaffClient):
    user = make_staff(locked_until=utcnow() - timedelta(seconds=1))
    assert browser.login(user.email).status_code == 302


def test_deactivated_staff_cannot_sign_in(browser: StaffClient):
    user = make_staff(active=False)
    response = browser.login(user.email)
    assert response.status_code == 422
    assert "deactivated" in response.get_data(as_text=True)


def test_login_is_rate_limited_per_ip(app, browser: StaffClient):
    for _ in range(10):
        browser.login("someone@midas.test", "wrong password!")
    response = browser.login("someone@midas.test", "wrong password!")
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)


def test_rate_limit_counts_the_client_ip_not_a_forged_forwarded_header(app, browser: StaffClient):
    # Heroku's router appends the real client address; anything before it is the client's own claim.
    for n in range(10):
        browser.client.post(
            "/login", data={"email": "x@midas.test", "password": "wrong", "csrf_token": browser.csrf_token()},
            headers={"X-Forwarded-For": f"10.0.0.{n}, 203.0.113.9"},
        )
    response = browser.client.post(
        "/login", data={"email": "x@midas.test", "password": "wrong", "csrf_token": browser.csrf_token()},
        headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.9"},
    )
    assert response.status_code == 429


def test_session_is_renewed_at_login(app, browser: StaffClient):
    user = make_staff()
    with browser.client.session_transaction() as session:
        session["planted"] = "by an attacker before sign-in"
    browser.login(user.email)
    with browser.client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"] == f"{user.id}:1"


def test_logout_needs_post_and_ends_every_copy_of_the_session(app, browser: StaffClient):
    user = make_staff()
    browser.login(user.email)
    stolen = browser.client.get_cookie("session").value
    assert browser.get("/logout").status_code == 405
    response = browser.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 302  # the copied cookie no longer signs anyone in


def test_post_without_csrf_token_is_refused_with_400(browser: StaffClient):
    user = make_staff()
    response = browser.client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_htmx_post_without_csrf_header_is_refused(login_as):
    staff = login_as("owner")
    response = staff.client.post("/logout", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert staff.post("/logout", htmx=True).status_code == 302


def test_pages_send_the_csrf_token_as_an_htmx_header(login_as):
    page = login_as("concierge").page("/")
    token = page.find("meta", attrs={"name": "csrf-token"})["content"]
    assert token in page.body["hx-headers"]


def test_next_parameter_never_redirects_off_site(browser: StaffClient):
    user = make_staff()
    token = browser.csrf_token()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = browser.client.post(f"/login?next={target}",
                                       data={"email": user.email, "password": PASSWORD, "csrf_token": token})
        assert response.headers["Location"] == "/"
        browser.post("/logout")
        token = browser.csrf_token()


def test_next_parameter_returns_to_the_page_asked_for(browser: StaffClient):
    user = make_staff()
    assert browser.get("/bookings").headers["Location"].startswith("/login?next=")
    response = browser.client.post("/login?next=/bookings",
                                   data={"email": user.email, "password": PASSWORD, "csrf_token": browser.csrf_token()})
    assert response.headers["Location"] == "/bookings"


def test_password_is_stored_as_argon2id_at_owasp_cost(app):
    user = make_staff()
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
