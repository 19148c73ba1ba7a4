"""Every other service (Telegram, Teams, Matrix, Pushover, Gotify, PagerDuty, ...) through apprise.

apprise is an optional extra (`pip install 'heartfly[apprise]'`), imported only when such a
channel sends, so the core install stays small.
"""

from __future__ import annotations

from heartfly.config_alerts import ChannelConfig
from heartfly.notify import DeliveryError
from heartfly.notify.message import Alert, subject, text


async def send(channel: ChannelConfig, alert: Alert) -> None:
    import apprise

    notifier = apprise.Apprise()
    for url in channel.urls:
        if not notifier.add(url):
            raise DeliveryError("apprise does not understand one of this channel's URLs")
    result = await notifier.async_notify(body=text(alert), title=subject(alert))
    if not result:  # apprise logs the per-service reason through the logging module
        raise DeliveryError("apprise reported a failed delivery (its log says which service and why)")
