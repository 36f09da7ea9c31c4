"""Business rules as plain functions: values in, one transaction, domain errors out."""


class DomainError(Exception):
    """A rule refused the request; the message is safe to show to staff."""

    status_code = 422


class NotFound(DomainError):
    status_code = 404


class PermissionDenied(DomainError):
    status_code = 403
