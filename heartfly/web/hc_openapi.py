"""The OpenAPI 3 document of Healthchecks' Management API as Heartfly serves it (web/hcapi.py),
served at /api/v3/openapi.json; tests check the API against it (schemathesis).

It describes /api/v3/; /api/v1/ and /api/v2/ serve the same operations with Healthchecks'
version differences, which the description names. Where Heartfly answers as Healthchecks does
(a text/plain 404 for an unknown uuid, an empty 405 or 400), the document says so rather than
pretend the answers are JSON.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from heartfly import __version__
from heartfly.core.hcshape import MAX_SECONDS, MIN_SECONDS, UNIQUE_FIELDS

TIME = {"type": "string", "format": "date-time", "example": "2026-11-23T03:12:09+00:00"}
NULL_TIME = {**TIME, "nullable": True}
UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
UNIQUE_KEY_PATTERN = "^[A-Za-z0-9]{40}$"
SECONDS = {"type": "integer", "minimum": MIN_SECONDS, "maximum": MAX_SECONDS}  # 3600.0 too: a whole number
# Healthchecks' statuses in v2 and v3 (v1 also says "started" while a run is in progress).
STATUSES = ["new", "up", "grace", "down", "paused"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, example: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string", "example": example}}}}


def _empty(description: str) -> dict[str, Any]:
    return {"description": description}


def _wrapped(key: str, items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: {"type": "array", "items": items}}}


UNAUTHORIZED = {
    "401": _json(
        _ref("Error"),
        "No key or not 32 characters (`missing api key`), or not the key (`wrong api key`), as for the"
        " read-only key where a write needs the read-write one.",
    )
}
UNAVAILABLE = {"503": _json(_ref("Error"), "The database does not answer: try again.")}
NOT_FOUND = {
    "404": _text(
        "No check has that uuid (or unique_key): `not found`, as Healthchecks' plain 404 page (a path"
        " that matches no route at all is aiohttp's `404: Not Found`).",
        "not found",
    )
}
LEFT_OUT = {
    "409": _json(
        _ref("Error"),
        "The uuid is a check made through this API that the file no longer fits (left out at a start, its"
        " channel removed, say): not served, so nothing of it is shown; update it by its uuid so that it fits,"
        " or delete it.",
    )
}
BAD_BODY = {
    "400": _json(
        _ref("Error"),
        "The body is not JSON (`could not parse request body`), not an object, or a field is wrong"
        " (`json validation error: …`, Healthchecks' words for the first bad field; also a slug another"
        " check has, or a channel that is not one).",
    )
}
FILE_CHECK = {
    "403": _json(
        _ref("Error"), "The check is defined in Heartfly's config file: change it there (pause and resume work)."
    )
}
UNIQUE_KEY_ONLY_GETS = {
    "405": _empty("`code` is a unique_key: only GET takes one (empty body, as Healthchecks answers).")
}

CODE = {
    "name": "code",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": UUID_PATTERN},
    "description": "The check's uuid (lower case, as Healthchecks' routes take it).",
    "example": "0f9c2a1e-6b4d-4e8a-9c3f-2d7b1a5e8c40",
}
CODE_OR_UNIQUE_KEY = {
    **CODE,
    "schema": {"type": "string", "pattern": f"{UUID_PATTERN[:-1]}|{UNIQUE_KEY_PATTERN[1:]}"},
    "description": "The check's uuid, or the `unique_key` a read-only key sees instead.",
}

# Where a read-write key may also come in the body: the check writes read `api_key` when no X-Api-Key is sent.
API_KEY_FIELD = {
    "api_key": {  # no type: with the header it is not read, whatever it is; without, read as text
        "description": (
            "The read-write key, if the X-Api-Key header is not sent (the header wins, and this is then"
            " not read). A value that is not a string is read as its text, as Healthchecks does."
        ),
    }
}


def _only(value: Any, kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "enum": [value],
        "description": f"Heartfly has no such rule: only {value!r} (Healthchecks' default) is accepted; else 400.",
    }


SPEC_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 100, "description": "Free-text name."},
    "slug": {
        "type": "string",
        "maxLength": 100,
        "pattern": "^([a-z0-9][a-z0-9_-]*)?$",
        "description": (
            "The check's name in Heartfly (its [checks.NAME]); unique. Healthchecks also allows a leading"
            " `-` or `_`, which Heartfly refuses (400). A create without it names the check from `name`'s"
            " slug (or makes a name up); an update keeps the name unless it is given, non-empty."
        ),
    },
    "tags": {"type": "string", "description": "Space-separated tags, each at most 50 characters."},
    "desc": {"type": "string", "description": "Description."},
    "timeout": {**SECONDS, "description": "Seconds between pings (a simple check: every)."},
    "grace": {
        **SECONDS,
        "description": "Seconds of grace after a ping is due; also the longest a started run may take (max_runtime),"
        " unless [defaults] sets a max_runtime.",
    },
    "schedule": {
        "type": "string",
        "maxLength": 100,
        "example": "0 3 * * *",
        "description": "A 5-field cron expression (non-empty: a cron check). OnCalendar is not supported (400).",
    },
    "tz": {
        "type": "string",
        "example": "Europe/Berlin",
        "description": "An IANA time zone for `schedule` (UTC for a check given a schedule without one).",
    },
    "channels": {
        "type": "string",
        "example": "*",
        "description": '`"*"`: every channel; `""`: none; else channel ids or names, comma-separated.',
    },
    "unique": {
        "type": "array",
        "items": {"type": "string", "enum": list(UNIQUE_FIELDS)},
        "description": "Create only: if a check has all these fields as given, update it (200) instead.",
    },
    "manual_resume": {
        "type": "boolean",
        "description": "false (a create's default): a start, success or failure ping ends a pause;"
        " true: only a resume does (the check's resume_on_ping, the other way round).",
    },
    "methods": _only("", "string"),
    "filter_subject": _only(False, "boolean"),
    "filter_body": _only(False, "boolean"),
    "filter_http_body": _only(False, "boolean"),
    "filter_default_fail": _only(False, "boolean"),
    "start_kw": _only("", "string"),
    "success_kw": _only("", "string"),
    "failure_kw": _only("", "string"),
    "subject": _only("", "string"),
    "subject_fail": _only("", "string"),
    **API_KEY_FIELD,
}


def _body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"required": False, "description": description, "content": {"application/json": {"schema": schema}}}


SPEC_BODY = _body(
    _ref("CheckSpec"),
    "Only the fields given are set; unknown fields are ignored, null is a type error (400).",
)
KEY_BODY = _body(
    {"type": "object", "properties": API_KEY_FIELD},
    "Optional; only `api_key` is read. A body that is not a JSON object is a 400.",
)

CHECK_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "description": "The free-text name given, else the check's name."},
    "slug": {"type": "string", "description": "The check's name in Heartfly."},
    "tags": {"type": "string", "description": "Space-separated."},
    "desc": {"type": "string"},
    "grace": {"type": "integer", "minimum": 0, "description": "Seconds."},
    "n_pings": {"type": "integer", "minimum": 0},
    "status": {
        "type": "string",
        "enum": STATUSES,
        "description": 'Heartfly\'s late is "grace"; a running check is "up" (v1: "started").',
    },
    "started": {"type": "boolean", "description": "A run is in progress."},
    "last_ping": NULL_TIME,
    "next_ping": {**NULL_TIME, "description": "When the next ping is due (a running check: its start)."},
    "manual_resume": {"type": "boolean", "description": "true: pings do not end a pause (see the request's)."},
    "methods": {"type": "string", "enum": [""]},
    "subject": {"type": "string", "enum": [""]},
    "subject_fail": {"type": "string", "enum": [""]},
    "start_kw": {"type": "string", "enum": [""]},
    "success_kw": {"type": "string", "enum": [""]},
    "failure_kw": {"type": "string", "enum": [""]},
    "filter_subject": {"type": "boolean", "enum": [False]},
    "filter_body": {"type": "boolean", "enum": [False]},
    "filter_http_body": {"type": "boolean", "enum": [False]},
    "filter_default_fail": {"type": "boolean", "enum": [False]},
    "badge_url": {"type": "string"},
    "last_duration": {"type": "integer", "minimum": 0, "description": "Seconds; only if there is one."},
    "unique_key": {"type": "string", "pattern": "^[0-9a-f]{40}$", "description": "Read-only key only."},
    "uuid": {"type": "string", "pattern": UUID_PATTERN, "description": "Read-write key only."},
    "ping_url": {"type": "string"},
    "update_url": {"type": "string", "description": "Carries the API version asked: /api/v3/checks/<uuid>."},
    "pause_url": {"type": "string"},
    "resume_url": {"type": "string"},
    "channels": {"type": "string", "description": "The channels' ids, sorted, comma-separated."},
    "timeout": {"type": "integer", "minimum": 0, "description": "Seconds; a check without a cron schedule."},
    "schedule": {"type": "string", "description": "A cron check's schedule."},
    "tz": {"type": "string", "description": "A cron check's time zone."},
}
READ_WRITE_FIELDS = ["uuid", "ping_url", "update_url", "pause_url", "resume_url", "channels"]

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "CheckSpec": {"type": "object", "properties": SPEC_PROPERTIES},
    "Check": {
        "type": "object",
        "description": (
            "With the read-write key: uuid, ping_url, update_url, pause_url, resume_url and channels; with the"
            " read-only key: unique_key instead. A cron check has schedule and tz, any other timeout."
        ),
        "required": [
            k
            for k in CHECK_PROPERTIES
            if k not in ("last_duration", "unique_key", "timeout", "schedule", "tz", *READ_WRITE_FIELDS)
        ],
        "properties": CHECK_PROPERTIES,
        "oneOf": [{"required": ["timeout"]}, {"required": ["schedule", "tz"]}],
    },
    "CheckReadWrite": {
        "allOf": [_ref("Check"), {"type": "object", "required": READ_WRITE_FIELDS}],
        "description": "A check as a write answers it: always the read-write form.",
    },
    "LeftOutCheck": {
        "type": "object",
        "description": "A check made through this API that no longer fits the config file (its channel removed):"
        " not served, so it has nothing else to show.",
        "required": ["slug", "uuid", "channels"],
        "properties": {"slug": {"type": "string"}, "uuid": {"type": "string"}, "channels": {"type": "string"}},
        "additionalProperties": False,
    },
    "Ping": {
        "type": "object",
        "required": ["type", "date", "n", "scheme", "remote_addr", "method", "ua", "rid", "body_url"],
        "properties": {
            "type": {"type": "string", "enum": ["success", "start", "fail", "log"]},
            "date": {**TIME, "example": "2026-11-23T03:12:09.113073+00:00", "description": "With microseconds."},
            "n": {"type": "integer", "description": "The ping's number: its body is at pings/{n}/body."},
            "scheme": {"type": "string", "enum": ["http"]},
            "remote_addr": {"type": "string"},
            "method": {"type": "string"},
            "ua": {"type": "string", "description": "The User-Agent it was sent with (its first 200 characters)."},
            "rid": {"type": "string", "nullable": True, "description": "The run id."},
            "exit_status": {"type": "integer", "nullable": True, "description": "Heartfly's; not in Healthchecks."},
            "duration": {"type": "number", "description": "Seconds of the run a success or failure ended; only then."},
            "body_url": {"type": "string", "nullable": True, "description": "Null when the ping had no body."},
        },
    },
    "Flip": {
        "type": "object",
        "required": ["timestamp", "up"],
        "properties": {
            "timestamp": TIME,
            "up": {
                "type": "integer",
                "enum": [0, 1],
                "description": "1: up (or running) from then on, a new check from its first success; 0: down, paused.",
            },
        },
    },
    "Channel": {
        "type": "object",
        "required": ["id", "name", "kind"],
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "Derived from the name; the same every time."},
            "name": {"type": "string"},
            "kind": {"type": "string", "description": "The channel's type."},
        },
    },
    "Badge": {
        "type": "object",
        "required": ["svg", "svg3", "json", "json3", "shields", "shields3"],
        "properties": {k: {"type": "string"} for k in ("svg", "svg3", "json", "json3", "shields", "shields3")},
    },
}


def _operation(op: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "operationId": op, **extra, "responses": responses}


def _check_route(summary: str, op: str, *, conflict: bool = False) -> dict[str, Any]:
    """pause and resume: a POST, its body optional."""
    responses: dict[str, Any] = {
        "200": _json(_ref("CheckReadWrite"), "The check afterwards."),
        "400": BAD_BODY["400"],
        **UNAUTHORIZED,
        **NOT_FOUND,
        **UNAVAILABLE,
    }
    responses.update(LEFT_OUT)
    if conflict:  # text/plain beside LEFT_OUT's JSON
        paused = _text("The check is not paused; the body is `check is not paused`.", "check is not paused")
        responses["409"] = {
            "description": paused["description"] + " " + LEFT_OUT["409"]["description"],
            "content": {**LEFT_OUT["409"]["content"], **paused["content"]},
        }
    return {"parameters": [CODE], "post": _operation(op, summary, responses, requestBody=KEY_BODY)}


PATHS: dict[str, Any] = {
    "/api/v3/checks/": {
        "get": _operation(
            "listChecks",
            "Every check (read-only key too)",
            {
                "200": _json(_wrapped("checks", _ref("Check")), "Every check that matches."),
                **UNAUTHORIZED,
                **UNAVAILABLE,
            },
            parameters=[
                {
                    "name": "tag",
                    "in": "query",
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "style": "form",
                    "explode": True,
                    "description": "Only checks with this tag; repeated, only those with every tag given.",
                },
                {
                    "name": "slug",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Only the check so named.",
                },
            ],
        ),
        "post": _operation(
            "createCheck",
            "Make a check (or, with `unique`, update the one that matches)",
            {
                "200": _json(_ref("CheckReadWrite"), "`unique` matched a check: it, updated."),
                "201": _json(_ref("CheckReadWrite"), "The check made."),
                **BAD_BODY,
                **UNAUTHORIZED,
                "403": _json(_ref("Error"), "`unique` matched a check defined in Heartfly's config file."),
                **UNAVAILABLE,
            },
            requestBody=SPEC_BODY,
        ),
    },
    "/api/v3/checks/{code}": {
        "get": _operation(
            "getCheck",
            "One check (read-only key too, by uuid or unique_key)",
            {"200": _json(_ref("Check"), "The check."), **UNAUTHORIZED, **NOT_FOUND, **LEFT_OUT, **UNAVAILABLE},
            parameters=[CODE_OR_UNIQUE_KEY],
        ),
        "post": _operation(
            "updateCheck",
            "Change a check made through this API",
            {
                "200": _json(_ref("CheckReadWrite"), "The check afterwards."),
                **BAD_BODY,
                **UNAUTHORIZED,
                **FILE_CHECK,
                **NOT_FOUND,
                **UNIQUE_KEY_ONLY_GETS,
                **UNAVAILABLE,
            },
            parameters=[CODE],
            requestBody=SPEC_BODY,
        ),
        "delete": _operation(
            "deleteCheck",
            "Delete a check made through this API (its history stays in the database)",
            {
                "200": _json(
                    {"oneOf": [_ref("CheckReadWrite"), _ref("LeftOutCheck")]},
                    'The check as it was, `channels` "" (a check left out: `slug`, `uuid` and `channels` only).',
                ),
                **UNAUTHORIZED,
                **FILE_CHECK,
                **NOT_FOUND,
                **UNIQUE_KEY_ONLY_GETS,
                **UNAVAILABLE,
            },
            parameters=[CODE],
        ),
    },
    "/api/v3/checks/{code}/pause": _check_route("Pause (already paused: no change)", "pauseCheck"),
    "/api/v3/checks/{code}/resume": _check_route("Resume a paused check", "resumeCheck", conflict=True),
    "/api/v3/checks/{code}/pings/": {
        "parameters": [CODE],
        "get": _operation(
            "listPings",
            "The check's last 100 pings, newest first",
            {
                "200": _json(_wrapped("pings", _ref("Ping")), "The pings."),
                **UNAUTHORIZED,
                **NOT_FOUND,
                **LEFT_OUT,
                **UNAVAILABLE,
            },
        ),
    },
    "/api/v3/checks/{code}/pings/{n}/body": {
        "parameters": [
            CODE,
            {
                "name": "n",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                "description": "The ping's `n`.",
            },
        ],
        "get": _operation(
            "getPingBody",
            "A ping's body, as sent",
            {
                "200": {"description": "The body.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **UNAUTHORIZED,
                "404": _text("No such check, no such ping of it, or the ping had no body: `not found`.", "not found"),
                **LEFT_OUT,
                **UNAVAILABLE,
            },
        ),
    },
    "/api/v3/checks/{code}/flips/": {
        "get": _operation(
            "listFlips",
            "The check's changes between up and down, newest first, at most 1000 (older ones: ?end= at the oldest"
            " shown); read-only key too, by uuid or unique_key",
            {
                "200": _json(_wrapped("flips", _ref("Flip")), "The changes."),
                "400": _empty("`seconds`, `start` or `end` is not an integer in its range (empty body)."),
                **UNAUTHORIZED,
                **NOT_FOUND,
                **LEFT_OUT,
                **UNAVAILABLE,
            },
            parameters=[
                CODE_OR_UNIQUE_KEY,
                *(
                    {
                        "name": name,
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": top},
                        "description": text,
                    }
                    for name, top, text in (
                        ("seconds", MAX_SECONDS, "Only changes in the last this many seconds (0: all)."),
                        ("start", 10_000_000_000, "Only changes at or after this UNIX time."),
                        ("end", 10_000_000_000, "Only changes before this UNIX time."),
                    )
                ),
            ],
        ),
    },
    "/api/v3/channels/": {
        "get": _operation(
            "listChannels",
            "The alert channels (integrations)",
            {"200": _json(_wrapped("channels", _ref("Channel")), "The channels."), **UNAUTHORIZED, **UNAVAILABLE},
        ),
    },
    "/api/v3/badges/": {
        "get": _operation(
            "listBadges",
            "Badge URLs by tag (read-only key too)",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["badges"],
                        "properties": {"badges": {"type": "object", "additionalProperties": _ref("Badge")}},
                    },
                    'Per tag (and "*" for every check): Heartfly\'s badges are per check, so the first check'
                    " with the tag, by name.",
                ),
                **UNAUTHORIZED,
                **UNAVAILABLE,
            },
        ),
    },
    "/api/v3/status/": {
        "get": _operation(
            "status",
            "Whether the database answers (no key)",
            {"200": _text("`OK`.", "OK"), "500": _text("`database unavailable`.", "database unavailable")},
            security=[],
        ),
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Heartfly: Healthchecks' Management API",
        "version": __version__,
        "description": (
            "Healthchecks' Management API, for its clients (Terraform, Ansible, the Python clients). Send the key"
            " in `X-Api-Key` (the content of server.hc_api_key_file, or of hc_api_key_readonly_file for the reads"
            " that allow it); a write may carry it as `api_key` in its JSON body instead. Errors are JSON"
            ' `{"error": …}` except where Healthchecks answers otherwise: an unknown check is a text/plain 404,'
            " a method a path does not take is a 405 with an empty body, and OPTIONS is a 204 with the CORS"
            " headers every answer carries. "
            "/api/v1/ and /api/v2/ serve the same operations with Healthchecks' version differences: in v1"
            ' `status` may be "started" (a run in progress, "up" in v2 and v3), and URLs in answers (update_url,'
            " pause_url, resume_url, body_url) carry the version asked. Heartfly's own API is documented at"
            " /api/v1/openapi.json."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"apiKey": []}],
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
        "schemas": SCHEMAS,
    },
    "paths": PATHS,
}


async def document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT, headers={"Access-Control-Allow-Origin": "*"})
