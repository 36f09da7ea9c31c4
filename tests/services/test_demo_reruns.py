"""Seeding the demo business again, or on a fresh database, is safe and repeatable."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from midas.extensions import db
from midas.models import Booking
from midas.services.demo import seed_demo
from tests.conftest import empty_database, make_staff
from tests.services.test_demo import NOW, _row_counts


def test_running_demo_seed_twice_creates_nothing_new(app):
    make_staff("admin", email="admin@midas.test")  # an existing account is kept, not duplicated
    assert seed_demo(NOW)["staff"] == 2
    before = _row_counts()
    again = seed_demo(NOW + timedelta(days=3))
    assert _row_counts() == before
    assert again == {}


def test_demo_data_is_the_same_on_every_fresh_database(app):
    seed_demo(NOW)
    first = sorted(db.session.scalars(select(Booking.reference)))
    db.session.remove()
    empty_database()
    seed_demo(NOW)
    assert sorted(db.session.scalars(select(Booking.reference))) == first
