"""The ends of held maintenance windows: one summary per channel of what went down during the
window and is down still. The last end handled is kept in the meta table (`maintenance_done:`),
so a window that ended while Heartfly was stopped is summarized at the next start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from heartfly.core import maintenance
from heartfly.core.config import Config
from heartfly.notify import outbox
from heartfly.server.checks import Check
from heartfly.store import rows as store

log = logging.getLogger(__name__)

DONE_META = "maintenance_done:"


def marks(config: Config, stored: Mapping[str, str], now: float) -> tuple[dict[str, float], list[store.Statement]]:
    """Each window's last handled moment: stored, else now (a new window owes no summary of the
    past), and the statements that store the new ones."""
    done: dict[str, float] = {}
    new: list[store.Statement] = []
    for window in config.maintenance:
        try:
            done[window.name] = float(stored[DONE_META + window.name])
        except (KeyError, ValueError):
            done[window.name] = now
            new.append(store.meta_statement(DONE_META + window.name, repr(now)))
    return done, new


def close(
    config: Config, checks: Mapping[str, Check], done: dict[str, float], now: float, next_outbox_id: int
) -> tuple[store.Write | None, int]:
    """The summaries of the windows that ended since they were last looked at (and their marks),
    or None if none ended; and the next free outbox id."""
    write = store.Write()
    for window in config.maintenance:
        since = done.get(window.name, now)
        if now <= since:
            continue
        done[window.name] = now
        ended = window.ended_between(since, now)
        if not ended:
            continue
        write.statements.append(store.meta_statement(DONE_META + window.name, repr(now)))
        for start, end in ended:
            down = maintenance.still_down(window, start, end, ((c.config, c.state) for c in checks.values()))
            if window.alerts == "drop":
                log.info("maintenance window %s ended; %d check(s) still down, alerts dropped", window.name, len(down))
                continue
            log.info("maintenance window %s ended; %d check(s) still down%s", window.name, len(down),
                     ": " + ", ".join(d.check for d in down) if down else "")  # fmt: skip
            by_channel: dict[str, list[dict[str, object]]] = {}
            for d in down:
                for channel in d.channels:
                    by_channel.setdefault(channel, []).append({"check": d.check, "reason": d.reason, "since": d.since})
            for channel, items in by_channel.items():
                if channel in config.channels:
                    write.outbox.append(
                        outbox.maintenance_row(
                            next_outbox_id, channel, window.name, (start, end), items, now, config.alerts
                        )
                    )
                    next_outbox_id += 1
    return (write if write.statements else None), next_outbox_id
