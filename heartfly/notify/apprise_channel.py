"""Every other service (Telegram, Teams, Matrix, Pushover, Gotify, PagerDuty, ...) through apprise.

apprise is an optional extra (`pip install 'heartfly[apprise]'`), imported only when such a
channel sends, so the core install stays small.
"""

from __future__ import annotations

import asyncio
from typing import Any

from heartfly.core.config_alerts import ChannelConfig
from heartfly.notify import DeliveryError
from heartfly.notify.message import Alert, subject, text


def _notifier(urls: tuple[str, ...]) -> Any:
    """Import apprise and build the notifier: blocking work (plugin discovery), so run in a thread."""
    import apprise

    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            raise DeliveryError("apprise does not understand one of this channel's URLs")
    return notifier


async def send(channel: ChannelConfig, alert: Alert) -> None:
    notifier = await asyncio.to_thread(_notifier, channel.urls)
    result = await notifier.async_notify(body=text(alert), title=subject(alert))
    if not result:  # apprise logs the per-service reason through the logging module
        raise DeliveryError("apprise reported a failed delivery (its log says which service and why)")
