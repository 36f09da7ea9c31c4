"""Staff blueprints, one per area, registered in navigation order."""

from midas.views import (
    bookings,
    communications,
    customers,
    errors,
    events,
    home,
    inventory,
    jobs,
    payments,
    refunds,
    reports,
    settings,
    staff,
)

STAFF_BLUEPRINTS = [
    home.bp, bookings.bp, inventory.bp, customers.bp, payments.bp, refunds.bp, communications.bp,
    events.bp, errors.bp, jobs.bp, reports.bp, settings.bp, staff.bp,
]
