"""Error pages in the house style, JSON for machine clients, and domain errors mapped to statuses."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from midas.services import DomainError

log = logging.getLogger(__name__)

TITLES = {
    400: "This request could not be accepted",
    403: "You do not have access to this page",
    404: "We could not find that page",
    405: "That action is not allowed here",
    413: "That upload is too large",
    422: "Please check the details",
    429: "Too many attempts",
    500: "Something went wrong on our side",
}


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(Exception, _unhandled)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.path.startswith("/webhooks/") and request.method == "POST" or (
        best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def _respond(status: int, reason: str):
    if _wants_json():
        return jsonify(error=TITLES.get(status, "Error"), reason=reason), status
    title = TITLES.get(status, "Error")
    return render_template("errors/error.html", status=status, title=title, reason=reason), status


def _csrf_error(error: CSRFError):
    return _respond(400, f"The form's security token was missing or out of date ({error.description}). "
                         "Reload the page and try again.")


def _http_error(error: HTTPException):
    if error.code and error.code >= 500:
        log.error("HTTP %s on %s", error.code, request.path)
    return _respond(error.code or 500, error.description or "")


def _domain_error(error: DomainError):
    return _respond(error.status_code, str(error))


def _unhandled(error: Exception):
    if current_app.testing and current_app.config.get("PROPAGATE_EXCEPTIONS") is not False:
        raise error  # tests see the real traceback, not the friendly page
    log.exception("unhandled error on %s %s", request.method, request.path)
    from midas.services.error_capture import capture_exception

    capture_exception(error)
    return _respond(500, InternalServerError.description)
