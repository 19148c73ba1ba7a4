"""The URLs a job calls for a check (the ping URL scheme), as the dashboard and `heartfly check-config` list them."""

from __future__ import annotations

from heartfly.core.config import CheckConfig, Config


def ping_urls(config: Config, check: CheckConfig) -> list[tuple[str, str]]:
    """Every URL a job may call for this check, with what each means."""
    base = config.server.public_url
    urls = [
        ("success", f"{base}/ping/{check.key}"),
        ("start", f"{base}/ping/{check.key}/start"),
        ("failure", f"{base}/ping/{check.key}/fail"),
        ("exit status", f"{base}/ping/{check.key}/$?"),
        ("log line", f"{base}/ping/{check.key}/log"),
        ("progress", f"{base}/ping/{check.key}/progress"),
        ("JSON", f"{base}/api/v1/heartbeat/{check.key}"),
    ]
    if check.start_key:
        urls.append(("start (start_key)", f"{base}/api/v1/heartbeat/{check.start_key}"))
    if check.fail_key:
        urls.append(("failure (fail_key)", f"{base}/api/v1/heartbeat/{check.fail_key}"))
    if config.server.ping_key:
        urls.append(("by name", f"{base}/ping/{config.server.ping_key}/{check.name}"))
    return urls
