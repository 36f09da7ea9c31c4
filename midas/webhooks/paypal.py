"""PayPal IPN receiver: store the message exactly as delivered, acknowledge, and verify it in a job."""

from __future__ import annotations

from flask import Blueprint, request

from midas.extensions import csrf
from midas.services import paypal_ipn
from midas.tasks.paypal import dispatch_ipn

bp = Blueprint("paypal_ipn", __name__, url_prefix="/webhooks/paypal")
csrf.exempt(bp)  # PayPal cannot send our token; the message is verified with PayPal instead


@bp.post("/ipn")
def receive():
    """200 once stored (PayPal resends for days otherwise); a failure to store is a 500, so PayPal retries."""
    event_id, needs_processing = paypal_ipn.receive(request.get_data(cache=False), request.remote_addr)
    if needs_processing:
        dispatch_ipn(event_id)
    return "", 200
