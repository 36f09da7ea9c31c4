"""Customer checkout (no login): the booking behind a secret link, and paying it by card.

The JSON endpoints are called by our own checkout page's script, which sends the page's CSRF token in
the X-CSRFToken header; they read nothing from the request body (the amount is the server's alone).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify, render_template, request

from midas.extensions import limiter
from midas.services import DomainError, NotFound, checkout

bp = Blueprint("checkout", __name__, url_prefix="/pay")


def _ip_limit() -> str:
    return current_app.config.get("CHECKOUT_INTENT_LIMIT", "10 per minute")


def _booking_limit() -> str:
    return current_app.config.get("CHECKOUT_BOOKING_LIMIT", "30 per hour")


def _booking_key() -> str:
    # The token is a secret: the limiter's storage only ever sees its hash.
    return "checkout-booking:" + hashlib.sha256(request.view_args["token"].encode()).hexdigest()[:32]


per_ip = limiter.shared_limit(_ip_limit, scope="checkout-intent")
per_booking = limiter.shared_limit(_booking_limit, scope="checkout-intent-booking", key_func=_booking_key)


@bp.get("/<token>")
def show(token: str):
    try:
        view = checkout.for_token(token)
    except NotFound as exc:
        return render_template("checkout/invalid.html", reason=str(exc)), 404
    returning = bool(request.args.get("payment_intent") or request.args.get("redirect_status"))
    return render_template("checkout/show.html", view=view, booking=view.booking, state=view.state,
                           returning=returning)


@bp.post("/<token>/intent")
@per_ip
@per_booking
def intent(token: str):
    return _intent_json(lambda: checkout.start_card_payment(token))


@bp.post("/<token>/deposit-intent")
@per_ip
@per_booking
def deposit_intent(token: str):
    return _intent_json(lambda: checkout.start_deposit_hold(token))


@bp.get("/<token>/status")
def status(token: str):
    view = checkout.for_token(token)
    return render_template("checkout/_status.html", view=view, booking=view.booking, state=view.state)


def _intent_json(start: Callable[[], checkout.IntentCreated]):
    try:
        created = start()
    except DomainError as exc:
        code = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()  # AlreadyPaid → already_paid
        return jsonify(error=code, reason=str(exc)), exc.status_code
    return jsonify(client_secret=created.client_secret, payment_intent=created.payment_intent,
                   amount=created.amount, currency=created.currency)
