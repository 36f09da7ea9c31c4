"""A local Stripe API on 127.0.0.1 for the real `stripe` SDK, and signed webhook deliveries.

Objects are built from the shapes Stripe publishes (tests/fixtures/stripe/objects.json, copied from
stripe-mock) with the fields a case needs changed. The fake keeps the Stripe rules Midas relies on:
a POST with an Idempotency-Key seen before gets the first answer again (and an idempotency_error if
its parameters differ); a 5xx is not remembered (Stripe replays only requests it executed); lists
page with `limit`, `starting_after` and `has_more`, newest first; capture and cancel refuse the
wrong state. Tests inject failures with `fail_next` (an error answer) and `slow_next` (the request
executes, then its answer comes too late: a timeout after the fact).

Import the fixtures into a test module: `from tests.fakes.stripe_api import fake_stripe, stripe_server  # noqa: F401`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from midas.extensions import db
from midas.models import Booking, Item, Payment, utcnow
from midas.tasks.worker import run_worker
from tests import factories

OBJECTS = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "stripe" / "objects.json").read_text())
SECRET_KEY = "sk_test_midasfake0000000000000000"
PUBLISHABLE_KEY = "pk_test_midasfake0000000000000000"
WEBHOOK_SECRET = "whsec_midastest00000000000000000000"
ROUTE = re.compile(r"^/v1/(?P<kind>payment_intents|refunds|charges|disputes)"
                   r"(?:/(?P<id>\w+))?(?:/(?P<action>capture|cancel))?$")
CANCELLABLE = {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"}


# Stripe-shaped objects.

def payment_intent(**fields) -> dict:
    """A PaymentIntent as Stripe returns it, from the published example, with `fields` changed."""
    base = copy.deepcopy(OBJECTS["payment_intent"])
    base.update({"id": f"pi_{secrets.token_hex(8)}", "amount_received": 0, "amount_capturable": 0, "canceled_at": None,
                 "last_payment_error": None, "next_action": None, "processing": None, "metadata": {},
                 "created": int(time.time()), "latest_charge": None})
    base.update(fields)
    if "client_secret" not in fields:
        base["client_secret"] = f"{base['id']}_secret_{secrets.token_hex(8)}"
    return base


def charge(**fields) -> dict:
    base = copy.deepcopy(OBJECTS["charge"])
    base.update({"id": f"ch_{secrets.token_hex(8)}", "created": int(time.time())})
    base.update(fields)
    return base


def refund(**fields) -> dict:
    base = copy.deepcopy(OBJECTS["refund"])
    base.update({"id": f"re_{secrets.token_hex(8)}", "created": int(time.time())})
    base.update(fields)
    return base


def dispute(**fields) -> dict:
    base = copy.deepcopy(OBJECTS["dispute"])
    base.update({"id": f"dp_{secrets.token_hex(8)}", "created": int(time.time())})
    base.update(fields)
    return base


def succeeded(intent: dict) -> dict:
    """The intent after the customer paid (what Stripe shows once the card was charged)."""
    return {**intent, "status": "succeeded", "amount_received": intent["amount"], "last_payment_error": None,
            "latest_charge": f"ch_{intent['id'][3:]}"}


def declined(intent: dict, decline_code: str = "insufficient_funds",
             message: str = "Your card has insufficient funds.") -> dict:
    """The intent after a declined attempt: back to requires_payment_method with the decline."""
    error = {"type": "card_error", "code": "card_declined", "decline_code": decline_code, "message": message}
    return {**intent, "status": "requires_payment_method", "last_payment_error": error}


def authorized(intent: dict) -> dict:
    """A manual-capture intent after the card authorised the hold."""
    return {**intent, "status": "requires_capture", "amount_capturable": intent["amount"]}


# Webhook deliveries.

def event(event_type: str, obj: dict, event_id: str | None = None, created: int | None = None) -> dict:
    """An event envelope around `obj`, shaped like OBJECTS["event"]."""
    envelope = copy.deepcopy(OBJECTS["event"])
    envelope.update({"id": event_id or f"evt_{secrets.token_hex(10)}", "type": event_type, "data": {"object": obj},
                     "created": created or int(time.time()), "api_version": "2025-09-30.clover"})
    return envelope


def signature(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's scheme, computed here rather than by the SDK: t=<unix>,v1=HMAC-SHA256(secret, "<t>.<payload>")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def deliver(client, envelope: dict | str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, **headers):
    """POST a signed delivery to /webhooks/stripe the way Stripe does."""
    payload = envelope if isinstance(envelope, str) else json.dumps(envelope)
    signed = {"Stripe-Signature": signature(payload, secret, timestamp), "Content-Type": "application/json"}
    return client.post("/webhooks/stripe", data=payload, headers={**signed, **headers})


# The fake API.

@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    params: dict

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


@dataclass
class Injected:
    method: str
    path_part: str
    status: int = 500
    body: dict | None = None
    delay: float = 0.0  # > 0: execute, then answer after this many seconds


@dataclass
class FakeStripe:
    server: HTTPServer
    objects: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {"payment_intents": {}, "refunds": {}, "charges": {}, "disputes": {}})
    answers: dict[str, tuple[str, int, dict]] = field(default_factory=dict)  # Idempotency-Key → params, answer
    seen: list[Seen] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    @property
    def intents(self) -> dict[str, dict]:
        return self.objects["payment_intents"]

    def add(self, kind: str, obj: dict) -> dict:
        """Store an object (payment_intents, refunds, charges, disputes) as Stripe would hold it."""
        self.objects[kind][obj["id"]] = obj
        return obj

    def update_intent(self, intent_id: str, change) -> dict:
        """Change a stored intent with one of the helpers (succeeded, declined, authorized)."""
        self.intents[intent_id] = change(self.intents[intent_id])
        return self.intents[intent_id]

    def fail_next(self, method: str, path_part: str, status: int = 500, body: dict | None = None,
                  times: int = 1) -> None:
        self.injected.extend(Injected(method, path_part, status, body) for _ in range(times))

    def slow_next(self, method: str, path_part: str, seconds: float, times: int = 1) -> None:
        self.injected.extend(Injected(method, path_part, delay=seconds) for _ in range(times))

    def calls(self, method: str = "POST", path_part: str = "/v1/payment_intents") -> list[Seen]:
        return [s for s in self.seen if s.method == method and path_part in s.path]

    def handle(self, request: Request) -> Response:
        params = _decode(request.get_data(as_text=True) if request.method == "POST" else request.query_string.decode())
        self.seen.append(Seen(request.method, request.path, dict(request.headers), params))
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return _json(401, _error("invalid_request_error", None, "Invalid API Key provided."))
        injected = self._injected(request)
        if injected and not injected.delay:
            return _json(injected.status, injected.body or _error("api_error", None, "Something went wrong."))
        status, body = self._idempotent(request, params)
        if injected:
            time.sleep(injected.delay)
        return _json(status, body)

    def _injected(self, request: Request) -> Injected | None:
        for injected in self.injected:
            if injected.method == request.method and injected.path_part in request.path:
                self.injected.remove(injected)
                return injected
        return None

    def _idempotent(self, request: Request, params: dict) -> tuple[int, dict]:
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        fingerprint = f"{request.path}?{json.dumps(params, sort_keys=True)}"
        if key in self.answers:
            first, status, body = self.answers[key]
            if first != fingerprint:
                return 400, _error("idempotency_error", None, "Keys for idempotent requests can only be used "
                                   "with the same parameters they were first used with.")
            return status, body
        status, body = self._route(request.method, request.path, params)
        if key and status < 500:
            self.answers[key] = (fingerprint, status, body)
        return status, body

    def _route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        match = ROUTE.match(path)
        if not match:
            return 404, _error("invalid_request_error", None, f"Unrecognized request URL ({method}: {path}).")
        kind, object_id, action = match["kind"], match["id"], match["action"]
        if object_id is None:
            return self._create(params) if method == "POST" else self._list(kind, params)
        obj = self.objects[kind].get(object_id)
        if obj is None:
            return 404, _error("invalid_request_error", "resource_missing", f"No such {kind[:-1]}: '{object_id}'")
        if action:
            return self._act(obj, action, params)
        return 200, copy.deepcopy(obj)

    def _create(self, params: dict) -> tuple[int, dict]:
        amount = int(params.get("amount") or 0)
        if amount < 1 or amount > 99_999_999:
            return 400, _error("invalid_request_error", "amount_too_large" if amount else "parameter_missing",
                               "Amount must be between 1 and 99,999,999.")
        intent = payment_intent(
            id=f"pi_fake{next(self.ids):06d}", amount=amount, currency=params["currency"],
            metadata=params.get("metadata") or {}, capture_method=params.get("capture_method", "automatic"),
            status="requires_payment_method", description=params.get("description"),
            payment_method_types=params.get("payment_method_types") or ["card"],
        )
        return 200, copy.deepcopy(self.add("payment_intents", intent))

    def _act(self, intent: dict, action: str, params: dict) -> tuple[int, dict]:
        if action == "capture":
            if intent["status"] != "requires_capture":
                return _unexpected_state(intent)
            amount = int(params.get("amount_to_capture") or intent["amount_capturable"])
            intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        elif intent["status"] not in CANCELLABLE:
            return _unexpected_state(intent)
        else:
            intent.update(status="canceled", amount_capturable=0, canceled_at=int(time.time()),
                          cancellation_reason=params.get("cancellation_reason"))
        return 200, copy.deepcopy(intent)

    def _list(self, kind: str, params: dict) -> tuple[int, dict]:
        created = params.get("created") or {}
        found = [o for o in self.objects[kind].values()
                 if o["created"] >= int(created.get("gte", 0)) and o["created"] < int(created.get("lt", 2**40))]
        found.sort(key=lambda o: (o["created"], o["id"]), reverse=True)
        after = params.get("starting_after")
        if after:
            found = found[[o["id"] for o in found].index(after) + 1:]
        limit = int(params.get("limit") or 10)
        return 200, {"object": "list", "url": f"/v1/{kind}", "has_more": len(found) > limit,
                     "data": copy.deepcopy(found[:limit])}


def _unexpected_state(intent: dict) -> tuple[int, dict]:
    return 400, _error("invalid_request_error", "payment_intent_unexpected_state",
                       f"This PaymentIntent's status is {intent['status']}.")


def _error(kind: str, code: str | None, message: str) -> dict:
    return {"error": {"type": kind, "code": code, "message": message}}


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json",
                    headers={"Request-Id": f"req_{secrets.token_hex(7)}"})


def _decode(encoded: str) -> dict:
    """Stripe's form encoding (metadata[key]=v, payment_method_types[0]=card) back into nested dicts and lists."""
    decoded: dict = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", name)
        node = decoded
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _listify(decoded)


def _listify(node):
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_listify(node[key]) for key in sorted(node, key=int)]
    return {key: _listify(value) for key, value in node.items()}


# Test data and helpers shared by the Stripe tests.

def card_booking(status: str = "pending_payment", total: int = 425000, currency: str = "EUR", deposit: int = 500000,
                 starts_in: timedelta = timedelta(days=10), item: Item | None = None) -> Booking:
    """A booking in Monaco paid by card; pending ones hold the item for 30 minutes."""
    location = factories.location("MCM", name="Monaco Port Hercule", city="Monaco", country="MC",
                                  timezone="Europe/Monaco", currency=currency)
    item = item or factories.item(location, name="Riva Aquarama", category="yacht", daily_rate=total,
                                  security_deposit=deposit)
    booking = factories.booking(item, starts_at=utcnow() + starts_in, days=1, status=status)
    booking.total_amount, booking.deposit_amount = total, deposit
    booking.hold_expires_at = utcnow() + timedelta(minutes=30) if status == "pending_payment" else None
    db.session.commit()
    return booking


def card_payment(booking: Booking, status: str = "pending", kind: str = "charge", amount: int | None = None,
                 intent_id: str | None = None) -> Payment:
    """A Stripe payment row as the checkout writes it (intent id in provider_ref)."""
    if amount is None:
        amount = booking.deposit_amount if kind == "deposit" else booking.total_amount
    payment = Payment(booking=booking, provider="stripe", kind=kind, status=status, amount=amount,
                      currency=booking.currency, amount_captured=0, amount_refunded=0,
                      provider_ref=intent_id or f"pi_{secrets.token_hex(8)}",
                      idempotency_key=f"booking:{booking.id}:{kind}:{amount}:{secrets.token_hex(4)}")
    db.session.add(payment)
    db.session.commit()
    return payment


def intent_for(payment: Payment, **fields) -> dict:
    """The PaymentIntent behind a payment row, as Stripe would show it."""
    shape = {"id": payment.provider_ref, "amount": payment.amount, "currency": payment.currency.lower(),
             "capture_method": "manual" if payment.kind == "deposit" else "automatic",
             "metadata": {"booking_reference": payment.booking.reference, "payment_id": str(payment.id)}}
    return payment_intent(**{**shape, **fields})


def run_jobs(app: Flask) -> None:
    """Let queued jobs run (PostgreSQL + Redis: an RQ worker in burst mode), then re-read what they wrote."""
    if app.config["REDIS_URL"]:
        run_worker(burst=True, with_scheduler=False)
    db.session.rollback()


@pytest.fixture(scope="session")
def stripe_server():
    # Threaded: a slow answer must not hold up the SDK's retry of the same request.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_stripe(app: Flask, stripe_server: HTTPServer, monkeypatch) -> FakeStripe:
    """The app pointed at a fresh fake Stripe for one test: keys, API base, short timeouts and retry sleeps."""
    stripe_server.clear()
    fake = FakeStripe(stripe_server)
    stripe_server.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    settings = {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
                "STRIPE_API_BASE": fake.url, "STRIPE_TIMEOUT_SECONDS": 1.0,
                "STRIPE_WEBHOOK_SECRETS": [WEBHOOK_SECRET]}
    for key, value in settings.items():
        monkeypatch.setitem(app.config, key, value)
    monkeypatch.setattr("stripe._http_client.HTTPClient.INITIAL_DELAY", 0.01)  # the SDK's retry sleeps
    monkeypatch.setattr("stripe._http_client.HTTPClient.MAX_DELAY", 0.05)
    yield fake
    stripe_server.clear()


@pytest.fixture
def stripe_webhooks(app: Flask, monkeypatch) -> str:
    """Webhook signing configured, without the Stripe API (events are applied from their payload)."""
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRETS", [WEBHOOK_SECRET])
    return WEBHOOK_SECRET
