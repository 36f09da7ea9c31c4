"""The schema comes from the migrations alone, and they match the models."""

from __future__ import annotations

from datetime import timedelta

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from midas import create_app
from midas.config import TestConfig
from midas.extensions import db
from midas.models import Booking, Customer, Item, Location, Payment, utcnow


def test_migrations_have_a_single_head(app):
    config = app.extensions["migrate"].migrate.get_config()
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_models_match_the_migrated_schema(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []


def test_migrated_database_is_at_head(app):
    config = app.extensions["migrate"].migrate.get_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head


def _booking(item: Item, customer: Customer, ref: str, start, days: int = 2, status: str = "confirmed") -> Booking:
    return Booking(reference=ref, checkout_token=f"tok-{ref}", customer=customer, item=item, status=status,
                   starts_at=start, ends_at=start + timedelta(days=days), block_starts_at=start,
                   block_ends_at=start + timedelta(days=days), currency="EUR", total_amount=1000)


@pytest.fixture
def fleet(app):
    location = Location(code="MCO", name="Monaco", city="Monaco", country="MC", timezone="Europe/Monaco",
                        currency="EUR")
    item = Item(location=location, category="car", name="Ferrari", currency="EUR", daily_rate=250000)
    customer = Customer(name="Grace", email="grace@example.com")
    db.session.add_all([location, item, customer])
    db.session.commit()
    return item, customer


def test_database_refuses_a_negative_payment(fleet):
    item, customer = fleet
    booking = _booking(item, customer, "MID-AAAAAA", utcnow())
    db.session.add(booking)
    db.session.commit()
    db.session.add(Payment(booking=booking, provider="stripe", amount=-5, currency="EUR", idempotency_key="k1"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_database_refuses_unknown_states_and_duplicate_references(fleet):
    item, customer = fleet
    db.session.add(_booking(item, customer, "MID-BBBBBB", utcnow(), status="teleported"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(_booking(item, customer, "MID-CCCCCC", utcnow()))
    db.session.commit()
    db.session.add(_booking(item, customer, "MID-CCCCCC", utcnow() + timedelta(days=30)))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_postgres_refuses_overlapping_blocking_bookings_of_one_item(fleet):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the exclusion constraint is PostgreSQL's; SQLite relies on the serialized booking service")
    item, customer = fleet
    start = utcnow()
    db.session.add(_booking(item, customer, "MID-DDDDDD", start))
    db.session.commit()
    db.session.add(_booking(item, customer, "MID-EEEEEE", start + timedelta(days=1)))
    with pytest.raises(sa.exc.IntegrityError, match="ex_bookings_no_overlap"):
        db.session.commit()
    db.session.rollback()
    # A cancelled booking no longer blocks, and back-to-back periods do not overlap.
    db.session.add(_booking(item, customer, "MID-FFFFFF", start + timedelta(days=1), status="cancelled"))
    db.session.add(_booking(item, customer, "MID-GGGGGG", start + timedelta(days=2)))
    db.session.commit()


def test_times_come_back_timezone_aware_utc(fleet):
    item, customer = fleet
    booking = _booking(item, customer, "MID-HHHHHH", utcnow())
    db.session.add(booking)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).starts_at.utcoffset() == timedelta(0)


def test_migrations_upgrade_an_empty_sqlite_file_and_downgrade_again(backend_env, tmp_path):
    # (The session's app fixture already upgraded an empty database of each backend.)
    app = create_app(TestConfig({**backend_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}))
    with app.app_context():
        flask_migrate.upgrade()
        assert "bookings" in sa.inspect(db.engine).get_table_names()
        flask_migrate.downgrade(revision="base")
        assert "bookings" not in sa.inspect(db.engine).get_table_names()
        db.engine.dispose()
