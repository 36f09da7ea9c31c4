"""The demo business behind `flask seed --demo`: deterministic, believable, and safe to run twice."""

from __future__ import annotations

import hashlib
import json
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import select

from midas.extensions import db
from midas.models import (
    Blackout,
    Booking,
    BookingLine,
    BookingStatus,
    Category,
    Channel,
    Customer,
    Dispute,
    DisputeStatus,
    ErrorCategory,
    ErrorEvent,
    ErrorGroup,
    EventStatus,
    GroupStatus,
    Item,
    ItemStatus,
    Location,
    Notification,
    NotificationStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Provider,
    Refund,
    RefundOverride,
    RefundStatus,
    Role,
    SeasonRule,
    Severity,
    StaffUser,
    Tier,
    WebhookEvent,
    utcnow,
)
from midas.money import apply_bp, exponent, format_money
from midas.services import audit, pricing
from midas.services.auth import hash_password
from midas.services.bookings import lines_from

DEMO_PASSWORD = "midas-demo-password"
# (email, role) of the demo staff, all signing in with DEMO_PASSWORD.
DEMO_LOGINS = (
    ("owner@midas.test", Role.OWNER.value),
    ("admin@midas.test", Role.ADMIN.value),
    ("concierge@midas.test", Role.CONCIERGE.value),
)
DEMO_NAMES = {"owner@midas.test": "Olivia Owner", "admin@midas.test": "Adrian Admin",
              "concierge@midas.test": "Chloe Concierge"}
SEED = 2026
PAST_DAYS, FUTURE_DAYS = 120, 90
CUSTOMERS = 220
# No 0/O or 1/I/L: references are read out over the phone.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
ID_ALPHABET = string.ascii_letters + string.digits
TOKEN_ALPHABET = ID_ALPHABET + "-_"
HOLD = timedelta(hours=24)
STRIPE_API_VERSION = "2024-06-20"
PAYPAL_BUSINESS, PAYPAL_RECEIVER_ID = "payments@midas.example", "S8XGHLYDW9T3S"
COUNTED = ("locations", "items", "blackouts", "season_rules", "customers", "bookings", "booking_lines", "payments",
           "refunds", "disputes", "webhook_events", "notifications", "error_groups", "error_events")


@dataclass(frozen=True)
class Terms:
    """How a category is rented, and how busy the demo makes it."""

    buffer_hours: int
    min_days: int
    insurance_bp: int
    deposit_days: int
    stay_days: tuple[int, int]
    gap_days: tuple[int, int]
    pickup_hours: tuple[int, ...]
    unit: str
    spec_keys: tuple[str, ...]
    blurb: str


TERMS = {
    Category.CAR.value: Terms(
        2, 1, 1200, 5, (1, 6), (5, 25), (9, 10, 11, 14, 17), "day", ("seats", "power_hp"),
        "{name}, delivered anywhere in {city} and valeted before every hire: {seats} seats, {power_hp} hp."),
    Category.YACHT.value: Terms(
        6, 2, 800, 1, (2, 8), (6, 28), (10, 11), "day", ("length_m", "cabins", "guests", "crew"),
        "{name}: {length_m} m, {cabins} cabins for {guests} guests and a crew of {crew}, cruising from {city}."),
    Category.JET.value: Terms(
        3, 1, 500, 0, (1, 4), (5, 25), (7, 9, 13, 16, 19), "day", ("seats", "range_nm"),
        "{name} based near {city}: {seats} seats and {range_nm:,} nm of range; crew and catering included."),
    Category.PROPERTY.value: Terms(
        24, 3, 300, 2, (3, 12), (5, 28), (15, 16), "night", ("bedrooms", "bathrooms", "guests"),
        "{name}: {bedrooms} bedrooms and {bathrooms} bathrooms for {guests} guests; housekeeping and a concierge."),
}

LOCATIONS = (
    # code, name, city, country, time zone, currency, tax (VAT / sales tax) bp, service fee bp
    ("LON", "Midas Mayfair", "London", "GB", "Europe/London", "GBP", 2000, 500),
    ("MCO", "Midas Monte-Carlo", "Monaco", "MC", "Europe/Monaco", "EUR", 2000, 500),
    ("DXB", "Midas Dubai Marina", "Dubai", "AE", "Asia/Dubai", "AED", 500, 400),
    ("TYO", "Midas Ginza", "Tokyo", "JP", "Asia/Tokyo", "JPY", 1000, 300),
    ("MIA", "Midas Miami Beach", "Miami", "US", "America/New_York", "USD", 700, 600),
)

CATALOG = (
    # location, category, name, daily rate in major units, specs in the order of the category's spec_keys
    ("LON", "car", "Rolls-Royce Cullinan Black Badge", 1800, (5, 592)),
    ("LON", "car", "Bentley Continental GT Speed", 1400, (4, 650)),
    ("LON", "car", "Aston Martin DBS Volante", 1500, (4, 715)),
    ("LON", "car", "McLaren 750S Spider", 2200, (2, 740)),
    ("LON", "car", "Ferrari Purosangue", 2600, (4, 715)),
    ("LON", "car", "Range Rover SV Autobiography", 900, (5, 606)),
    ("LON", "car", "Rolls-Royce Phantom Extended", 2400, (5, 563)),
    ("LON", "car", "Aston Martin Valour", 3000, (2, 705)),
    ("LON", "jet", "Gulfstream G650ER", 78000, (16, 7500)),
    ("LON", "jet", "Bombardier Global 7500", 85000, (17, 7700)),
    ("LON", "jet", "Embraer Phenom 300E", 18000, (8, 2010)),
    ("LON", "jet", "Dassault Falcon 2000LXS", 42000, (10, 4000)),
    ("LON", "property", "Eaton Square Residence, Belgravia", 9500, (5, 5, 10)),
    ("LON", "property", "Hartwell Manor, Cotswolds", 12000, (9, 10, 18)),
    ("LON", "property", "Grosvenor Square Penthouse", 7500, (3, 4, 6)),
    ("MCO", "car", "Ferrari SF90 Stradale", 3500, (2, 986)),
    ("MCO", "car", "Bugatti Chiron Sport", 25000, (2, 1500)),
    ("MCO", "car", "Lamborghini Huracán STO", 2800, (2, 640)),
    ("MCO", "car", "Porsche 911 Turbo S Cabriolet", 1600, (4, 650)),
    ("MCO", "car", "Mercedes-AMG G 63", 1200, (5, 585)),
    ("MCO", "car", "Rolls-Royce Dawn", 1900, (4, 563)),
    ("MCO", "car", "Ferrari 296 GTS", 2600, (2, 830)),
    ("MCO", "yacht", "Benetti Oasis 40M", 65000, (40, 5, 10, 9)),
    ("MCO", "yacht", "Sunseeker 95 Yacht", 32000, (29, 4, 8, 5)),
    ("MCO", "yacht", "Riva 110 Dolcevita", 45000, (34, 5, 10, 6)),
    ("MCO", "yacht", "Azimut Grande 27 Metri", 28000, (27, 4, 8, 4)),
    ("MCO", "yacht", "Lürssen Aurora 62M", 160000, (62, 7, 12, 17)),
    ("MCO", "yacht", "Pershing GTX116", 52000, (35, 4, 8, 6)),
    ("MCO", "jet", "Dassault Falcon 8X", 62000, (14, 6450)),
    ("MCO", "jet", "Cessna Citation Latitude", 24000, (9, 2700)),
    ("MCO", "property", "Villa Belvedere", 18000, (7, 8, 14)),
    ("MCO", "property", "Villa Les Pins, Cap-Ferrat", 24000, (8, 9, 16)),
    ("MCO", "property", "Penthouse Le Larvotto", 11000, (4, 4, 8)),
    ("DXB", "car", "Lamborghini Urus Performante", 6500, (4, 657)),
    ("DXB", "car", "Rolls-Royce Ghost", 7500, (5, 563)),
    ("DXB", "car", "Ferrari 296 GTB", 8000, (2, 830)),
    ("DXB", "car", "Mercedes-Maybach S 680", 5500, (4, 621)),
    ("DXB", "car", "McLaren 765LT", 9500, (2, 765)),
    ("DXB", "car", "Bentley Bentayga Speed", 4800, (5, 650)),
    ("DXB", "car", "Nissan Patrol NISMO", 2500, (7, 428)),
    ("DXB", "yacht", "Majesty 100", 28000, (30, 5, 10, 5)),
    ("DXB", "yacht", "Majesty 140", 68000, (43, 6, 12, 9)),
    ("DXB", "yacht", "Sunseeker Manhattan 68", 16000, (21, 4, 8, 3)),
    ("DXB", "yacht", "Azimut 72", 19000, (22, 4, 8, 3)),
    ("DXB", "jet", "Bombardier Global 6500", 260000, (15, 6600)),
    ("DXB", "jet", "Gulfstream G700", 360000, (19, 7750)),
    ("DXB", "jet", "Embraer Legacy 650E", 150000, (13, 3900)),
    ("DXB", "property", "Palm Jumeirah Signature Villa", 45000, (6, 7, 12)),
    ("DXB", "property", "Emirates Hills Mansion", 60000, (8, 10, 16)),
    ("DXB", "property", "Burj Vista Penthouse", 22000, (4, 5, 8)),
    ("TYO", "car", "Nissan GT-R NISMO", 180000, (4, 600)),
    ("TYO", "car", "Lexus LFA", 600000, (2, 553)),
    ("TYO", "car", "Lexus LM 500h", 120000, (4, 366)),
    ("TYO", "car", "Toyota Century", 150000, (4, 425)),
    ("TYO", "car", "Ferrari Roma Spider", 350000, (4, 620)),
    ("TYO", "car", "Porsche Taycan Turbo S", 200000, (4, 761)),
    ("TYO", "car", "Lamborghini Revuelto", 700000, (2, 1015)),
    ("TYO", "yacht", "Princess Y85", 3200000, (26, 4, 8, 4)),
    ("TYO", "yacht", "Ferretti 860", 2400000, (26, 4, 8, 3)),
    ("TYO", "jet", "HondaJet Elite II", 2400000, (6, 1547)),
    ("TYO", "jet", "Gulfstream G500", 9800000, (13, 5300)),
    ("TYO", "property", "Hirafu Lodge, Niseko", 650000, (5, 4, 10)),
    ("TYO", "property", "Gion Machiya Residence, Kyoto", 480000, (3, 2, 6)),
    ("TYO", "property", "Azabudai Hills Penthouse", 900000, (3, 3, 6)),
    ("MIA", "car", "Lamborghini Huracán Sterrato", 2300, (2, 602)),
    ("MIA", "car", "Ferrari 812 Competizione", 4200, (2, 819)),
    ("MIA", "car", "Rolls-Royce Spectre", 3000, (4, 577)),
    ("MIA", "car", "Chevrolet Corvette Z06", 900, (2, 670)),
    ("MIA", "car", "McLaren Artura", 1800, (2, 671)),
    ("MIA", "car", "Cadillac Escalade-V", 700, (7, 682)),
    ("MIA", "car", "Porsche 911 GT3 RS", 2000, (2, 518)),
    ("MIA", "yacht", "Azimut 78 Flybridge", 16000, (24, 4, 8, 3)),
    ("MIA", "yacht", "Pershing GTX80", 24000, (25, 3, 6, 3)),
    ("MIA", "yacht", "Sunseeker Predator 65", 12000, (20, 3, 6, 2)),
    ("MIA", "yacht", "Lazzara LSX 92", 20000, (28, 4, 8, 4)),
    ("MIA", "yacht", "Benetti Oasis 34M", 48000, (34, 5, 10, 7)),
    ("MIA", "jet", "Cessna Citation X+", 32000, (9, 3460)),
    ("MIA", "jet", "Bombardier Challenger 350", 28000, (10, 3200)),
    ("MIA", "jet", "Gulfstream G280", 36000, (10, 3600)),
    ("MIA", "property", "Star Island Estate", 28000, (8, 10, 16)),
    ("MIA", "property", "Fisher Island Villa", 15000, (5, 6, 10)),
    ("MIA", "property", "Key Biscayne Beach House", 9000, (4, 4, 8)),
)

ITEM_STATUSES = {
    "Bugatti Chiron Sport": ItemStatus.MAINTENANCE.value,
    "Riva 110 Dolcevita": ItemStatus.MAINTENANCE.value,
    "Embraer Phenom 300E": ItemStatus.MAINTENANCE.value,
    "Nissan GT-R NISMO": ItemStatus.MAINTENANCE.value,
    "Rolls-Royce Dawn": ItemStatus.RETIRED.value,
    "Nissan Patrol NISMO": ItemStatus.RETIRED.value,
    "Sunseeker Predator 65": ItemStatus.RETIRED.value,
}

BLACKOUTS = (
    # item, first day counted from today, length in days, reason
    ("Bugatti Chiron Sport", -5, 14, "Annual service at Molsheim: tyres, fluids and carbon inspection"),
    ("Riva 110 Dolcevita", -10, 25, "Dry dock at Port Hercule: antifouling and hull survey"),
    ("Embraer Phenom 300E", -3, 9, "Phase 3 inspection at Farnborough MRO"),
    ("Nissan GT-R NISMO", -2, 6, "Clutch replacement at the NISMO Omori factory"),
    ("Benetti Oasis 40M", 35, 8, "Shipyard visit: teak deck refit"),
    ("Gulfstream G650ER", 52, 4, "Scheduled 12-month inspection"),
    ("Villa Belvedere", -75, 10, "Pool and terrace refurbishment"),
    ("Palm Jumeirah Signature Villa", 20, 5, "Deep clean and air-conditioning service before peak season"),
    ("Ferrari 812 Competizione", -40, 4, "Paint protection film renewal"),
)

SEASONS = (
    # name, location (None: everywhere), category (None: all), first (month, day), last (month, day), bp, priority
    ("Monaco summer peak", "MCO", None, (7, 1), (8, 31), 13000, 10),
    ("Monaco Grand Prix week", "MCO", None, (5, 20), (6, 8), 15000, 20),
    ("New Year peak", None, None, (12, 27), (1, 3), 12500, 30),
    ("Dubai winter season", "DXB", None, (11, 15), (3, 31), 11500, 10),
    ("Dubai summer low season", "DXB", None, (6, 15), (8, 31), 8500, 10),
    ("Sakura season", "TYO", None, (3, 25), (4, 10), 12000, 10),
    ("Niseko powder season", "TYO", "property", (12, 15), (2, 28), 14000, 20),
    ("Art Basel Miami Beach week", "MIA", None, (12, 1), (12, 10), 13500, 20),
    ("Miami winter boating season", "MIA", "yacht", (12, 15), (4, 15), 12000, 10),
    ("Ascot and Wimbledon", "LON", "car", (6, 15), (7, 14), 11500, 10),
)

REGIONS = (
    # preferred location, mobile prefixes (E.164) and digits after them, first names, last names
    ("LON", ("+447",), 9,
     ("Oliver", "Amelia", "Henry", "Charlotte", "Edward", "Isla", "Hugo", "Florence", "Rupert"),
     ("Ashworth", "Pemberton", "Fairfax", "Whitmore", "Hargreaves", "Cavendish", "Montague", "Sinclair")),
    ("MCO", ("+336", "+337"), 8,
     ("Louis", "Camille", "Antoine", "Chloe", "Mathieu", "Juliette", "Thibault", "Margaux"),
     ("Dubois", "Laurent", "Moreau", "Girard", "Rousseau", "Marchand", "Bertrand", "Delacroix")),
    ("DXB", ("+97150", "+97152", "+97155"), 7,
     ("Khalid", "Fatima", "Omar", "Mariam", "Rashid", "Noora", "Saeed", "Aisha"),
     ("Al Mansoori", "Al Nuaimi", "Al Falasi", "Al Suwaidi", "Al Marri", "Al Hashimi", "Al Shamsi", "Al Zaabi")),
    ("TYO", ("+8190", "+8180", "+8170"), 8,
     ("Haruto", "Yui", "Sota", "Hina", "Ren", "Sakura", "Kaito", "Aoi", "Takumi"),
     ("Tanaka", "Suzuki", "Takahashi", "Watanabe", "Yamamoto", "Nakamura", "Kobayashi", "Yoshida")),
    ("MIA", ("+1305", "+1786", "+1212", "+1310"), 7,
     ("James", "Olivia", "William", "Ava", "Theodore", "Harper", "Scarlett"),
     ("Whitaker", "Carrington", "Holloway", "Sterling", "Prescott", "Langley", "Blackwell", "Hastings")),
    ("MCO", ("+4176", "+4178", "+4179"), 7,
     ("Luca", "Lea", "Noah", "Mia", "Elias", "Lina", "Julian", "Nina"),
     ("Keller", "Weber", "Huber", "Meier", "Brunner", "Baumann", "Gerber", "Steiner")),
    ("MCO", ("+393",), 9,
     ("Alessandro", "Giulia", "Lorenzo", "Francesca", "Chiara", "Riccardo", "Valentina", "Tommaso"),
     ("Rossi", "Conti", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco")),
    ("LON", ("+4915", "+4916", "+4917"), 9,
     ("Maximilian", "Sophie", "Felix", "Emilia", "Leon", "Hannah", "Konstantin"),
     ("Schmidt", "Fischer", "Wagner", "Becker", "Hoffmann", "Schulz", "von Arnim")),
    ("MIA", ("+55119",), 8,
     ("Gabriel", "Isabela", "Rafael", "Manuela", "Thiago", "Larissa", "Bruno"),
     ("Silva", "Santos", "Oliveira", "Almeida", "Carvalho", "Ribeiro", "Moraes")),
    ("DXB", ("+9198", "+9199"), 8,
     ("Arjun", "Ananya", "Vikram", "Priya", "Rohan", "Kavya", "Aditya"),
     ("Mehta", "Kapoor", "Malhotra", "Oberoi", "Khanna", "Birla", "Chopra")),
)
CONSENT_SOURCES = ("booking form", "concierge call", "newsletter sign-up")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
TIER_WEIGHTS = {Tier.STANDARD.value: 60, Tier.PREMIUM.value: 28, Tier.VVIP.value: 12}
LOYALTY = {Tier.STANDARD.value: (0, 2500), Tier.PREMIUM.value: (2000, 20000), Tier.VVIP.value: (15000, 120000)}
CUSTOMER_NOTES = (
    "Prefers a black exterior and a chauffeur on longer hires.",
    "Travels with a small dog: pet-friendly villas only.",
    "Nut allergy; brief the yacht chef before every charter.",
    "Books through her PA; copy the PA on every confirmation.",
    "Pays by wire: allow three working days before pickup.",
    "Likes Krug on arrival.",
    "Referred by an existing VVIP client.",
    "Collect a passport copy before every jet charter.",
    "Prefers WhatsApp to phone calls.",
    "Often extends at the last minute; keep a day free after their bookings where possible.",
)
SPECIAL_REQUESTS = (
    "Child seat for a four-year-old", "Champagne and flowers on arrival", "Private chef for the first evening",
    "Airport meet-and-greet", "Delivery to the hotel entrance at 10:00", "Vegan menu for two guests",
    "Seabobs and a jet ski on board", "Late check-out if possible", "Extra stewardess for the children",
)
BOOKING_NOTES = ("Repeat client.", "Passport copy on file.", "Quote sent by WhatsApp.", "Deposit by card at handover.")
HOLD_EXPIRED = "Payment not completed before the hold expired"
CANCEL_REASONS = (
    "Client's travel plans changed",
    "Client chose a different yacht",
    "Duplicate booking made by the client's PA",
    HOLD_EXPIRED,
    "Family emergency",
    "Mistral warning: charter cancelled for weather (force majeure)",
    "Airport closure: flight cancelled (force majeure)",
)
GOODWILL_REASONS = ("Car delivered 90 minutes late", "Air conditioning failed on the second night",
                    "Tender out of service for one day of the charter")

PAST_STATUSES = {BookingStatus.COMPLETED.value: 82, BookingStatus.CANCELLED.value: 12, BookingStatus.NO_SHOW.value: 6}
SOON_STATUSES = {BookingStatus.CONFIRMED.value: 50, BookingStatus.PENDING_PAYMENT.value: 18,
                 BookingStatus.QUOTE.value: 14, BookingStatus.CANCELLED.value: 18}
LATER_STATUSES = {BookingStatus.CONFIRMED.value: 55, BookingStatus.QUOTE.value: 25, BookingStatus.CANCELLED.value: 20}
STAFF_WEIGHTS = {Role.CONCIERGE.value: 70, Role.ADMIN.value: 22, Role.OWNER.value: 8}
DECLINES = (("card_declined", "Your card was declined."), ("insufficient_funds", "Your card has insufficient funds."))
CARD_BRANDS = {"visa": 45, "mastercard": 30, "amex": 25}
CHARGE_PROVIDERS = {Provider.STRIPE.value: 75, Provider.PAYPAL.value: 15, Provider.BANK_TRANSFER.value: 10}
REFUND_OUTCOMES = {RefundStatus.SUCCEEDED.value: 55, RefundStatus.PENDING_APPROVAL.value: 20,
                   RefundStatus.FAILED.value: 10, RefundStatus.REJECTED.value: 5, RefundStatus.NO_REFUND.value: 10}
POLICY_RULES = {True: "Cancelled 14 or more days before pickup: refundable lines in full",
                False: "Cancelled less than 14 days before pickup: 50% of refundable lines"}
DISPUTES = (
    (DisputeStatus.NEEDS_RESPONSE, "fraudulent"), (DisputeStatus.NEEDS_RESPONSE, "product_not_received"),
    (DisputeStatus.WARNING_NEEDS_RESPONSE, "fraudulent"), (DisputeStatus.UNDER_REVIEW, "product_unacceptable"),
    (DisputeStatus.WON, "duplicate"), (DisputeStatus.LOST, "credit_not_processed"),
)
STRIPE_IPS = ("3.18.12.63", "3.130.192.231", "13.235.14.237", "18.211.135.69", "54.187.174.169", "54.187.205.235")
PAYPAL_IPS = ("173.0.81.1", "173.0.81.33", "66.211.170.66")
# Old messages were sent or gave up; the last few hours still have some waiting in the outbox.
SETTLED_STATUSES = {NotificationStatus.SENT.value: 97, NotificationStatus.FAILED.value: 3}
RECENT_STATUSES = {NotificationStatus.SENT.value: 50, NotificationStatus.PENDING.value: 50}
RECENT = timedelta(hours=6)
MESSAGES = {
    # purpose: (template, subject)
    "quote": ("booking_quote", "Your quote {ref}: {item}"),
    "checkout": ("checkout_link", "Complete your booking {ref}"),
    "confirmation": ("booking_confirmation", "Confirmed: {item}, booking {ref}"),
    "reminder": ("pickup_reminder", None),
    "thanks": ("thank_you", "Thank you for travelling with Midas"),
    "cancellation": ("booking_cancellation", "Booking {ref} cancelled"),
    "refund": ("refund_processed", "Your refund for booking {ref}"),
}
DELIVERY_ERRORS = {Channel.EMAIL.value: "TimeoutError: SMTP timeout after 30 s (smtp.midas.example:587)",
                   Channel.SMS.value: "TwilioRestException: HTTP 400 error: 21610 Attempt to send to unsubscribed "
                                      "recipient"}


@dataclass(frozen=True)
class Problem:
    """A recurring failure the error log shows, with where it is raised."""

    category: ErrorCategory
    severity: Severity
    error_type: str
    message: str
    status: GroupStatus
    occurrences: int
    where: str
    context: dict
    regression: bool = False


PROBLEMS = (
    Problem(ErrorCategory.WEBHOOK, Severity.MEDIUM, "SignatureVerificationError",
            "No signatures found matching the expected signature for payload", GroupStatus.OPEN, 9,
            "midas/webhooks/stripe.py:receive", {"path": "/webhooks/stripe", "provider": "stripe"}),
    Problem(ErrorCategory.WEBHOOK, Severity.LOW, "IPNVerificationError",
            "PayPal answered INVALID when the IPN was posted back", GroupStatus.IGNORED, 3,
            "midas/webhooks/paypal.py:verify", {"path": "/webhooks/paypal/ipn", "provider": "paypal"}),
    Problem(ErrorCategory.BOOKING, Severity.MEDIUM, "BookingConflict",
            "The item is already booked for an overlapping period (buffer time included)", GroupStatus.OPEN, 6,
            "midas/services/bookings.py:create_booking", {"path": "/bookings/new"}),
    Problem(ErrorCategory.BOOKING, Severity.LOW, "HoldExpired",
            "Checkout opened after the payment hold had expired", GroupStatus.RESOLVED, 4,
            "midas/views/checkout.py:show", {"path": "/pay/<token>"}),
    Problem(ErrorCategory.AUTHENTICATION, Severity.LOW, "AccountLocked",
            "Too many failed attempts: account locked for 15 minutes", GroupStatus.OPEN, 3,
            "midas/services/auth.py:authenticate", {"path": "/login"}),
    Problem(ErrorCategory.AUTHENTICATION, Severity.MEDIUM, "CSRFError", "The CSRF token is missing.",
            GroupStatus.RESOLVED, 5, "flask_wtf/csrf.py:protect", {"path": "/refunds/new"}),
    Problem(ErrorCategory.SYSTEM, Severity.HIGH, "ConnectionError",
            "Error 111 connecting to redis:6379. Connection refused.", GroupStatus.RESOLVED, 7,
            "midas/tasks/queue.py:enqueue", {"queue": "high"}),
    Problem(ErrorCategory.SYSTEM, Severity.MEDIUM, "OperationalError", "database is locked", GroupStatus.OPEN, 2,
            "midas/services/bookings.py:confirm_booking", {"database": "sqlite"}, regression=True),
    Problem(ErrorCategory.PAYMENT, Severity.HIGH, "APIConnectionError",
            "Could not reach Stripe: read timed out after 30 s", GroupStatus.RESOLVED, 3,
            "midas/integrations/stripe.py:create_intent", {"provider": "stripe"}),
)


@dataclass
class _Run:
    """Everything one seeding run has made so far, and the seeded randomness it draws from."""

    rng: random.Random
    now: datetime
    staff: dict[str, StaffUser]
    locations: dict[str, Location] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    blackouts: list[Blackout] = field(default_factory=list)
    season_rules: list[SeasonRule] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    bookings: list[Booking] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    events: list[WebhookEvent] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    error_groups: list[ErrorGroup] = field(default_factory=list)
    references: set[str] = field(default_factory=set)
    regulars: dict[Location, list[Customer]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        made = {name: len(getattr(self, name)) for name in ("items", "blackouts", "season_rules", "customers",
                                                              "bookings", "payments", "refunds", "disputes",
                                                              "notifications", "error_groups")}
        return made | {"locations": len(self.locations), "webhook_events": len(self.events),
                       "booking_lines": sum(len(booking.lines) for booking in self.bookings),
                       "error_events": sum(group.occurrences for group in self.error_groups)}


def seed_demo(now: datetime | None = None) -> dict[str, int]:
    """Create the demo business and its staff logins once; a later run creates nothing and returns {}."""
    now = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
    staff, created_staff = _ensure_staff(now)
    db.session.flush()
    if _already_seeded():
        db.session.commit()
        return {"staff": created_staff} if created_staff else {}
    run = _Run(random.Random(SEED), now, staff)
    for step in (_add_catalog, _add_customers, _add_bookings, _add_disputes, _add_webhook_events,
                 _add_notifications, _add_errors):
        step(run)
        db.session.flush()
    made = run.counts()
    counts = {"staff": created_staff} | {name: made[name] for name in COUNTED}
    audit.record("demo.seeded", "demo", actor_label="system", after=counts)
    db.session.commit()
    return counts


def _ensure_staff(now: datetime) -> tuple[dict[str, StaffUser], int]:
    emails = [email for email, _ in DEMO_LOGINS]
    found = {user.email: user for user in db.session.scalars(select(StaffUser).where(StaffUser.email.in_(emails)))}
    missing = [StaffUser(email=email, name=DEMO_NAMES[email], role=role, password_hash=hash_password(DEMO_PASSWORD),
                         created_at=now)
               for email, role in DEMO_LOGINS if email not in found]
    db.session.add_all(missing)
    users = found | {user.email: user for user in missing}
    return {role: users[email] for email, role in DEMO_LOGINS}, len(missing)


def _already_seeded() -> bool:
    codes = [code for code, *_ in LOCATIONS]
    return db.session.scalar(select(Location.id).where(Location.code.in_(codes)).limit(1)) is not None


# Catalog: locations, items, blackouts, season rules.

def _add_catalog(run: _Run) -> None:
    opened = run.now - timedelta(days=730)
    run.locations = {code: Location(code=code, name=name, city=city, country=country, timezone=zone,
                                    currency=currency, tax_rate_bp=tax_bp, service_fee_bp=fee_bp, created_at=opened)
                     for code, name, city, country, zone, currency, tax_bp, fee_bp in LOCATIONS}
    run.items = [_item(run, *entry) for entry in CATALOG]
    run.blackouts = _blackouts(run)
    run.season_rules = _season_rules(run)
    db.session.add_all([*run.locations.values(), *run.items, *run.blackouts, *run.season_rules])


def _item(run: _Run, code: str, category: str, name: str, rate: int, spec_values: tuple[int, ...]) -> Item:
    location, terms = run.locations[code], TERMS[category]
    specs = dict(zip(terms.spec_keys, spec_values, strict=True))
    daily_rate = rate * 10 ** exponent(location.currency)
    return Item(
        location=location, category=category, name=name, status=ITEM_STATUSES.get(name, ItemStatus.ACTIVE.value),
        description=terms.blurb.format(name=name, city=location.city, **specs), currency=location.currency,
        daily_rate=daily_rate, security_deposit=daily_rate * terms.deposit_days, insurance_rate_bp=terms.insurance_bp,
        buffer_before_hours=terms.buffer_hours, buffer_after_hours=terms.buffer_hours, min_days=terms.min_days,
        specs=specs, created_at=run.now - timedelta(days=run.rng.randint(200, 700)),
    )


def _blackouts(run: _Run) -> list[Blackout]:
    by_name = {item.name: item for item in run.items}
    return [_blackout(run, by_name[name], first, length, reason) for name, first, length, reason in BLACKOUTS]


def _blackout(run: _Run, item: Item, first: int, length: int, reason: str) -> Blackout:
    zone = ZoneInfo(item.location.timezone)
    day = run.now.astimezone(zone).date() + timedelta(days=first)
    starts_at = _local(day, 8, zone)
    return Blackout(item=item, starts_at=starts_at, ends_at=_local(day + timedelta(days=length), 18, zone),
                    reason=reason, created_by_id=run.staff[Role.ADMIN.value].id,
                    created_at=min(starts_at, run.now) - timedelta(days=14))


def _season_rules(run: _Run) -> list[SeasonRule]:
    first, last = (run.now - timedelta(days=PAST_DAYS)).date(), (run.now + timedelta(days=FUTURE_DAYS)).date()
    rules = []
    for year in range(first.year - 1, last.year + 1):
        for name, code, category, start, end, multiplier, priority in SEASONS:
            starts_on, ends_on = date(year, *start), date(year + (end < start), *end)
            if starts_on <= last and ends_on >= first:
                rules.append(SeasonRule(name=f"{name} {year}", location=run.locations.get(code), category=category,
                                        starts_on=starts_on, ends_on=ends_on, multiplier_bp=multiplier,
                                        priority=priority, created_at=run.now - timedelta(days=PAST_DAYS + 30)))
    return rules


# Customers.

def _add_customers(run: _Run) -> None:
    taken = set(db.session.scalars(select(Customer.email)))
    run.customers = [_customer(run, taken) for _ in range(CUSTOMERS)]
    db.session.add_all(run.customers)


def _customer(run: _Run, taken: set[str]) -> Customer:
    rng = run.rng
    home, prefixes, digits, firsts, lasts = rng.choice(REGIONS)
    first, last = rng.choice(firsts), rng.choice(lasts)
    tier, consent = _pick(rng, TIER_WEIGHTS), rng.random() < 0.4
    created_at = run.now - timedelta(days=rng.randint(30, 1100), minutes=rng.randint(0, 1440))
    return Customer(
        name=f"{first} {last}", email=_unique_email(rng, first, last, taken),
        phone=rng.choice(prefixes) + "".join(rng.choices(string.digits, k=digits)), tier=tier,
        notes=rng.choice(CUSTOMER_NOTES) if rng.random() < 0.25 else "",
        loyalty_points=rng.randint(*LOYALTY[tier]) // 10 * 10,
        email_opt_in=rng.random() < 0.95, sms_opt_in=rng.random() < 0.85, preferred_location=run.locations[home],
        marketing_consent=consent, marketing_consent_at=created_at if consent else None,
        marketing_consent_source=rng.choice(CONSENT_SOURCES) if consent else None, created_at=created_at,
    )


def _unique_email(rng: random.Random, first: str, last: str, taken: set[str]) -> str:
    local, domain = f"{first}.{last}".lower().replace(" ", ""), rng.choice(EMAIL_DOMAINS)
    email, number = f"{local}@{domain}", 1
    while email in taken:
        number += 1
        email = f"{local}{number}@{domain}"
    taken.add(email)
    return email


# Bookings, laid out one after another per item so blocking ones can never overlap.

def _add_bookings(run: _Run) -> None:
    run.references = set(db.session.scalars(select(Booking.reference)))
    for customer in run.customers:
        run.regulars.setdefault(customer.preferred_location, []).append(customer)
    blocked: dict[Item, list[Blackout]] = {}
    for blackout in run.blackouts:
        blocked.setdefault(blackout.item, []).append(blackout)
    for item in run.items:
        for starts_at, ends_at in _periods(run, item, blocked.get(item, [])):
            booking = _booking(run, item, starts_at, ends_at)
            run.bookings.append(booking)
            MONEY[booking.status](run, booking)
    db.session.add_all([*run.bookings, *run.payments, *run.refunds])


def _periods(run: _Run, item: Item, blackouts: list[Blackout]) -> list[tuple[datetime, datetime]]:
    """Back-to-back rental periods whose buffered blocks never overlap each other or a blackout."""
    terms, zone = TERMS[item.category], ZoneInfo(item.location.timezone)
    cursor, until = run.now - timedelta(days=PAST_DAYS), _calendar_end(run, item)
    periods = []
    while True:
        starts_at, ends_at = _next_period(run.rng, terms, zone, cursor)
        block_starts, block_ends = _block(item, starts_at, ends_at)
        if block_ends > until:
            return periods
        clash = next((b.ends_at for b in blackouts if b.starts_at < block_ends and block_starts < b.ends_at), None)
        if clash is None:
            periods.append((starts_at, ends_at))
        cursor = clash or block_ends


def _calendar_end(run: _Run, item: Item) -> datetime:
    if item.status == ItemStatus.RETIRED.value:
        return run.now - timedelta(days=run.rng.randint(20, 45))
    return run.now + timedelta(days=FUTURE_DAYS)


def _next_period(rng: random.Random, terms: Terms, zone: ZoneInfo, cursor: datetime) -> tuple[datetime, datetime]:
    # Pickup is on a later local day than `ready`, so the block starts after the cursor.
    ready = cursor + timedelta(hours=terms.buffer_hours, days=rng.randint(*terms.gap_days))
    day, hour = ready.astimezone(zone).date() + timedelta(days=1), rng.choice(terms.pickup_hours)
    return _local(day, hour, zone), _local(day + timedelta(days=rng.randint(*terms.stay_days)), hour, zone)


def _block(item: Item, starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    return (starts_at - timedelta(hours=item.buffer_before_hours),
            ends_at + timedelta(hours=item.buffer_after_hours))


def _booking(run: _Run, item: Item, starts_at: datetime, ends_at: datetime) -> Booking:
    rng = run.rng
    # Most clients book where they live; the well-travelled ones book anywhere.
    customer = rng.choice(run.regulars[item.location] if rng.random() < 0.6 else run.customers)
    status = _status_for(run, starts_at, ends_at)
    block_starts, block_ends = _block(item, starts_at, ends_at)
    created_at = _created_at(run, starts_at, status)
    booking = Booking(
        reference=_reference(run), checkout_token=_token(rng, 43), customer=customer, item=item,
        concierge=run.staff[_pick(rng, STAFF_WEIGHTS)], status=status, starts_at=starts_at, ends_at=ends_at,
        block_starts_at=block_starts, block_ends_at=block_ends, currency=item.currency,
        deposit_amount=item.security_deposit, lines=_lines(run, item, customer, starts_at, ends_at),
        notes=rng.choice(BOOKING_NOTES) if rng.random() < 0.2 else "",
        special_requests=rng.choice(SPECIAL_REQUESTS) if rng.random() < 0.3 else "",
        created_at=created_at, updated_at=created_at,
    )
    booking.total_amount = sum(line.amount for line in booking.lines)
    _status_details(run, booking)
    return booking


def _status_for(run: _Run, starts_at: datetime, ends_at: datetime) -> str:
    if ends_at <= run.now:
        return _pick(run.rng, PAST_STATUSES)
    if starts_at <= run.now:
        return BookingStatus.IN_PROGRESS.value
    soon = starts_at - run.now <= timedelta(days=21)
    return _pick(run.rng, SOON_STATUSES if soon else LATER_STATUSES)


def _created_at(run: _Run, starts_at: datetime, status: str) -> datetime:
    if status == BookingStatus.PENDING_PAYMENT.value:
        return run.now - timedelta(minutes=run.rng.randint(20, 20 * 60))
    created = starts_at - timedelta(days=run.rng.randint(2, 60), minutes=run.rng.randint(0, 600))
    return min(created, run.now - timedelta(hours=run.rng.randint(1, 72)))


def _status_details(run: _Run, booking: Booking) -> None:
    rng, status = run.rng, booking.status
    if status == BookingStatus.PENDING_PAYMENT.value:
        booking.hold_expires_at = booking.created_at + HOLD
    if status in (BookingStatus.IN_PROGRESS.value, BookingStatus.COMPLETED.value):
        booking.handed_over_at = booking.starts_at + timedelta(minutes=rng.randint(0, 40))
    if status == BookingStatus.COMPLETED.value:
        booking.returned_at = min(booking.ends_at + timedelta(minutes=rng.randint(-90, 45)), run.now)
        booking.updated_at = booking.returned_at
    if status == BookingStatus.CANCELLED.value:
        booking.cancel_reason = rng.choice(CANCEL_REASONS)
        booking.updated_at = _between(rng, booking.created_at, min(booking.starts_at, run.now), 0.2, 1.0)


def _reference(run: _Run) -> str:
    while True:
        reference = "MID-" + "".join(run.rng.choices(REFERENCE_ALPHABET, k=6))
        if reference not in run.references:
            run.references.add(reference)
            return reference


def _lines(run: _Run, item: Item, customer: Customer, starts_at: datetime, ends_at: datetime) -> list[BookingLine]:
    """Demo bookings are priced by the same engine as real ones, with the default tier multipliers."""
    item_terms, location_terms = pricing.terms_of(item)
    seasons = [pricing.season_terms(rule) for rule in run.season_rules]
    quote = pricing.quote_price(item_terms, location_terms, starts_at, ends_at, customer.tier, seasons)
    return lines_from(quote)


# Money: what each booking state has been paid, held and refunded.

def _money_none(run: _Run, booking: Booking) -> None:
    """Quotes have not been paid for."""


def _money_pending(run: _Run, booking: Booking) -> None:
    roll = run.rng.random()
    if roll < 0.35:
        _failed_attempt(run, booking)
    elif roll < 0.6:
        payment = _payment(run, booking, Provider.BANK_TRANSFER.value, booking.created_at, PaymentStatus.PENDING)
        payment.reference_note = f"Wire expected from {booking.customer.name}, reference {booking.reference}"


def _money_confirmed(run: _Run, booking: Booking) -> Payment:
    if run.rng.random() < 0.08:
        _failed_attempt(run, booking)
    return _charge(run, booking)


def _money_in_progress(run: _Run, booking: Booking) -> None:
    _charge(run, booking)
    _deposit(run, booking, PaymentStatus.AUTHORIZED)


def _money_completed(run: _Run, booking: Booking) -> None:
    payment = _charge(run, booking)
    _deposit(run, booking, PaymentStatus.RELEASED)
    if run.rng.random() < 0.04 and payment.provider != Provider.BANK_TRANSFER.value:
        at = booking.returned_at + timedelta(hours=run.rng.randint(2, 48))
        _refund(run, payment, apply_bp(payment.amount, 1000), RefundStatus.SUCCEEDED.value, at,
                reason=run.rng.choice(GOODWILL_REASONS), override=RefundOverride.GOODWILL)


def _money_cancelled(run: _Run, booking: Booking) -> None:
    if run.rng.random() < 0.35 or booking.cancel_reason == HOLD_EXPIRED:
        return
    payment = _charge(run, booking)
    outcome = _pick(run.rng, REFUND_OUTCOMES)
    if outcome:
        _cancellation_refund(run, booking, payment, outcome)


def _failed_attempt(run: _Run, booking: Booking) -> None:
    at = booking.created_at + timedelta(minutes=run.rng.randint(2, 15))
    payment = _payment(run, booking, Provider.STRIPE.value, at, PaymentStatus.FAILED)
    payment.failure_code, payment.failure_message = run.rng.choice(DECLINES)


def _charge(run: _Run, booking: Booking) -> Payment:
    provider = _pick(run.rng, CHARGE_PROVIDERS)
    latest = min(booking.starts_at, run.now, booking.updated_at if booking.cancel_reason else run.now)
    payment = _payment(run, booking, provider, _between(run.rng, booking.created_at, latest, 0.02, 0.3),
                       PaymentStatus.SUCCEEDED)
    if provider == Provider.BANK_TRANSFER.value:
        payment.confirmed_by_id = run.staff[Role.ADMIN.value].id
        payment.reference_note = f"SWIFT MT103 {_token(run.rng, 12, string.ascii_uppercase + string.digits)}"
    return payment


def _deposit(run: _Run, booking: Booking, status: PaymentStatus) -> None:
    if not booking.deposit_amount:
        return
    at = booking.starts_at - timedelta(minutes=run.rng.randint(30, 120))
    payment = _payment(run, booking, Provider.STRIPE.value, at, status, kind=PaymentKind.DEPOSIT)
    if status == PaymentStatus.RELEASED:
        payment.updated_at = min(booking.returned_at + timedelta(hours=run.rng.randint(2, 30)), run.now)


def _payment(run: _Run, booking: Booking, provider: str, at: datetime, status: PaymentStatus,
             kind: PaymentKind = PaymentKind.CHARGE) -> Payment:
    rng, succeeded = run.rng, status == PaymentStatus.SUCCEEDED
    amount = booking.deposit_amount if kind == PaymentKind.DEPOSIT else booking.total_amount
    payment = Payment(
        booking=booking, provider=provider, kind=kind.value, status=status.value, amount=amount,
        currency=booking.currency, amount_captured=amount if succeeded else 0, amount_refunded=0,
        provider_ref=_provider_ref(rng, provider), idempotency_key=f"demo-{_token(rng, 32, ID_ALPHABET)}",
        method=_method(rng, provider), created_at=at, updated_at=at,
        succeeded_at=min(at + timedelta(seconds=rng.randint(2, 90)), run.now) if succeeded else None,
    )
    run.payments.append(payment)
    return payment


def _provider_ref(rng: random.Random, provider: str) -> str | None:
    if provider == Provider.STRIPE.value:
        return f"pi_3{_token(rng, 23, ID_ALPHABET)}"
    if provider == Provider.PAYPAL.value:
        return _paypal_id(rng)
    return None


def _method(rng: random.Random, provider: str) -> str:
    if provider == Provider.STRIPE.value:
        return _pick(rng, CARD_BRANDS)
    return "paypal" if provider == Provider.PAYPAL.value else "wire"


def _cancellation_refund(run: _Run, booking: Booking, payment: Payment, outcome: str) -> None:
    force_majeure = "force majeure" in booking.cancel_reason
    in_full = force_majeure or booking.starts_at - booking.updated_at >= timedelta(days=14)
    refundable = sum(line.amount for line in booking.lines if line.refundable)
    at = booking.updated_at + timedelta(minutes=run.rng.randint(5, 180))
    if outcome == RefundStatus.PENDING_APPROVAL.value and at < run.now - timedelta(days=10):
        outcome = RefundStatus.SUCCEEDED.value  # approvals do not wait for weeks
    amount = refundable if in_full else apply_bp(refundable, 5000)
    rule = None if force_majeure else POLICY_RULES[in_full]
    if outcome == RefundStatus.NO_REFUND.value:  # a late cancellation: the decision to refund nothing is kept
        amount, rule, force_majeure = 0, "Cancelled at the last minute: nothing refundable", False
    _refund(run, payment, amount, outcome, at, reason=booking.cancel_reason, rule=rule,
            override=RefundOverride.FORCE_MAJEURE if force_majeure else RefundOverride.NONE)


def _refund(run: _Run, payment: Payment, amount: int, status: str, at: datetime, *, reason: str,
            override: RefundOverride, rule: str | None = None) -> None:
    asked_by = run.rng.choice((Role.CONCIERGE.value, Role.ADMIN.value))
    # A DB check forbids approving one's own request: an admin's request goes to the owner.
    requester, approver = run.staff[asked_by], run.staff[Role.OWNER.value if asked_by == Role.ADMIN.value
                                                         else Role.ADMIN.value]
    decided = status != RefundStatus.PENDING_APPROVAL.value
    at = min(at, run.now)
    refund = Refund(
        payment=payment, booking=payment.booking, amount=amount, currency=payment.currency, status=status,
        reason=reason, override=override.value, policy_version=1, policy_rule=rule,
        idempotency_key=f"demo-{_token(run.rng, 32, ID_ALPHABET)}", requested_by=requester,
        approved_by=approver if decided else None,
        decided_at=min(at + timedelta(hours=2), run.now) if decided else None,
        created_at=at, updated_at=at,
    )
    _settle(run, refund)
    run.refunds.append(refund)


def _settle(run: _Run, refund: Refund) -> None:
    stripe = refund.payment.provider == Provider.STRIPE.value
    if refund.status == RefundStatus.SUCCEEDED.value:
        refund.provider_ref = f"re_3{_token(run.rng, 23, ID_ALPHABET)}" if stripe else _provider_ref(
            run.rng, refund.payment.provider)
        refund.succeeded_at = refund.updated_at = min(refund.decided_at + timedelta(minutes=4), run.now)
        payment = refund.payment
        payment.amount_refunded += refund.amount  # the state follows, as services.refunds.settle keeps it
        payment.status = (PaymentStatus.REFUNDED if payment.amount_refunded >= payment.amount_captured
                          else PaymentStatus.PARTIALLY_REFUNDED).value
    elif refund.status == RefundStatus.FAILED.value:
        refund.provider_ref = f"re_3{_token(run.rng, 23, ID_ALPHABET)}" if stripe else None
        refund.failure_reason = "expired_or_canceled_card: the bank returned the refund"
    elif refund.status == RefundStatus.REJECTED.value:
        refund.decision_reason = "Outside the refund window; a credit towards a future booking was offered instead."


MONEY = {
    BookingStatus.QUOTE.value: _money_none,
    BookingStatus.PENDING_PAYMENT.value: _money_pending,
    BookingStatus.CONFIRMED.value: _money_confirmed,
    BookingStatus.IN_PROGRESS.value: _money_in_progress,
    BookingStatus.COMPLETED.value: _money_completed,
    BookingStatus.NO_SHOW.value: _money_confirmed,
    BookingStatus.CANCELLED.value: _money_cancelled,
}


# Disputes.

def _add_disputes(run: _Run) -> None:
    settled = run.now - timedelta(days=10)
    candidates = [p for p in run.payments if p.provider == Provider.STRIPE.value and p.kind == PaymentKind.CHARGE.value
                  and p.status == PaymentStatus.SUCCEEDED.value and not p.amount_refunded
                  and p.booking.status == BookingStatus.COMPLETED.value and p.booking.ends_at < settled]
    picked = run.rng.sample(candidates, min(len(DISPUTES), len(candidates)))
    run.disputes = [_dispute(run, payment, status, reason)
                    for payment, (status, reason) in zip(picked, DISPUTES, strict=False)]
    db.session.add_all(run.disputes)


def _dispute(run: _Run, payment: Payment, status: DisputeStatus, reason: str) -> Dispute:
    still_open = status in (DisputeStatus.NEEDS_RESPONSE, DisputeStatus.WARNING_NEEDS_RESPONSE)
    if still_open:
        created = run.now - timedelta(days=run.rng.randint(1, 5), hours=run.rng.randint(0, 12))
    else:
        created = payment.booking.ends_at + timedelta(days=run.rng.randint(3, 8))
    updated = created if still_open else min(created + timedelta(days=run.rng.randint(2, 20)), run.now)
    return Dispute(payment=payment, booking=payment.booking, provider=Provider.STRIPE.value,
                   provider_ref=f"du_1{_token(run.rng, 23, ID_ALPHABET)}", amount=payment.amount,
                   currency=payment.currency, reason=reason, status=status.value,
                   evidence_due_by=created + timedelta(days=14), created_at=created, updated_at=updated)


# Webhook events, shaped like what Stripe and PayPal actually send.

def _add_webhook_events(run: _Run) -> None:
    for payment in run.payments:
        run.events.extend(_payment_events(run, payment))
    for refund in run.refunds:
        run.events.extend(_refund_events(run, refund))
    for dispute in run.disputes:
        run.events.extend(_dispute_events(run, dispute))
    run.events.extend(_stray_events(run))
    db.session.add_all(run.events)


def _payment_events(run: _Run, payment: Payment) -> list[WebhookEvent]:
    if payment.provider == Provider.PAYPAL.value and payment.status in PaymentStatus.paid():
        fields = _ipn(run, payment, "Completed", payment.provider_ref, payment.succeeded_at, payment.amount)
        return [_ipn_event(run, fields, payment.succeeded_at, payment.booking)]
    if payment.provider != Provider.STRIPE.value:
        return []
    if payment.status == PaymentStatus.FAILED.value:
        return [_stripe_event(run, "payment_intent.payment_failed", _intent(payment, "requires_payment_method"),
                              payment.created_at, payment.booking)]
    if payment.kind == PaymentKind.DEPOSIT.value:
        return _deposit_events(run, payment)
    events = [_stripe_event(run, "payment_intent.succeeded", _intent(payment, "succeeded"), payment.succeeded_at,
                            payment.booking)]
    if run.rng.random() < 0.15:
        events.append(_stripe_event(run, "charge.succeeded", _charge_object(payment, []), payment.succeeded_at,
                                    payment.booking, EventStatus.IGNORED))
    return events


def _deposit_events(run: _Run, payment: Payment) -> list[WebhookEvent]:
    held = _stripe_event(run, "payment_intent.amount_capturable_updated", _intent(payment, "requires_capture"),
                         payment.created_at, payment.booking)
    if payment.status != PaymentStatus.RELEASED.value:
        return [held]
    return [held, _stripe_event(run, "payment_intent.canceled", _intent(payment, "canceled"), payment.updated_at,
                                payment.booking)]


def _refund_events(run: _Run, refund: Refund) -> list[WebhookEvent]:
    payment, booking = refund.payment, refund.booking
    if refund.status == RefundStatus.SUCCEEDED.value and payment.provider == Provider.PAYPAL.value:
        fields = _ipn(run, payment, "Refunded", refund.provider_ref, refund.succeeded_at, -refund.amount)
        return [_ipn_event(run, fields, refund.succeeded_at, booking)]
    if payment.provider != Provider.STRIPE.value or not refund.provider_ref:
        return []
    if refund.status == RefundStatus.SUCCEEDED.value:
        return [_stripe_event(run, "charge.refunded", _charge_object(payment, [refund]), refund.succeeded_at, booking)]
    return [_stripe_event(run, "refund.failed", _refund_object(refund), refund.updated_at, booking)]


def _dispute_events(run: _Run, dispute: Dispute) -> list[WebhookEvent]:
    opening = DisputeStatus.WARNING_NEEDS_RESPONSE if dispute.status.startswith("warning") else None
    created = _stripe_event(run, "charge.dispute.created",
                            _dispute_object(dispute, opening or DisputeStatus.NEEDS_RESPONSE), dispute.created_at,
                            dispute.booking)
    if dispute.updated_at == dispute.created_at:
        return [created]
    closed = dispute.status in (DisputeStatus.WON.value, DisputeStatus.LOST.value)
    kind = "charge.dispute.closed" if closed else "charge.dispute.updated"
    return [created, _stripe_event(run, kind, _dispute_object(dispute, DisputeStatus(dispute.status)),
                                   dispute.updated_at, dispute.booking)]


def _stray_events(run: _Run) -> list[WebhookEvent]:
    """Events Midas ignores (not about a booking) and a few it failed to process."""
    events = []
    for days, kind, prefix in ((2, "customer.created", "cus"), (9, "payment_method.attached", "pm"),
                               (30, "balance.available", "bal")):
        at = run.now - timedelta(days=days, minutes=run.rng.randint(0, 600))
        obj = {"id": f"{prefix}_{_token(run.rng, 14, ID_ALPHABET)}", "object": kind.split(".")[0]}
        events.append(_stripe_event(run, kind, obj, at, None, EventStatus.IGNORED))
    for days in (1, 6):
        at = run.now - timedelta(days=days, minutes=run.rng.randint(0, 600))
        obj = {"id": f"pi_3{_token(run.rng, 23, ID_ALPHABET)}", "object": "payment_intent", "amount": 250000,
               "currency": "eur", "status": "succeeded", "metadata": {}}
        events.append(_stripe_event(run, "payment_intent.succeeded", obj, at, None, EventStatus.FAILED,
                                    f"No booking carries payment_intent {obj['id']} (no booking_reference)"))
    return events


def _stripe_event(run: _Run, kind: str, obj: dict, at: datetime, booking: Booking | None,
                  status: EventStatus = EventStatus.PROCESSED, error: str | None = None) -> WebhookEvent:
    envelope = {"id": f"evt_3{_token(run.rng, 23, ID_ALPHABET)}", "object": "event",
                "api_version": STRIPE_API_VERSION, "created": int(at.timestamp()), "data": {"object": obj},
                "livemode": False, "pending_webhooks": 0,
                "request": {"id": f"req_{_token(run.rng, 14, ID_ALPHABET)}", "idempotency_key": None}, "type": kind}
    return _event(run, Provider.STRIPE.value, envelope["id"], kind, envelope, json.dumps(envelope), at, booking,
                  status, error)


def _ipn_event(run: _Run, fields: dict[str, str], at: datetime, booking: Booking) -> WebhookEvent:
    kind = fields.get("txn_type") or fields["reason_code"]
    return _event(run, Provider.PAYPAL.value, fields["ipn_track_id"], kind, fields, urlencode(fields), at, booking,
                  EventStatus.PROCESSED, None)


def _event(run: _Run, provider: str, event_id: str, kind: str, payload: dict, raw_body: str, at: datetime,
           booking: Booking | None, status: EventStatus, error: str | None) -> WebhookEvent:
    received = min(at + timedelta(seconds=run.rng.randint(1, 4)), run.now)
    failed = status == EventStatus.FAILED
    return WebhookEvent(
        provider=provider, event_id=event_id, type=kind, payload=payload, raw_body=raw_body, status=status.value,
        attempts=3 if failed else 1, last_error=error, booking=booking, occurred_at=at, received_at=received,
        source_ip=run.rng.choice(STRIPE_IPS if provider == Provider.STRIPE.value else PAYPAL_IPS),
        processed_at=None if failed else received + timedelta(milliseconds=run.rng.randint(40, 900)),
    )


def _intent(payment: Payment, status: str) -> dict:
    held = status == "requires_capture"
    return {
        "id": payment.provider_ref, "object": "payment_intent", "amount": payment.amount,
        "amount_capturable": payment.amount if held else 0, "amount_received": payment.amount_captured,
        "capture_method": "manual" if payment.kind == PaymentKind.DEPOSIT.value else "automatic",
        "created": int(payment.created_at.timestamp()), "currency": payment.currency.lower(),
        "customer": None, "latest_charge": _charge_id(payment), "livemode": False,
        "last_payment_error": _payment_error(payment), "payment_method_types": ["card"], "status": status,
        "metadata": {"booking_reference": payment.booking.reference, "kind": payment.kind},
        "receipt_email": payment.booking.customer.email,
    }


def _payment_error(payment: Payment) -> dict | None:
    if not payment.failure_code:
        return None
    decline = "insufficient_funds" if payment.failure_code == "insufficient_funds" else "generic_decline"
    return {"type": "card_error", "code": "card_declined", "decline_code": decline, "message": payment.failure_message}


def _charge_object(payment: Payment, refunds: list[Refund]) -> dict:
    refunded = sum(refund.amount for refund in refunds)
    return {
        "id": _charge_id(payment), "object": "charge", "amount": payment.amount, "amount_captured": payment.amount,
        "amount_refunded": refunded, "captured": True, "created": int(payment.succeeded_at.timestamp()),
        "currency": payment.currency.lower(), "disputed": False, "livemode": False, "paid": True,
        "payment_intent": payment.provider_ref, "refunded": refunded == payment.amount, "status": "succeeded",
        "metadata": {"booking_reference": payment.booking.reference},
        "payment_method_details": {"type": "card", "card": {"brand": payment.method}},
        "refunds": {"object": "list", "data": [_refund_object(refund) for refund in refunds], "has_more": False},
    }


def _refund_object(refund: Refund) -> dict:
    return {"id": refund.provider_ref, "object": "refund", "amount": refund.amount,
            "charge": _charge_id(refund.payment), "created": int(refund.created_at.timestamp()),
            "currency": refund.currency.lower(), "payment_intent": refund.payment.provider_ref,
            "reason": "requested_by_customer", "status": refund.status,
            "failure_reason": "expired_or_canceled_card" if refund.status == RefundStatus.FAILED.value else None,
            "metadata": {"booking_reference": refund.booking.reference}}


def _dispute_object(dispute: Dispute, status: DisputeStatus) -> dict:
    return {"id": dispute.provider_ref, "object": "dispute", "amount": dispute.amount,
            "charge": _charge_id(dispute.payment), "created": int(dispute.created_at.timestamp()),
            "currency": dispute.currency.lower(), "is_charge_refundable": False, "livemode": False, "metadata": {},
            "payment_intent": dispute.payment.provider_ref, "reason": dispute.reason, "status": status.value,
            "evidence_details": {"due_by": int(dispute.evidence_due_by.timestamp()), "has_evidence": False,
                                 "past_due": False, "submission_count": 0}}


def _charge_id(payment: Payment) -> str:
    # A PaymentIntent's charge shares its id suffix (pi_3Abc… → ch_3Abc…).
    return "ch_" + payment.provider_ref.removeprefix("pi_")


def _ipn(run: _Run, payment: Payment, status: str, txn_id: str, at: datetime, amount: int) -> dict[str, str]:
    customer, reference = payment.booking.customer, payment.booking.reference
    first, _, last = customer.name.partition(" ")
    fields = {
        "mc_gross": _major(amount, payment.currency), "protection_eligibility": "Eligible",
        "payer_id": hashlib.sha256(customer.email.encode()).hexdigest()[:13].upper(),
        "tax": _major(0, payment.currency),
        "payment_date": at.astimezone(ZoneInfo("America/Los_Angeles")).strftime("%H:%M:%S %b %d, %Y %Z"),
        "payment_status": status, "charset": "UTF-8", "first_name": first,
        "mc_fee": _major(apply_bp(amount, 349), payment.currency), "notify_version": "3.9", "custom": reference,
        "payer_status": "verified", "business": PAYPAL_BUSINESS, "payer_email": customer.email, "txn_id": txn_id,
        "payment_type": "instant", "last_name": last, "receiver_email": PAYPAL_BUSINESS,
        "receiver_id": PAYPAL_RECEIVER_ID, "item_name": f"Booking {reference}", "mc_currency": payment.currency,
        "test_ipn": "1", "invoice": reference, "ipn_track_id": _token(run.rng, 13, "0123456789abcdef"),
    }
    if amount < 0:
        return fields | {"parent_txn_id": payment.provider_ref, "reason_code": "refund"}
    return fields | {"txn_type": "web_accept"}


def _major(amount: int, currency: str) -> str:
    digits, sign = exponent(currency), "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"


# Notifications: the outbox rows each booking's story would have written.

def _add_notifications(run: _Run) -> None:
    # Read from the run's own lists: walking booking.payments would lazy-load once per booking.
    paid_at, refunded_at = {}, {}
    for payment in run.payments:
        if payment.kind == PaymentKind.CHARGE.value and payment.succeeded_at:
            paid_at.setdefault(payment.booking, payment.succeeded_at)
    for refund in run.refunds:
        if refund.succeeded_at:
            refunded_at[refund.booking] = refund.succeeded_at
    for booking in run.bookings:
        for purpose, channel, at in _messages_for(run, booking, paid_at.get(booking), refunded_at.get(booking)):
            run.notifications.append(_notification(run, booking, purpose, channel, at))
    db.session.add_all(run.notifications)


def _messages_for(run: _Run, booking: Booking, paid_at: datetime | None,
                  refunded_at: datetime | None) -> list[tuple[str, str, datetime]]:
    email, sms, created = Channel.EMAIL.value, Channel.SMS.value, booking.created_at
    messages = {
        BookingStatus.QUOTE.value: [("quote", email, created)],
        BookingStatus.PENDING_PAYMENT.value: [("checkout", email, created), ("checkout", sms, created)],
        BookingStatus.CANCELLED.value: [("cancellation", email, booking.updated_at)],
    }.get(booking.status, [("confirmation", email, paid_at or created),
                           ("reminder", sms, booking.starts_at - timedelta(hours=24))])
    if booking.returned_at:
        messages.append(("thanks", email, booking.returned_at + timedelta(days=1)))
    if refunded_at:
        messages.append(("refund", email, refunded_at))
    reachable = booking.customer.sms_opt_in and booking.customer.phone
    return [(purpose, channel, at) for purpose, channel, at in messages
            if at <= run.now and (channel == email or reachable)]


def _notification(run: _Run, booking: Booking, purpose: str, channel: str, at: datetime) -> Notification:
    template, subject = MESSAGES[purpose]
    customer, email = booking.customer, channel == Channel.EMAIL.value
    status = _pick(run.rng, RECENT_STATUSES if at > run.now - RECENT else SETTLED_STATUSES)
    notification = Notification(
        dedupe_key=f"booking:{booking.reference}:{purpose}:{channel}", channel=channel, template=template,
        recipient=customer.email if email else customer.phone, booking=booking, customer=customer,
        subject=subject.format(ref=booking.reference, item=booking.item.name) if subject and email else None,
        context={"reference": booking.reference, "item": booking.item.name, "customer": customer.name,
                 "starts_at": booking.starts_at.isoformat(),
                 "total": format_money(booking.total_amount, booking.currency)},
        status=status, created_at=at,
    )
    _delivery(run, notification, status)
    return notification


def _delivery(run: _Run, notification: Notification, status: str) -> None:
    email = notification.channel == Channel.EMAIL.value
    if status == NotificationStatus.SENT.value:
        notification.attempts = 1
        notification.provider = ("smtp" if run.rng.random() < 0.8 else "sendgrid") if email else "twilio"
        notification.provider_message_id = (f"<{_token(run.rng, 20, ID_ALPHABET)}@midas.example>" if email
                                            else f"SM{_token(run.rng, 32, '0123456789abcdef')}")
        notification.sent_at = min(notification.created_at + timedelta(seconds=run.rng.randint(1, 20)), run.now)
    elif status == NotificationStatus.FAILED.value:
        notification.attempts = run.rng.randint(3, 5)
        notification.last_error = DELIVERY_ERRORS[notification.channel]


# Error groups: failures the log has grouped, some tied to the payments and messages above.

def _add_errors(run: _Run) -> None:
    groups = [*_decline_groups(run), _refund_failure_group(run), *_delivery_groups(run),
              *(_problem_group(run, problem) for problem in PROBLEMS)]
    run.error_groups = [group for group in groups if group is not None]
    alerts = _alerts(run)
    run.notifications.extend(alerts)
    db.session.add_all([*run.error_groups, *alerts])


def _decline_groups(run: _Run) -> list[ErrorGroup | None]:
    groups = []
    for code, message in DECLINES:
        events = [_payment_error_event(run, p, Severity.HIGH, f"Card declined for {p.booking.reference}: {code}")
                  for p in run.payments if p.failure_code == code]
        groups.append(_group(run, ErrorCategory.PAYMENT, Severity.HIGH, "CardError", f"{message} ({code})", events))
    return groups


def _refund_failure_group(run: _Run) -> ErrorGroup | None:
    events = [_payment_error_event(run, r.payment, Severity.MEDIUM, f"Refund for {r.booking.reference} failed",
                                   r.amount, r.updated_at)
              for r in run.refunds if r.status == RefundStatus.FAILED.value]
    return _group(run, ErrorCategory.PAYMENT, Severity.MEDIUM, "RefundFailed",
                  "The card issuer returned a refund: expired_or_canceled_card", events)


def _payment_error_event(run: _Run, payment: Payment, severity: Severity, message: str, amount: int | None = None,
                         at: datetime | None = None) -> ErrorEvent:
    return ErrorEvent(
        severity=severity.value, message=message, request_id=_token(run.rng, 16, "0123456789abcdef"),
        context={"provider": payment.provider, "provider_ref": payment.provider_ref, "code": payment.failure_code},
        booking_id=payment.booking.id, customer_id=payment.booking.customer.id, payment_id=payment.id,
        amount=amount or payment.amount, currency=payment.currency, occurred_at=at or payment.created_at,
    )


def _delivery_groups(run: _Run) -> list[ErrorGroup | None]:
    groups = []
    for channel, error in DELIVERY_ERRORS.items():
        failed = [n for n in run.notifications if n.channel == channel and n.status == NotificationStatus.FAILED.value]
        error_type, _, message = error.partition(": ")
        events = [ErrorEvent(severity=Severity.MEDIUM.value, message=f"{n.template} to {n.recipient}: {message}",
                             context={"dedupe_key": n.dedupe_key, "attempts": n.attempts},
                             booking_id=n.booking.id, customer_id=n.customer.id, occurred_at=n.created_at)
                  for n in failed]
        groups.append(_group(run, ErrorCategory.NOTIFICATION, Severity.MEDIUM, error_type, message, events))
    return groups


def _problem_group(run: _Run, problem: Problem) -> ErrorGroup | None:
    path, _, function = problem.where.partition(":")
    trace = (f'Traceback (most recent call last):\n  File "{path}", line {run.rng.randint(20, 240)}, in {function}\n'
             f"{problem.error_type}: {problem.message}")
    moments = sorted(run.now - timedelta(days=run.rng.uniform(0.2, 45)) for _ in range(problem.occurrences))
    events = [ErrorEvent(severity=problem.severity.value, message=problem.message, stack_trace=trace,
                         context=problem.context, request_id=_token(run.rng, 16, "0123456789abcdef"),
                         occurred_at=moment.replace(microsecond=0)) for moment in moments]
    return _group(run, problem.category, problem.severity, problem.error_type, problem.message, events,
                  problem.status, problem.regression)


def _group(run: _Run, category: ErrorCategory, severity: Severity, error_type: str, message: str,
           events: list[ErrorEvent], status: GroupStatus = GroupStatus.OPEN, regression: bool = False
           ) -> ErrorGroup | None:
    if not events:
        return None
    seen = sorted(event.occurred_at for event in events)
    resolved = status == GroupStatus.RESOLVED
    return ErrorGroup(
        fingerprint=hashlib.sha256(f"{category.value}|{error_type}|{message}".encode()).hexdigest(),
        category=category.value, severity=severity.value, error_type=error_type, message=message,
        status=status.value, regression=regression, occurrences=len(events), first_seen_at=seen[0],
        last_seen_at=seen[-1], resolved_at=min(seen[-1] + timedelta(hours=3), run.now) if resolved else None,
        resolved_by_id=run.staff[Role.ADMIN.value].id if resolved else None, events=events,
    )


def _alerts(run: _Run) -> list[Notification]:
    """Slack alerts for the open high-severity groups."""
    urgent = [g for g in run.error_groups if g.severity == Severity.HIGH.value and g.status == GroupStatus.OPEN.value]
    return [Notification(dedupe_key=f"alert:{group.fingerprint[:16]}:slack", channel=Channel.SLACK.value,
                         template="error_alert", recipient="#ops-alerts", subject=None,
                         context={"category": group.category, "message": group.message,
                                  "occurrences": group.occurrences},
                         status=NotificationStatus.SENT.value, attempts=1, provider="slack",
                         created_at=group.last_seen_at, sent_at=min(group.last_seen_at + timedelta(seconds=5), run.now))
            for group in urgent]


# Small shared helpers.

def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _token(rng: random.Random, length: int, alphabet: str = TOKEN_ALPHABET) -> str:
    return "".join(rng.choices(alphabet, k=length))


def _paypal_id(rng: random.Random) -> str:
    return _token(rng, 17, string.ascii_uppercase + string.digits)


def _local(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), zone).astimezone(UTC)


def _between(rng: random.Random, start: datetime, end: datetime, low: float, high: float) -> datetime:
    return (start + (end - start) * rng.uniform(low, high)).replace(microsecond=0)
