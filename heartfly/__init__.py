"""Heartfly: a self-hosted heartbeat monitor for scheduled and background jobs."""

__version__ = "0.1.0"
