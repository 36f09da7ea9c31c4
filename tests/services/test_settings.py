"""Service-tier multipliers: the owner's to change, checked, versioned and audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from midas.extensions import db
from midas.models import AuditEntry, Setting
from midas.services import DomainError, PermissionDenied
from midas.services.settings import DEFAULT_TIER_MULTIPLIERS, get_tier_multipliers, set_tier_multipliers
from tests.conftest import make_staff

NEW = {"standard": 10000, "premium": 14000, "vvip": 20000}


def test_tiers_cost_the_defaults_until_an_owner_changes_them(app):
    assert get_tier_multipliers() == DEFAULT_TIER_MULTIPLIERS == {"standard": 10000, "premium": 13000, "vvip": 18000}


def test_owner_sets_new_multipliers_and_each_change_is_versioned_and_audited(app):
    owner = make_staff("owner")
    assert set_tier_multipliers(owner, NEW) == NEW
    set_tier_multipliers(owner, {**NEW, "vvip": 25000})
    db.session.expire_all()
    assert get_tier_multipliers() == {**NEW, "vvip": 25000}
    setting = db.session.get(Setting, "tier_multipliers")
    assert setting.version == 2 and setting.updated_by_id == owner.id
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "settings.tier_multipliers")
                                 .order_by(AuditEntry.id)).all()
    assert [(e.actor_id, e.before, e.after) for e in entries] == [
        (owner.id, DEFAULT_TIER_MULTIPLIERS, NEW),
        (owner.id, NEW, {**NEW, "vvip": 25000}),
    ]


@pytest.mark.parametrize("role", ["concierge", "admin"])
def test_only_an_owner_may_change_tier_pricing(app, role):
    with pytest.raises(PermissionDenied, match="owner"):
        set_tier_multipliers(make_staff(role), NEW)
    assert get_tier_multipliers() == DEFAULT_TIER_MULTIPLIERS


@pytest.mark.parametrize("values, reason", [
    ({"standard": 10000, "premium": 13000}, "each tier"),
    ({**NEW, "gold": 15000}, "each tier"),
    ({**NEW, "premium": 0}, "from 1 to 100,000"),
    ({**NEW, "vvip": 100001}, "from 1 to 100,000"),
    ({**NEW, "premium": 13000.5}, "whole number"),
    ({**NEW, "premium": "13000"}, "whole number"),
    ({**NEW, "standard": True}, "whole number"),
])
def test_bad_multipliers_are_refused_and_change_nothing(app, values, reason):
    owner = make_staff("owner")
    with pytest.raises(DomainError, match=reason):
        set_tier_multipliers(owner, values)
    db.session.rollback()
    assert db.session.get(Setting, "tier_multipliers") is None
    assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "settings.tier_multipliers")) is None


def test_the_extremes_of_the_range_are_accepted(app):
    values = {"standard": 1, "premium": 100000, "vvip": 10000}
    assert set_tier_multipliers(make_staff("owner"), values) == values
