"""Calendar feeds (no login: calendar apps cannot sign in); the secret token in the URL is the key."""

from __future__ import annotations

from flask import Blueprint, Response

from midas.services import feeds

bp = Blueprint("feeds", __name__, url_prefix="/feeds")


@bp.get("/items/<int:item_id>/<token>.ics")
def item(item_id: int, token: str):
    return _calendar(feeds.item_feed(item_id, token))


@bp.get("/staff/<int:staff_id>/<token>.ics")
def staff(staff_id: int, token: str):
    return _calendar(feeds.staff_feed(staff_id, token))


def _calendar(text: str) -> Response:
    response = Response(text, mimetype="text/calendar")
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Disposition"] = 'inline; filename="midas.ics"'
    return response
