"""The audit helper: every staff or system change leaves who, when, what, before and after."""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context, request

from midas.extensions import db
from midas.models import AuditEntry, StaffUser


def record(
    action: str,
    entity_type: str,
    entity_id: Any = None,
    *,
    actor: StaffUser | None = None,
    actor_label: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Add an audit entry to the current unit of work; the calling service commits it."""
    entry = AuditEntry(
        actor_id=actor.id if actor else None,
        actor_label=actor_label or (actor.email if actor else "system"),
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=_jsonable(before),
        after=_jsonable(after),
    )
    if has_request_context():
        entry.ip = request.remote_addr
        entry.request_id = g.get("request_id")
    db.session.add(entry)
    return entry


def snapshot(obj: Any, fields: list[str]) -> dict:
    """The named attributes of a record, for the before/after of an audit entry."""
    return {name: getattr(obj, name) for name in fields}


def _jsonable(values: dict | None) -> dict | None:
    if values is None:
        return None
    return {key: value if isinstance(value, int | float | str | bool | type(None)) else str(value)
            for key, value in values.items()}
