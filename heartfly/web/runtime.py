"""What the handlers share: one object under one typed app key, filled in by the cleanup contexts."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from heartfly.core.clock import Clock
from heartfly.core.config import Config, check_token
from heartfly.notify.dispatcher import Dispatcher
from heartfly.server.engine import Engine
from heartfly.store.api import Reader
from heartfly.store.sqlite import Writer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    clock: Clock
    token: str | None = None
    reader: Reader | None = None
    writer: Writer | None = None  # the backend app.py opened (tests reach into it)
    dispatcher: Dispatcher | None = None
    listening: str = ""  # "listening on http://...", once the port is bound (for systemd's STATUS=)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "used before start-up finished"
        return self._engine


RUNTIME = web.AppKey("runtime", Runtime)


def load_token(path: Path | None) -> str | None:
    """The API token from its file, which is created (mode 0600) with a fresh token if missing."""
    if path is None:
        return None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        log.info("created a new API token in %s", path)
    return check_token(path.read_text(encoding="utf-8").strip(), path)
