"""The OpenAPI 3 document served at /api/v1/openapi.json; tests check the API against it (schemathesis)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heartfly import __version__
from heartfly.core.states import AlertEvent, Kind, RunOutcome, Status
from heartfly.notify.dispatcher import AttemptOutcome

TIME = {"type": "string", "format": "date-time", "example": "2026-11-23T03:12:09.113Z"}
NULL_TIME = {**TIME, "nullable": True}
STATES = [s.value for s in Status]
RUN_OUTCOMES = [o.value for o in RunOutcome]
# A duration ("2h", "1h30m") or an ISO 8601 time, as control.parse_until takes them.
UNTIL_PATTERN = (
    r"^(([0-9]+(\.[0-9]+)?(ms|d|h|m|s))+"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)$"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


ERRORS = {
    "400": _json(_ref("Error"), "A parameter is malformed; `error` says which."),
    "401": _json(_ref("Error"), "The token is missing or wrong."),
    "403": _json(_ref("Error"), "The API is disabled (no api_token_file), or a cookie request lacks its CSRF header."),
    "503": _json(_ref("Error"), "The database cannot be read now (PostgreSQL restarting or out of reach): try again."),
}
NOT_FOUND = {"404": _json(_ref("Error"), "No check of that name.")}
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The check's name.",
}
PAGE = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "description": "Items per page, newest first.",
    },
    {
        "name": "before",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**62},
        "description": (
            "Only items before this one, newest first by event time (then id): pass the last item's `id` for"
            " the next page."
        ),
    },
]
LINK = {
    "Link": {
        "description": 'Set when the page is full: `<…?limit=N&before=ID>; rel="next"`.',
        "schema": {"type": "string"},
    }
}


ALL_FLIPS = {
    "name": "all",
    "in": "query",
    "schema": {"type": "boolean", "default": False},
    "description": (
        "`1` (or `true`): every change of state. By default the up <-> running changes every healthy run"
        " makes (its start, its end) are left out, so the changes that matter stand out."
    ),
}


def _page_of(item: str, what: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": [NAME, *PAGE, *extra],
        "get": {
            "summary": what,
            "operationId": f"list{item}s",
            "responses": {
                "200": _json({"type": "array", "items": _ref(item)}, f"{what}, newest first.", headers=LINK),
                **ERRORS,
                **NOT_FOUND,
            },
        },
    }


def _action(
    op: str, summary: str, params: list[dict[str, Any]] | None = None, answer: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "parameters": [NAME],
        "post": {
            "summary": summary,
            "operationId": op,
            "parameters": params or [],
            "responses": {"200": _json(answer or _ref("Check"), "The check afterwards."), **ERRORS, **NOT_FOUND},
        },
    }


# Pause and resume given to a cluster's standby go to the leader through its inbox.
APPLIED = {
    "type": "boolean",
    "description": "false: given to a standby, which passed it to the leader; the check is shown as it was"
    " (the leader applies it within seconds).",
}


# Resume answers the check plus whether it was paused, so a caller can tell "resumed" from "nothing to do".
RESUMED = {
    "allOf": [
        _ref("Check"),
        {
            "type": "object",
            "required": ["was_paused", "applied"],
            "properties": {
                "was_paused": {
                    "type": "boolean",
                    "description": "false: it was not paused; nothing changed (with applied false: as the"
                    " standby's picture had it; the leader resumes it if it is paused then).",
                },
                "applied": APPLIED,
            },
        },
    ]
}


# Pause answers the check plus whether a ping ends the pause (resume_on_ping).
PAUSED = {
    "allOf": [
        _ref("Check"),
        {
            "type": "object",
            "required": ["resume_on_ping", "applied"],
            "properties": {
                "resume_on_ping": {
                    "type": "boolean",
                    "description": "true: its next start, success or failure ping ends the pause.",
                },
                "applied": APPLIED,
            },
        },
    ]
}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "problems": {"type": "array", "items": {"type": "string"}, "description": "Config errors, one per line."},
        },
    },
    "Check": {
        "type": "object",
        "required": ["name", "state", "schedule", "last_ping_at", "due_at", "state_since", "paused_until"],
        "properties": {
            "name": {"type": "string"},
            "origin": {
                "type": "string",
                "enum": ["file", "api", "auto"],
                "description": "Where it is defined: the config file, Healthchecks' API, or a ping's ?create=1.",
            },
            "state": {"type": "string", "enum": STATES},
            "reason": {"type": "string", "nullable": True, "description": "Why it is down: missed, failed, …"},
            "description": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "schedule": {"type": "string", "example": 'cron "0 3 * * *" (Europe/Berlin)'},
            "grace_seconds": {"type": "number"},
            "last_ping_at": NULL_TIME,
            "last_ping_kind": {"type": "string", "nullable": True, "enum": [k.value for k in Kind] + [None]},
            "last_success_at": NULL_TIME,
            "due_at": {**NULL_TIME, "description": "When the next run is due (before grace); null while paused."},
            "step_due_at": {
                **NULL_TIME,
                "description": "A pipeline step: when it must have succeeded (moved by a downtime, as due_at).",
            },
            "next_deadline_at": {**NULL_TIME, "description": "When time alone next changes its state."},
            "running_since": NULL_TIME,
            "open_runs": {"type": "integer", "minimum": 0},
            "last_duration_seconds": {"type": "number", "nullable": True},
            "last_exit_status": {"type": "integer", "nullable": True},
            "state_since": TIME,
            "paused_until": {**NULL_TIME, "description": "When a pause with an end resumes by itself."},
        },
    },
    "Ping": {
        "type": "object",
        "required": ["id", "at", "received_at", "kind", "body", "truncated", "metrics"],
        "properties": {
            "id": {"type": "integer"},
            "at": {**TIME, "description": "When it happened (`ts=` if the client spooled it)."},
            "received_at": TIME,
            "kind": {"type": "string", "enum": [k.value for k in Kind]},
            "exit_status": {"type": "integer", "nullable": True},
            "run_id": {"type": "string", "nullable": True},
            "body": {"type": "string", "description": "The message, as sent (escape it before showing it as HTML)."},
            "truncated": {"type": "boolean"},
            "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
            "method": {"type": "string"},
            "source": {"type": "string"},
            "member": {"type": "string", "nullable": True},
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "started_at", "ended_at", "duration", "outcome"],
        "properties": {
            "id": {"type": "integer"},
            "run_id": {"type": "string", "nullable": True},
            "started_at": TIME,
            "ended_at": TIME,
            "duration": {"type": "number", "minimum": 0, "description": "Seconds."},
            "outcome": {
                "type": "string",
                "example": "success",
                "description": ", ".join(RUN_OUTCOMES[:-1]) + f" or {RUN_OUTCOMES[-1]}.",
            },
            "exit_status": {"type": "integer", "nullable": True},
            "detail": {"type": "string"},
            "members": {"type": "array", "items": {}},
        },
    },
    "Record": {
        "type": "object",
        "required": ["check", "windows"],
        "properties": {
            "check": {"type": "string"},
            "windows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "window",
                        "watched_seconds",
                        "down_seconds",
                        "availability",
                        "times_down",
                        "runs",
                        "failed_runs",
                        "median_duration_seconds",
                        "p95_duration_seconds",
                    ],
                    "properties": {
                        "window": {"type": "string", "enum": ["24h", "7d", "30d"]},
                        "watched_seconds": {
                            "type": "number",
                            "minimum": 0,
                            "description": "The window less the time before the check existed and paused time.",
                        },
                        "down_seconds": {"type": "number", "minimum": 0},
                        "availability": {
                            "type": "number",
                            "minimum": 0,
                            "maximum": 1,
                            "nullable": True,
                            "description": "1 - down / watched; null if nothing was watched.",
                        },
                        "times_down": {"type": "integer", "minimum": 0},
                        "runs": {"type": "integer", "minimum": 0, "description": "Runs that ended in the window."},
                        "failed_runs": {"type": "integer", "minimum": 0},
                        "median_duration_seconds": {"type": "number", "nullable": True},
                        "p95_duration_seconds": {"type": "number", "nullable": True},
                    },
                },
            },
        },
    },
    "Flip": {
        "type": "object",
        "required": ["id", "at", "old", "new"],
        "properties": {
            "id": {"type": "integer"},
            "at": {**TIME, "description": "When it happened (event time)."},
            "old": {"type": "string", "enum": STATES},
            "new": {"type": "string", "enum": STATES},
            "reason": {"type": "string", "nullable": True},
            "deadline": {**NULL_TIME, "description": "The deadline that caused it, for changes made by the timer."},
            "detail": {"type": "string"},
            "learned_at": {
                **NULL_TIME,
                "description": "When Heartfly learned of it, if later than `at` (a spooled ping replayed late).",
            },
        },
    },
    "Attempt": {
        "type": "object",
        "required": ["at", "duration", "outcome"],
        "properties": {
            "at": TIME,
            "duration": {"type": "number"},
            "outcome": {"type": "string", "enum": [o.value for o in AttemptOutcome]},
            "error": {"type": "string", "nullable": True},
        },
    },
    "Alert": {
        "type": "object",
        "required": ["id", "key", "channel", "event", "created_at", "status", "attempts", "attempt_log"],
        "properties": {
            "id": {"type": "integer"},
            "key": {"type": "string", "description": "The idempotency key."},
            "channel": {"type": "string"},
            "event": {"type": "string", "enum": [e.value for e in AlertEvent]},
            "created_at": TIME,
            "status": {"type": "string", "enum": ["pending", "sent", "failed", "expired", "superseded"]},
            "attempts": {"type": "integer"},
            "done_at": NULL_TIME,
            "error": {"type": "string", "nullable": True},
            "next_attempt_at": NULL_TIME,
            "attempt_log": {"type": "array", "items": _ref("Attempt")},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/checks": {
        "get": {
            "summary": "Every check",
            "operationId": "listChecks",
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "schema": {"type": "string", "enum": STATES},
                    "description": "Only checks in this state.",
                },
                {
                    "name": "tag",
                    "in": "query",
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "style": "form",
                    "explode": True,
                    "description": "Only checks with this tag; repeated, only those with every tag given.",
                },
            ],
            "responses": {"200": _json({"type": "array", "items": _ref("Check")}, "Every check."), **ERRORS},
        }
    },
    "/api/v1/checks/{name}": {
        "parameters": [NAME],
        "get": {
            "summary": "One check",
            "operationId": "getCheck",
            "responses": {"200": _json(_ref("Check"), "The check."), **ERRORS, **NOT_FOUND},
        },
    },
    "/api/v1/checks/{name}/record": {
        "parameters": [NAME],
        "get": {
            "summary": "The check's record over 24 h, 7 d and 30 d: availability, downtime, failures, durations",
            "operationId": "getCheckRecord",
            "responses": {"200": _json(_ref("Record"), "The record, one item per window."), **ERRORS, **NOT_FOUND},
        },
    },
    "/api/v1/checks/{name}/pings": _page_of("Ping", "The check's pings with their messages"),
    "/api/v1/checks/{name}/runs": _page_of("Run", "The check's finished runs with their durations"),
    "/api/v1/checks/{name}/flips": _page_of("Flip", "The check's changes of state", ALL_FLIPS),
    "/api/v1/checks/{name}/alerts": _page_of("Alert", "The check's alerts, each with every delivery attempt"),
    "/api/v1/checks/{name}/pause": _action(
        "pauseCheck",
        "Pause: no deadlines, no alerts; pings are still stored",
        [
            {
                "name": "until",
                "in": "query",
                "schema": {"type": "string", "pattern": UNTIL_PATTERN},
                "example": "2h",
                "description": 'Resume by itself then: a duration ("2h") or an ISO 8601 time (UTC unless it says).'
                " In the URL only: a request body other than none or `{}` is a 400, and nothing is paused.",
            }
        ],
        PAUSED,
    ),
    "/api/v1/checks/{name}/resume": _action("resumeCheck", "Watch again from now", answer=RESUMED),
    "/api/v1/channels/{name}/test": {
        "parameters": [{**NAME, "description": "The channel's name."}],
        "post": {
            "summary": "Send a marked test alert through the channel; answers with its first attempt",
            "operationId": "testChannel",
            "responses": {
                "200": _json(_ref("Alert"), "The test alert and its first attempt."),
                **ERRORS,
                "404": _json(_ref("Error"), "No channel of that name."),
                "409": _json(_ref("Error"), "A cluster's standby: only the leader sends alerts."),
            },
        },
    },
    "/api/v1/downtimes": {
        "get": {
            "summary": "When Heartfly itself was not running, or its machine slept (deadlines inside were extended)",
            "operationId": "listDowntimes",
            "parameters": [
                PAGE[0],
                {**PAGE[1], "description": "Only downtimes recorded before this one: pass the last item's `id`."},
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "stopped_at", "started_at", "clean", "suspended", "seconds"],
                            "properties": {
                                "id": {"type": "integer"},
                                "stopped_at": TIME,
                                "started_at": TIME,
                                "clean": {"type": "boolean", "description": "A clean stop, or a crash."},
                                "suspended": {
                                    "type": "boolean",
                                    "description": "The machine slept while Heartfly ran (a suspend), not a stop.",
                                },
                                "seconds": {"type": "number"},
                            },
                        },
                    },
                    "Downtimes, newest first (as recorded, by id).",
                    headers=LINK,
                ),
                **ERRORS,
            },
        }
    },
    "/api/v1/reload": {
        "post": {
            "summary": "Re-read the config file, as SIGHUP does",
            "description": "Besides the API token, the token file's current content is accepted as the"
            " bearer token here: a replaced token file takes effect with this reload.",
            "operationId": "reload",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["config", "checks", "restart_needed"],
                        "properties": {
                            "config": {"type": "string"},
                            "checks": {"type": "integer"},
                            "restart_needed": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "Settings the file changed since the start that only a restart"
                                " applies (server.listen, server.database, server.synchronous, server.node_id,"
                                " server.lease).",
                            },
                        },
                    },
                    "Reloaded.",
                ),
                "400": _json(_ref("Error"), "The file has errors (listed in `problems`); the running config is kept."),
                "401": ERRORS["401"],
                "403": ERRORS["403"],
            },
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Heartfly API",
        "version": __version__,
        "description": (
            "Read checks, their pings, runs, state changes and alerts; pause, resume, reload. "
            "Send `Authorization: Bearer <token>` (the content of server.api_token_file). "
            'Lists are newest first and paged with `limit` and `before`. Errors are JSON: `{"error": …}`. '
            "Ping URLs (/ping/…, /api/v1/heartbeat/…) need no token and are described in the README. "
            "Healthchecks' Management API (/api/v1/, /api/v2/, /api/v3/ with X-Api-Key) is documented at"
            " /api/v3/openapi.json."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
    "paths": PATHS,
}


async def document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT, headers={"Access-Control-Allow-Origin": "*"})
