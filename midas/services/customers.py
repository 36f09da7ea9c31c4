"""Customers: search and the customer record."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select

from midas.extensions import db
from midas.models import Customer, Tier
from midas.services import NotFound
from midas.services.listing import Page, like, order_by, paginate

SORTS = {"name": Customer.name, "created_at": Customer.created_at, "tier": Customer.tier,
         "loyalty_points": Customer.loyalty_points}


@dataclass
class CustomerFilters:
    q: str = ""
    tier: str = ""
    sort: str = "name"
    page: int = 1


def list_customers(filters: CustomerFilters) -> tuple[Page, str]:
    stmt = select(Customer)
    if filters.q:
        pattern = like(filters.q)
        stmt = stmt.where(or_(Customer.name.ilike(pattern), Customer.email.ilike(pattern),
                              Customer.phone.ilike(pattern)))
    if filters.tier in Tier.values():
        stmt = stmt.where(Customer.tier == filters.tier)
    stmt, sort = order_by(stmt, filters.sort, SORTS, "name", Customer.id)
    return paginate(stmt, filters.page), sort


def get_customer(customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("No such customer.")
    return customer
