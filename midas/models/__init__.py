"""Every model, imported here so Alembic and the app see the whole schema."""

from midas.models.audit import AuditEntry, Setting
from midas.models.bookings import BLOCKING_STATUSES, Booking, BookingLine, BookingStatus, LineKind
from midas.models.customers import Customer, Tier
from midas.models.errors import ErrorCategory, ErrorEvent, ErrorGroup, GroupStatus, Severity
from midas.models.events import EventStatus, WebhookEvent
from midas.models.inventory import Blackout, Category, Item, ItemStatus, Location, SeasonRule
from midas.models.notifications import Channel, Notification, NotificationStatus
from midas.models.payments import (
    Dispute,
    DisputeStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Provider,
    Refund,
    RefundOverride,
    RefundStatus,
)
from midas.models.staff import Role, StaffUser
from midas.models.types import utcnow

__all__ = [
    "BLOCKING_STATUSES", "AuditEntry", "Blackout", "Booking", "BookingLine", "BookingStatus", "Category",
    "Channel", "Customer", "Dispute", "DisputeStatus", "ErrorCategory", "ErrorEvent", "ErrorGroup",
    "EventStatus", "GroupStatus", "Item", "ItemStatus", "LineKind", "Location", "Notification",
    "NotificationStatus", "Payment", "PaymentKind", "PaymentStatus", "Provider", "Refund",
    "RefundOverride", "RefundStatus", "Role", "SeasonRule", "Setting", "Severity", "StaffUser",
    "Tier", "WebhookEvent", "utcnow",
]
