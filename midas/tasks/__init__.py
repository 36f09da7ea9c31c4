"""Background jobs: idempotent functions that take ids, run by RQ or in-process."""
