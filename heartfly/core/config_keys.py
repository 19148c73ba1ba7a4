"""The keys the config file knows, table by table: the full loader refuses any other (with a "did
you mean"), and the job-side client's quick read (heartfly.client.lookup) leaves a file with any
other to it, since a misspelt public_url must not send pings to the default address."""

from __future__ import annotations

SERVER_KEYS = {
    "listen",
    "public_url",
    "database",
    "database_password_file",
    "ping_key",
    "api_token_file",
    "body_limit",
    "keep_pings",
    "keep_history",
    "max_ping_age",
    "synchronous",
    "public",
    "node_id",
    "lease",
    "heartbeat_url",
    "heartbeat_every",
    "display_timezone",
    "hc_api_key_file",
    "hc_api_key_readonly_file",
    "auto_provision",
    "auto_provision_max",
    "trusted_proxies",
}
DEFAULT_KEYS = {
    "grace", "timezone", "max_runtime", "min_runtime", "channels", "repeat", "stall", "failures_before_alert",
}  # fmt: skip
CHECK_KEYS = {
    "key",
    "start_key",
    "fail_key",
    "every",
    "cron",
    "timezone",
    "grace",
    "max_runtime",
    "min_runtime",
    "description",
    "channels",
    "repeat",
    "stall",
    "after",
    "within",
    "expect",
    "members",
    "assert",
    "failures_before_alert",
    "tags",
    "resume_on_ping",
}
TOP_KEYS = {"server", "defaults", "checks", "smtp", "channels", "alerts", "maintenance"}
MAINTENANCE_KEYS = {"name", "cron", "start", "duration", "timezone", "checks", "tags", "alerts"}
