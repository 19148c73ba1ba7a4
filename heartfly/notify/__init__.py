"""Alerts: what they say (message), how each channel kind sends them, and the dispatcher."""

from __future__ import annotations


class DeliveryError(Exception):
    """A failed attempt that may succeed later (server down, timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the receiver asked to wait (HTTP Retry-After), if it said


class PermanentError(DeliveryError):
    """A failed attempt that will fail the same way again (rejected recipient, 4xx): no retries."""
