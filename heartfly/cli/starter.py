"""The starter config `heartfly init` writes: fresh random keys, and where it listens."""

from __future__ import annotations

import ipaddress
import json
import secrets
import urllib.parse

from heartfly.core.addresses import DEFAULT_PORT


def starter_listen(public_url: str) -> str:
    """Where a starter config listens. A plain http URL with a port reaches the server directly, so
    it listens on that port (on that IP when the URL gives one, else on loopback); otherwise a proxy
    is in front and the default stays. ValueError for a port out of range, or 0."""
    parts = urllib.parse.urlsplit(public_url)
    port = parts.port
    if port == 0:  # listen would take a random port, and every ping URL and alert link would say :0
        raise ValueError("port 0 is no port a job or a browser can reach; give the real one, or none")
    if parts.scheme != "http" or port is None:
        return f"127.0.0.1:{DEFAULT_PORT}"
    try:
        ip = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return f"127.0.0.1:{port}"
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def starter_config(public_url: str, listen: str) -> str:
    def key() -> str:
        return secrets.token_urlsafe(18)  # 24 url-safe characters

    return f"""# Heartfly config, written by `heartfly init`. Reference: heartfly.example.toml.

[server]
listen = "{listen}"{" " * max(1, 23 - len(listen))}# "0.0.0.0:PORT" to listen on every interface
public_url = {json.dumps(public_url)}
database = "heartfly.db"          # relative to this file
api_token_file = "api-token"      # created with a fresh token on first start
hc_api_key_file = "hc-api-key"    # Healthchecks' Management API (X-Api-Key): a fresh key on first start
hc_api_key_readonly_file = "hc-api-key-readonly"  # and its read-only key
ping_key = "{key()}"    # enables /ping/<ping_key>/<check-name>

[defaults]
grace = "5m"
timezone = "UTC"
channels = ["journal"]            # where every check's alerts go

[channels.journal]
type = "log"                      # alerts as WARNING lines in Heartfly's own log (journalctl -u heartfly);
                                  # add an email or webhook channel next: see heartfly.example.toml

[checks.example-every]
key = "{key()}"
every = "15m"
description = "a job that runs every 15 minutes"

[checks.example-cron]
key = "{key()}"
start_key = "{key()}"
fail_key = "{key()}"
cron = "0 3 * * *"
timezone = "UTC"
grace = "30m"
max_runtime = "2h"
description = "a nightly job that reports its start, success and failure"
"""
