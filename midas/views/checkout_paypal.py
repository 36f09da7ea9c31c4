"""Customer checkout (no login) beyond the card: PayPal orders and the offline methods."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from midas.extensions import limiter
from midas.services import checkout, paypal_payments

bp = Blueprint("checkout_paypal", __name__, url_prefix="/pay")


@bp.app_context_processor
def _other_methods():
    # The checkout page includes checkout/_other_methods.html, which asks what to offer through this.
    return {"other_payment_methods": paypal_payments.other_methods}


def _per_booking() -> str:
    # The token is a secret: the limiter's storage only ever sees its hash.
    return "paypal-order:" + hashlib.sha256(request.view_args["token"].encode()).hexdigest()[:32]


def _wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


@bp.post("/<token>/paypal/order")
@limiter.limit("10 per minute")
@limiter.limit("30 per hour", key_func=_per_booking)
def paypal_order(token: str):
    start = paypal_payments.start_order(token, url_for(".paypal_return", token=token, _external=True),
                                        url_for("checkout.show", token=token, _external=True))
    if _wants_json():
        return jsonify(order_id=start.order_id, approve_url=start.approve_url)
    if not start.approve_url:  # already approved at PayPal: straight to the confirmation
        return redirect(_return_page(token, start.order_id), 303)
    return render_template("checkout/paypal_redirect.html", booking=checkout.for_token(token).booking,
                           approve_url=start.approve_url, amount=start.amount)


def _return_page(token: str, order_id: str) -> str:
    # PayPal names the order `token` in the query, as it does when it sends the customer back.
    return f"{url_for('.paypal_return', token=token)}?{urlencode({'token': order_id})}"


@bp.get("/<token>/paypal/return")
def paypal_return(token: str):
    """PayPal sends the customer back here (its `token` argument is the order id) to confirm the payment."""
    view = checkout.for_token(token)
    order_id = request.args.get("token", "")
    return render_template("checkout/paypal_return.html", booking=view.booking, state=view.state, order_id=order_id,
                           methods=paypal_payments.other_methods(view.booking))


@bp.post("/<token>/paypal/capture")
def paypal_capture(token: str):
    body = request.get_json(silent=True) or {}
    payment = paypal_payments.capture_order(token, request.form.get("order_id") or str(body.get("order_id", "")))
    if _wants_json():
        return jsonify(payment_id=payment.id, status=payment.status)
    return redirect(url_for("checkout.show", token=token), 303)


@bp.post("/<token>/offline")
def offline(token: str):
    paypal_payments.choose_offline(token, request.form.get("method", ""))
    if request.htmx:
        view = checkout.for_token(token)
        return render_template("checkout/_other_methods.html", booking=view.booking, state=view.state)
    return redirect(url_for("checkout.show", token=token, _anchor="other-methods"), 303)
