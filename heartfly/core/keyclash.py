"""Which check holds each ping key, and which keys two checks (or a check and the server's
ping_key) share: a UUID key in either case is one key, as it is one uuid in Healthchecks' API.
Owners are named only for a clash: formatting 100k names up front was a measurable part of a start."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from heartfly.core.checkconfig import CheckConfig, key_uuid

# Who holds a key: (check name, attribute), or (None, "ping_key") for the server's.
Owner = tuple[str | None, str]


def owner_text(owner: Owner) -> str:
    name, attr = owner
    return f"server.{attr}" if name is None else f"checks.{name}.{attr}"


def key_owners(ping_key: str | None, checks: Mapping[str, CheckConfig]) -> dict[str, Owner]:
    """Each key's first holder, by key_id."""
    owners: dict[str, Owner] = {ping_key: (None, "ping_key")} if ping_key else {}
    for check in checks.values():
        for attr, value in (("key", check.key), ("start_key", check.start_key), ("fail_key", check.fail_key)):
            if value is not None:
                owners.setdefault(value, (check.name, attr))
    # Nearly always each key is its own key_id, with no call of it per key (see key_clashes).
    if not all_lower(uuids := [k for k in owners if len(k) == 36]):
        for key in uuids:
            if (known := key_id(key)) != key:
                owners.setdefault(known, owners.pop(key))
    return owners


def key_clashes(ping_key: str | None, checks: Mapping[str, CheckConfig]) -> list[tuple[str, str]]:
    """(where, problem) for each key a check uses that the server or an earlier check holds."""
    keys = [c.key for c in checks.values()]
    keys += [k for c in checks.values() for k in (c.start_key, c.fail_key) if k is not None]
    if ping_key:
        keys.append(ping_key)
    # Nearly always: sets in C, no owner named per key, and no key_id called per key (a UUID in
    # upper case can be only one of 36 characters with a capital: key_id's own test).
    uuids = [k for k in keys if len(k) == 36]
    if len(set(keys)) == len(keys) and (all_lower(uuids) or len(set(map(key_id, uuids))) == len(uuids)):
        return []
    clashes: list[tuple[str, str]] = []
    owners: dict[str, Owner] = {}
    if ping_key:
        owners[key_id(ping_key)] = (None, "ping_key")
    for check in checks.values():
        for attr, value in (("key", check.key), ("start_key", check.start_key), ("fail_key", check.fail_key)):
            if value is None:
                continue
            if (known := key_id(value)) in owners:
                clashes.append(
                    (f"checks.{check.name}.{attr}", f"the same key is already used by {owner_text(owners[known])}")
                )
            else:
                owners[known] = (check.name, attr)
    return clashes


def key_id(key: str) -> str:
    """What two keys are told apart by: a UUID in upper and in lower case is one uuid, the check's
    in Healthchecks' API (check_uuid), so one check's. Cheap for the usual lower-case key."""
    return key if len(key) != 36 or key.islower() or key_uuid(key) is None else key.lower()


def all_lower(keys: Iterable[str]) -> bool:
    """Whether no key has a capital letter, so that each is its own key_id: a pass in C over 100k
    keys (1 ms; str.islower takes 26), where a call of key_id per key doubled unique_keys' time on
    UUID keys (+20 ms at 100k checks, and +25 ms on key_owners, run at each check the API makes)."""
    joined = "".join(keys)
    return joined.lower() == joined
