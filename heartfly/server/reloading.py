"""The engine's part that applies a new config on a reload (SIGHUP, the API, a stored check made
or changed, a cluster's new term): new checks watched, removed ones kept with their history,
changed ones rescheduled, and the holds of maintenance windows the change ends told."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping

from heartfly.core import pipeline, states
from heartfly.core.config import Config
from heartfly.server import settings, windows
from heartfly.server.checks import Check, Removed
from heartfly.server.loading import UNSERVED, Loading
from heartfly.store import rows as store
from heartfly.store.api import StoreError
from heartfly.store.queries import LoggedPing

log = logging.getLogger("heartfly.server.engine")  # the engine's log, as before the split


class Reloading(Loading):
    async def apply_config(
        self, config: Config, renamed: Mapping[str, str] | None = None, fresh: Collection[str] = ()
    ) -> None:
        """Switch to a new config: new checks are watched, removed ones keep their history. One
        at a time, in the order called: a cluster's new term applies the config without the
        reload lock, and two at once, each awaiting reads before it rebuilds the maps, could end
        on the older config. `renamed` ({new name: old name}: checks renamed through the API) keep
        their history under the new name; under those and the names in `fresh` (checks made
        through the API) no other check's history is taken up: it goes by its tombstone name, as
        its row does (store.tombstone_statement, in the API's commit)."""
        async with self._reconfiguring:
            took: dict[str, int] = {}
            if self._db is not None and not self._view:
                renamed, fresh, took = await self._as_stored(config, renamed, fresh)
            for name in (*fresh, *(renamed or {}), *took):
                if (gone := self._removed.get(name)) is not None and gone.id != took.get(name):
                    del self._removed[name]
                    self._removed[store.tombstone(gone.id, name)] = gone
            for name, row_id in took.items():  # a removed check's row, under its name now
                was = next((n for n, r in self._removed.items() if r.id == row_id), None)
                if name not in self._removed and was is not None:
                    # (A row no engine of this node made, it did not read: _apply_config's INSERT
                    # tombstones it, rather than replay pings this engine never judged.)
                    self._removed[name] = self._removed.pop(was)
            await self._apply_config(config, renamed or {}, fresh)

    async def _as_stored(
        self, config: Config, renamed: Mapping[str, str] | None, fresh: Collection[str]
    ) -> tuple[dict[str, str], set[str], dict[str, int]]:
        """`renamed` and `fresh` as the checks table has them now: which row goes by each name is
        the truth, whatever the stored checks this node last read say (a new term's engine loaded
        rows older or newer than its config, a caller that does not know (None): every name is
        looked at). Also {name: id} of the removed checks' rows a name takes now."""
        try:
            await self.writer.flush()  # rows this engine made (its new checks') are in the table first
        except StoreError:  # writes fail: the table may lack them; the caller's word stands
            return dict(renamed or {}), set(fresh), {}
        assert self._db is not None
        if renamed is None:
            names = list(config.checks)
        else:
            asked = {*renamed, *fresh, *(n for n in config.checks if n not in self.checks)}
            names = [n for n in asked if n in config.checks]
        try:
            rows = await self._db.read_check_ids(names)
        except StoreError:  # the change is committed: apply it as the caller sees it rather than not at all
            return dict(renamed or {}), set(fresh), {}
        moved: dict[str, str] = {}
        made: set[str] = set()
        took: dict[str, int] = {}
        for name in names:
            row_id = rows.get(name)
            live = self.checks.get(name)
            gone = self._removed.get(name)
            held = live.id if live is not None else gone.id if gone is not None else None
            if held == row_id:
                continue
            if live is not None or gone is not None:
                made.add(name)  # another row's, or none: what the engine holds under it goes by its tombstone name
            if row_id is None:
                continue
            holder = self._by_id.get(row_id)
            if holder is not None and self.checks.get(holder.name) is holder:
                moved[name] = holder.name  # renamed: its history goes with it
                made.discard(name)
            else:
                took[name] = row_id
        return moved, made, took

    async def _apply_config(self, config: Config, renamed: Mapping[str, str], fresh: Collection[str]) -> None:
        # Read first: from here on the maps are rebuilt, and pings must not see them half done.
        missed: dict[int, list[LoggedPing]] = {}
        for name in config.checks.keys() & self._removed.keys():
            back = self._removed[name]
            if back.stale and self._db is not None:
                missed[back.id] = await self._db.check_pings_after(back.id, back.ping_id)
        if self._unread:  # read as the start would have, a page at a time, before the maps are rebuilt
            await self.finish_load(lambda: None)
        statements = await settings.statements(config, self._view)  # a cluster's leader's, for its standbys
        now = self.clock.now()
        freed: list[store.Statement] = []  # before the INSERTs, not between them: one executemany each
        old = dict(self.checks)
        moving = {new: old.pop(was) for new, was in renamed.items() if was in old}  # reconfigured below
        # Deleted and made again, or deleted and another check renamed to its name (a follower sees
        # both at once): the check left under the name is dropped below, under its tombstone name.
        for name in (*fresh, *moving):
            if (check := old.pop(name, None)) is not None:
                old[store.tombstone(check.id, name)] = check
        old.update(moving)
        self.checks, self._keys, self._kind_keys, self._by_id = {}, {}, {}, {}
        # Until every check is back in the maps, a compaction of the heap would take the entries of
        # those not yet back for stale, and their deadlines would never fire (_drop_stale).
        self._rebuilding = True
        writes: list[store.Write] = []
        returned: list[Check] = []
        for name, cfg in config.checks.items():
            if name in old:
                check = old[name]
                if check.config == cfg:
                    # Its config and state are those its heap entry was made for: that entry stands
                    # (the maps point at the same check again). Worked out again, every deadline of
                    # 50,000 checks held the pings for a second on a reload that changed one.
                    self._add(check)
                    continue
                was, step = check.state, states.reconfigure(cfg, check.state, now, old=check.config)
                check.state, check.config = step.state, cfg
                writes.append(self._change(check, step, was))
            elif (gone := self._removed.pop(name, None)) is not None:  # back in the file: see below
                afresh = states.reconfigure(cfg, gone.state, now, complete=False).state  # see _bring_back
                check = Check(gone.id, cfg, afresh, ping_id=gone.ping_id)
                returned.append(check)
            else:
                # A row another node gave this name since it was read (a rename through the API on
                # a cluster) would fail the INSERT, and every write queued behind it, for good.
                freed.append(store.tombstone_statement(name))
                check = self._create(cfg, now, statements)
            self._add(check)
            self._schedule(check)
        dropped: list[str] = []
        unserved: list[str] = []  # made through the API: deleted there (here or on another node), never in the file
        for name, check in old.items():
            if name not in config.checks:
                self._apply_held(check, now)  # what it holds for the reorder window happened while it was watched
                check.seq += 1  # drops its heap entry
                check.heap_at = None
                held = check.state.window_hold is not None
                if held:  # a window's hold goes with the check: told when it came back, a late surprise
                    check.state = dataclasses.replace(check.state, window_hold=None, window_end=0.0)
                if held or check.id in self._unstored:  # the checkpoint mark moves past its pings: store them now
                    writes.append(store.Write(state=self._mark_stored(check)))
                self._removed[name] = Removed(check.id, check.state, check.ping_id)
                statements.append(store.removed_statement(check.id, now))
                if not name.startswith(store.TOMBSTONE):  # a deleted check: the API logs its own line
                    (dropped if check.config.origin == "file" else unserved).append(name)
        self._rebuilding = False
        self._drop_stale()
        self._log_checks(dropped, "was removed from the config; its history is kept", "were removed from the config")
        self._log_checks(unserved, *UNSERVED)
        self._log_checks(
            [check.name for check in returned],
            "is back in the config; watching it afresh, with its history",
            "are back in the config",
            "; watching them afresh, with their history",
        )
        self.config = config
        self.ping_ids.keep_for = config.server.max_ping_age  # ids are remembered as long as pings are taken
        for window in config.maintenance:  # a window new to the file owes no summary of the past
            if window.name not in self.windows_done:
                self.windows_done[window.name] = now
                if not self._view:  # stored, as a start's (windows.marks): else the next start takes it
                    # for new, and tells what it held as a window's "removed or changed", ended then
                    statements.append(store.meta_statement(windows.DONE_META + window.name, repr(now)))
        self._log_new()
        self._edges, self._steps = pipeline.steps_of(config.checks.values())
        for check in returned:  # with the new config in place: a replayed flip alerts its channels
            writes.append(self._bring_back(check, missed.get(check.id, []), now))
        self.writer.submit_nowait(store.Write(statements=freed + statements))
        for w in writes:
            self.writer.submit_nowait(w)
        # After those: a state row of theirs would store a hold this drops.
        self.release_holds(now)  # a window removed or changed no longer tells what it held
        try:
            await self.writer.flush()
        except StoreError as exc:  # applied in memory; the writer retries its rows until they commit
            log.warning("reload applied; its rows are stored once database writes work again: %s", exc)
