"""Staff accounts and their roles."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from midas.extensions import db
from midas.models.types import StrEnum, UTCDateTime, check_in, enum_column, utcnow


class Role(StrEnum):
    CONCIERGE = "concierge"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


class StaffUser(UserMixin, db.Model):
    __tablename__ = "staff_users"
    __table_args__ = (
        check_in("role", Role),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("failed_logins >= 0", name="failed_logins_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(enum_column(Role), default=Role.CONCIERGE.value)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active_account: Mapped[bool] = mapped_column("active", default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped at logout, deactivation and password reset: every older session cookie stops working.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_active(self) -> bool:
        return self.is_active_account

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def has_role(self, minimum: Role) -> bool:
        return self.role_enum.at_least(minimum)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def __repr__(self) -> str:
        return f"<StaffUser {self.email} {self.role}>"
