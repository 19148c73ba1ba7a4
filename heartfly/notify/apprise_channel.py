"""Every other service (Telegram, Teams, Matrix, Pushover, Gotify, PagerDuty, ...) through apprise.

apprise is an optional extra (`pip install 'heartfly[apprise]'`), imported only when such a
channel sends, so the core install stays small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from heartfly.core.config_alerts import ChannelConfig
from heartfly.core.statetypes import AlertEvent
from heartfly.notify import DeliveryError, PermanentError
from heartfly.notify.message import Alert, subject, text

# apprise's notify_type, which services act on: Opsgenie (by default) opens an alert for a failure
# only (an info adds a note to one opened before, if any: else nothing is sent, and apprise says
# delivered); PagerDuty gives an info the severity info, and with action=map raises an incident for
# all but a success; chat services colour by it. A test stays an info.
_NOTIFY_TYPES: dict[str, str] = {
    AlertEvent.DOWN: "failure",
    AlertEvent.REMINDER: "failure",
    AlertEvent.MAINTENANCE: "failure",  # the down alert of the checks it lists
    AlertEvent.RECOVERY: "success",
    AlertEvent.TROUBLE: "failure",
    AlertEvent.TROUBLE_OVER: "success",
}


_TEXT = "text"  # apprise's NotifyFormat.TEXT (apprise is imported only when a channel sends)


def _notifiers(urls: list[str]) -> list[Any]:
    """One notifier per URL (None for a URL apprise does not understand), so that each service's
    outcome is known: blocking work (plugin discovery), so run in a thread."""
    import apprise

    notifiers: list[Any] = []
    for url in urls:
        notifier = apprise.Apprise()
        try:  # some plugins raise on a URL they cannot read ("tgram://123:token/1?": a TypeError)
            added = notifier.add(url)
        except Exception:  # noqa: BLE001 - its words or traceback may quote the URL's token
            added = False
        notifiers.append(notifier if added else None)
    return notifiers


def unreadable(channels: Iterable[ChannelConfig]) -> list[str]:
    """For heartfly check-config: each apprise channel's URLs that apprise cannot read (a typo in
    the service's scheme, a token's place), which fail every alert for good; by their place, never
    their text (it holds a token)."""
    found = []
    for channel in channels:
        if channel.type != "apprise":
            continue
        places = [place for place, n in enumerate(_notifiers(list(channel.urls)), 1) if n is None]
        if places:
            found.append(
                f"channels.{channel.name}.urls: apprise does not understand URL {_places(places)} of"
                f" {len(channel.urls)} (not shown: it may hold a token), so each alert fails there for good"
            )
    return found


async def send(channel: ChannelConfig, alert: Alert, reached: set[str]) -> None:
    """Notify the channel's services not in `reached` (those an earlier attempt reached), and add
    each one this attempt reaches as soon as it does: a retry for one service that is down, or one
    that hung until the attempt's time limit cut it off, does not notify the others again. Errors
    name services by their place in `urls`, never by URL (URLs hold tokens)."""
    places: dict[str, int] = {}  # each URL once (listed twice, its service would be told twice), by its first place
    for place, url in enumerate(channel.urls, 1):
        places.setdefault(url, place)
    urls = [url for url in places if url not in reached]
    notifiers = await asyncio.to_thread(_notifiers, urls)
    title, body = subject(alert), text(alert)
    kind = _NOTIFY_TYPES.get(alert.event, "info")

    async def notify(url: str, notifier: Any) -> bool:
        # Told it is plain text, apprise escapes it for a service that renders HTML or Markdown: not
        # told, it passed a ping's message on as markup (a link of the job's output's making; a "<"
        # that Telegram refuses the whole message for).
        if not await notifier.async_notify(body=body, title=title, notify_type=kind, body_format=_TEXT):
            return False
        reached.add(url)
        return True

    tried = [(url, n) for url, n in zip(urls, notifiers, strict=True) if n is not None]
    outcomes = await asyncio.gather(*(notify(url, n) for url, n in tried), return_exceptions=True)
    failed = sorted(places[url] for (url, _), ok in zip(tried, outcomes, strict=True) if ok is not True)
    unknown = [places[url] for url, n in zip(urls, notifiers, strict=True) if n is None]
    if failed:  # apprise logs the per-service reason through the logging module
        raise DeliveryError(
            f"apprise reported a failed delivery to URL {_places(failed)} of {len(channel.urls)}"
            " (its log says why); the others are not notified again"
        )
    if unknown:
        raise PermanentError(f"apprise does not understand URL {_places(unknown)} of {len(channel.urls)}")


def _places(places: list[int]) -> str:
    return ", ".join(str(p) for p in places)
