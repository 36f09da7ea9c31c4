"""Business rules as plain functions: values in, one transaction, domain errors out."""


class DomainError(Exception):
    """A rule refused the request; the message is safe to show to staff."""

    status_code = 422


class NotFound(DomainError):
    status_code = 404


class PermissionDenied(DomainError):
    status_code = 403


class InvalidInput(DomainError):
    """Input a form can point at: `field` names the offending field when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
