"""Blueprint guards: every staff route needs a signed-in, active user with the area's role."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import Blueprint, abort
from flask_login import current_user

from midas.extensions import login_manager
from midas.models import Role


def staff_blueprint(name: str, import_name: str, minimum: Role = Role.CONCIERGE, **kwargs) -> Blueprint:
    """A blueprint whose every route requires login and at least `minimum`."""
    bp = Blueprint(name, import_name, **kwargs)
    bp.minimum_role = minimum

    @bp.before_request
    def _guard():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.has_role(minimum):
            abort(403)
        return None

    return bp


def role_required(minimum: Role) -> Callable:
    """Narrow one view of a blueprint to a higher role (e.g. admin-only changes)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_role(minimum):
                abort(403)
            return view(*args, **kwargs)

        wrapped.minimum_role = minimum
        return wrapped

    return decorator
