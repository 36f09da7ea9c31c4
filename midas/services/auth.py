"""Staff authentication and account management, with role checks the views cannot skip."""

from __future__ import annotations

from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from midas.extensions import db
from midas.models import Role, StaffUser, utcnow
from midas.services import DomainError, NotFound, PermissionDenied, audit

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
# Verified against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = HASHER.hash("midas-timing-equaliser")


class AuthError(DomainError):
    """Login refused; the message is deliberately the same for unknown email and bad password."""


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def load_user(user_id: str) -> StaffUser | None:
    """Flask-Login loader: the id carries the session version, so old cookies stop working."""
    try:
        raw_id, raw_version = user_id.split(":", 1)
        user = db.session.get(StaffUser, int(raw_id))
        version = int(raw_version)
    except (ValueError, TypeError):
        return None
    if user is None or user.session_version != version or not user.is_active:
        return None
    return user


def authenticate(email: str, password: str, now: datetime | None = None) -> StaffUser:
    """Check credentials, counting failures; five in a row lock the account for 15 minutes."""
    now = now or utcnow()
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        _verify(_DUMMY_HASH, password)
        raise AuthError("Invalid email or password.")
    if user.is_locked(now):
        raise AuthError("Too many failed attempts: this account is locked for 15 minutes.")
    if not _verify(user.password_hash, password):
        _count_failure(user, now)
        raise AuthError("Invalid email or password.")
    if not user.is_active:
        raise AuthError("This account has been deactivated. Ask an owner to restore it.")
    _record_success(user, password, now)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(user: StaffUser, now: datetime) -> None:
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + LOCKOUT
        user.failed_logins = 0
        audit.record("staff.locked", "staff_user", user.id, actor_label=user.email,
                     after={"locked_until": user.locked_until})
    db.session.commit()


def _record_success(user: StaffUser, password: str, now: datetime) -> None:
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record("staff.login", "staff_user", user.id, actor=user)
    db.session.commit()


def end_session(user: StaffUser) -> None:
    """Logout: bump the session version so a copied cookie is worthless too."""
    user.session_version += 1
    audit.record("staff.logout", "staff_user", user.id, actor=user)
    db.session.commit()


def require_role(actor: StaffUser | None, minimum: Role) -> StaffUser:
    """Services call this too: a hidden button is not a permission check."""
    if actor is None or not actor.is_active or not actor.has_role(minimum):
        raise PermissionDenied(f"This needs the {minimum.value} role.")
    return actor


def list_staff() -> list[StaffUser]:
    return list(db.session.scalars(select(StaffUser).order_by(StaffUser.is_active_account.desc(), StaffUser.name)))


def create_staff(actor: StaffUser | None, email: str, name: str, role: str, password: str) -> StaffUser:
    """Create a staff account; `actor` None means the command line (an operator with shell access)."""
    if actor is not None:
        require_role(actor, Role.OWNER)
    email = normalize_email(email)
    _valid_password(password)
    if role not in Role.values():
        raise DomainError(f"Unknown role {role!r}: choose concierge, admin or owner.")
    if not name.strip():
        raise DomainError("A name is required.")
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise DomainError(f"A staff account for {email} already exists.")
    user = StaffUser(email=email, name=name.strip(), role=role, password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    audit.record("staff.created", "staff_user", user.id, actor=actor, actor_label=None if actor else "cli",
                 after={"email": email, "name": user.name, "role": role})
    db.session.commit()
    return user


def set_active(actor: StaffUser, user_id: int, active: bool) -> StaffUser:
    """Deactivate (ending every session) or reactivate a staff account."""
    require_role(actor, Role.OWNER)
    user = _get(user_id)
    if user.id == actor.id and not active:
        raise DomainError("You cannot deactivate your own account.")
    before = {"active": user.is_active_account}
    user.is_active_account = active
    if not active:
        user.session_version += 1
    audit.record("staff.activated" if active else "staff.deactivated", "staff_user", user.id,
                 actor=actor, before=before, after={"active": active})
    db.session.commit()
    return user


def reset_password(actor: StaffUser, user_id: int, new_password: str) -> StaffUser:
    """An owner sets a new password; the account's sessions end and any lock is lifted."""
    require_role(actor, Role.OWNER)
    user = _get(user_id)
    _valid_password(new_password)
    user.password_hash = hash_password(new_password)
    user.session_version += 1
    user.failed_logins = 0
    user.locked_until = None
    audit.record("staff.password_reset", "staff_user", user.id, actor=actor)
    db.session.commit()
    return user


def _get(user_id: int) -> StaffUser:
    user = db.session.get(StaffUser, user_id)
    if user is None:
        raise NotFound("No such staff account.")
    return user


def normalize_email(email: str) -> str:
    """The canonical lowercase form of a staff email, or DomainError saying what is wrong."""
    try:
        # Staff emails are sign-in names, not mail targets: reserved test domains (midas.test) are fine.
        return validate_email(email.strip(), check_deliverability=False, test_environment=True).normalized.lower()
    except EmailNotValidError as exc:
        raise DomainError(f"Invalid email address: {exc}") from exc


def _valid_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")
