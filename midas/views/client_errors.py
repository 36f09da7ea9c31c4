"""`POST /errors` (no login): browsers report script errors from our own pages, size-limited and rate-limited.

A public blueprint of its own: `GET /errors` is the staff error log, guarded by the `errors` blueprint.
There is no CSRF token to send (no session is needed), so the request must come from our own origin.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, request

from midas.extensions import csrf, limiter
from midas.services import InvalidInput, client_errors
from midas.services.client_errors import MAX_BYTES

bp = Blueprint("client_errors", __name__)
DEFAULT_LIMIT = "30 per minute"


def _limit() -> str:
    return current_app.config.get("CLIENT_ERROR_RATE_LIMIT") or DEFAULT_LIMIT


@bp.post("/errors")
@limiter.limit(_limit)
def create():
    if not _same_origin():
        return _refused(403, "Error reports are accepted from this site's own pages only.")
    try:
        report = client_errors.parse_report(request.stream.read(MAX_BYTES + 1))
    except InvalidInput as exc:
        return _refused(exc.status_code, str(exc))
    client_errors.record_client_error(report)
    return "", 204


def _same_origin() -> bool:
    """The Origin header (or, failing that, the Referer) names this host and scheme."""
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    parts = urlsplit(source)
    return bool(parts.netloc) and (parts.scheme, parts.netloc) == (request.scheme, request.host)


def _refused(status: int, reason: str):
    return jsonify(error="Error report refused", reason=reason), status


csrf.exempt(bp)
