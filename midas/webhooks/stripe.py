"""Stripe webhook receiver: verify, store (committed), acknowledge, and apply in a job."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from midas.extensions import csrf
from midas.services import webhook_log
from midas.tasks.queue import dispatch_safely
from midas.tasks.webhooks import PROCESS_STRIPE_EVENT

bp = Blueprint("stripe_webhooks", __name__, url_prefix="/webhooks/stripe")
csrf.exempt(bp)  # Stripe cannot send our token; its signature is verified instead


@bp.post("")
def receive():
    """2xx only once the event is stored; 400 (413 for size) and nothing stored for anything unverified."""
    webhook_log.check_size(request.content_length, request.remote_addr)
    receipt = webhook_log.receive_stripe(request.get_data(cache=False), request.headers.get("Stripe-Signature"),
                                         request.remote_addr)
    if receipt.to_process:  # if Redis is down the event waits for the retry sweep: it is stored either way
        dispatch_safely(PROCESS_STRIPE_EVENT, receipt.event_id, queue="high",
                        description=f"stripe event {receipt.event_id}")
    return jsonify(received=True, duplicate=receipt.duplicate)
