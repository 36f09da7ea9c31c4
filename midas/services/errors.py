"""Error groups as staff see them: what keeps failing, and how often."""

from __future__ import annotations

from sqlalchemy import select

from midas.models import ErrorCategory, ErrorGroup, GroupStatus, Severity
from midas.services.listing import Page, paginate


def list_groups(category: str, severity: str, status: str, page: int) -> Page:
    stmt = select(ErrorGroup)
    if category in ErrorCategory.values():
        stmt = stmt.where(ErrorGroup.category == category)
    if severity in Severity.values():
        stmt = stmt.where(ErrorGroup.severity == severity)
    if status in GroupStatus.values():
        stmt = stmt.where(ErrorGroup.status == status)
    return paginate(stmt.order_by(ErrorGroup.last_seen_at.desc(), ErrorGroup.id.desc()), page)
