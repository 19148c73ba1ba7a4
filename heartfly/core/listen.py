"""`serve --listen HOST:PORT` (or HEARTFLY_LISTEN): where to listen, outranking the file. Pure."""

from __future__ import annotations

import dataclasses

from heartfly.core.addresses import parse_listen, url_of
from heartfly.core.config import Config

ENV = "HEARTFLY_LISTEN"


def with_listen(config: Config, listen: str) -> Config:
    """`config` listening on `listen` ("host:port", "[::1]:port"); ValueError if it is not one.

    A public_url the file left out was derived from its listen, so it follows the new address; one
    the file sets (a proxy in front) stays.
    """
    host, port = parse_listen(listen)
    server = config.server
    derived = server.public_url == url_of(server.host, server.port)
    public_url = url_of(host, port) if derived else server.public_url
    server = dataclasses.replace(server, host=host, port=port, public_url=public_url)
    return dataclasses.replace(config, server=server)
