"""The HTTP surface: ping routes, the JSON API, health endpoints."""
