"""The payments dashboard as staff see it: counters, filters that explain themselves, pages, a timeline."""

from __future__ import annotations

from midas.extensions import db
from midas.models import WebhookEvent
from tests.services.test_payments_dashboard import booking, payment


def test_dashboard_shows_revenue_per_currency_and_the_counters(login_as):
    payment(amount=100000)
    payment(amount=50000, currency="GBP")
    payment(status="failed")

    page = login_as("concierge").page("/payments")

    today = page.select_one("[data-kpi='revenue-today']")
    assert today.select_one("[data-currency='EUR']").get_text() == "€1,000.00"
    assert today.select_one("[data-currency='GBP']").get_text() == "£500.00"
    assert page.select_one("[data-kpi='failed-24h']").get_text() == "1"
    assert page.select_one("[data-kpi='success-rate']").get_text() == "66.7%"


def test_amount_filter_without_currency_is_explained_on_the_form(login_as):
    page = login_as("concierge").page("/payments?amount_min=100")
    assert "Choose a currency" in page.select_one("[data-error='amount_min']").get_text()
    assert page.select_one("#amount-hint") is not None


def test_search_by_customer_and_htmx_gets_only_the_results(login_as):
    ada = payment(on=booking(name="Ada Lovelace"))
    payment()
    staff = login_as("concierge")
    response = staff.get("/payments?q=Lovelace", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert f"#{ada.id}" in html and "Net revenue" not in html and html.count("<tr>") == 2


def test_next_page_link_keeps_the_filters(login_as):
    on = booking()
    for n in range(27):
        payment(amount=1000 + n, on=on)
    page = login_as("concierge").page("/payments?status=succeeded")
    link = page.select_one("a[rel='next']")["href"]
    assert "status=succeeded" in link and "after=" in link


def test_payment_page_shows_its_provider_timeline(login_as):
    paid = payment(ref="pi_Shown1")
    db.session.add(WebhookEvent(provider="stripe", event_id="evt_x", type="payment_intent.succeeded",
                                status="processed", payload={"data": {"object": {"id": "pi_Shown1"}}}))
    db.session.commit()
    page = login_as("concierge").page(f"/payments/{paid.id}")
    [entry] = page.select("ol.timeline li[data-source='webhook']")
    assert "payment_intent.succeeded" in entry.get_text() and page.select_one("[data-status='succeeded']")
