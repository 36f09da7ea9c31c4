"""Fixtures: an app per database backend, a clean database per test, staff clients that sign in for real.

The suite runs once on SQLite with jobs in-process (the embedded default) and, when TEST_DATABASE_URL is
set, again on PostgreSQL with Redis from TEST_REDIS_URL (the production shape).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import flask_migrate
import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient

from midas import create_app
from midas.config import TestConfig
from midas.extensions import db, limiter
from midas.models import StaffUser
from midas.services.auth import hash_password
from midas.services.error_capture import flush_deferred
from tests.browser.fixtures import chromium, live_server, page, playwright_driver  # noqa: F401 (shared by every dir)

PASSWORD = "correct horse battery staple"
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_env(request, tmp_path_factory) -> dict[str, str]:
    """The environment of one backend; its schema is made by the migrations, as in production."""
    if request.param == "sqlite":
        return {"DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('db') / 'midas.db'}"}
    _reset_postgres(os.environ["TEST_DATABASE_URL"])
    env = {"DATABASE_URL": os.environ["TEST_DATABASE_URL"]}
    if os.environ.get("TEST_REDIS_URL"):
        env["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    return env


class RequestIsolatingClient(FlaskClient):
    """Each request gets its own app context (fresh `g` and session), as in a real server.

    Without this, requests reuse the test's app context, and `g` (where Flask-WTF caches the
    CSRF token) would leak from one request into the next.
    """

    def open(self, *args, **kwargs):
        db.session.commit()  # what the test set up is visible to the request
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.rollback()  # and the test re-reads what the request changed (no stale snapshot)
        return response


@pytest.fixture(scope="session")
def migrated_app(backend_env) -> Flask:
    app = create_app(TestConfig(backend_env))
    app.test_client_class = RequestIsolatingClient
    with app.app_context():
        flask_migrate.upgrade()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(migrated_app: Flask):
    """The app with an app context pushed; every table is emptied afterwards."""
    with migrated_app.app_context():
        yield migrated_app
        flush_deferred()  # errors captured during the test land now, not in the next test's database
        db.session.remove()
        empty_database()
        limiter.reset()
        if migrated_app.config["REDIS_URL"]:
            from midas.tasks.queue import redis

            redis().flushdb()


def empty_database() -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_staff(role: str = "concierge", email: str | None = None, active: bool = True, **fields) -> StaffUser:
    user = StaffUser(
        email=email or f"{role}@midas.test", name=fields.pop("name", f"{role.capitalize()} Person"), role=role,
        password_hash=hash_password(fields.pop("password", PASSWORD)), is_active_account=active, **fields,
    )
    db.session.add(user)
    db.session.commit()
    return user


@dataclass
class StaffClient:
    """A test client that behaves like a browser: reads the CSRF token from the page, as a form would."""

    client: FlaskClient

    def csrf_token(self) -> str:
        response = self.client.get("/login", follow_redirects=True)
        return soup(response).find("meta", attrs={"name": "csrf-token"})["content"]

    def login(self, email: str, password: str = PASSWORD):
        return self.post("/login", {"email": email, "password": password})

    def get(self, url: str, **kwargs):
        return self.client.get(url, **kwargs)

    def page(self, url: str) -> BeautifulSoup:
        response = self.client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        return soup(response)

    def post(self, url: str, data: dict | None = None, htmx: bool = False, **kwargs):
        data = {"csrf_token": self.csrf_token(), **(data or {})}
        headers = kwargs.pop("headers", {})
        if htmx:
            headers = {"HX-Request": "true", "X-CSRFToken": data.pop("csrf_token"), **headers}
        return self.client.post(url, data=data, headers=headers, **kwargs)


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def assert_inert(response, where: str) -> BeautifulSoup:
    """A page showing hostile text: served, with the text escaped, so no element or inline script came of it."""
    html = response.get_data(as_text=True)
    assert response.status_code == 200, where
    assert "<script>alert" not in html and "<img src=x" not in html, where
    parsed = soup(response)
    assert parsed.find("img") is None and not parsed.select("script:not([src])"), where
    return parsed


@pytest.fixture
def browser(client: FlaskClient) -> StaffClient:
    """An anonymous visitor."""
    return StaffClient(client)


@pytest.fixture
def login_as(app: Flask):
    """login_as("admin") → a StaffClient signed in as a fresh user of that role."""

    def _login(role: str = "concierge") -> StaffClient:
        user = make_staff(role, email=f"{role}-{os.urandom(3).hex()}@midas.test")
        staff = StaffClient(app.test_client())
        response = staff.login(user.email)
        assert response.status_code == 302, response.get_data(as_text=True)
        staff.user_id = user.id
        return staff

    return _login
