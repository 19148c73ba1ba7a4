"""Pipeline steps armed by their upstream's changes (the engine's part, through Steps): a trigger
arms the steps after it (heartfly.core.pipeline says which), and an upstream up again has the steps
whose down was folded into its alert judged on their own, however it came back (a ping, a held
success the timer applied, an operator's resume).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from heartfly.core import pipeline, states
from heartfly.core.holding import HELD_SUCCESS
from heartfly.core.runs import IMPLICIT_RUN
from heartfly.core.states import CheckState, Event, Kind, Status
from heartfly.server.checks import ArmedStep, Check
from heartfly.server.reloading import Reloading
from heartfly.store import rows as store

_DOWN, _PAUSED, _UP, _RUNNING = Status.DOWN, Status.PAUSED, Status.UP, Status.RUNNING


class Steps(Reloading):
    def _arm_steps(
        self, check: Check, old: CheckState, event: Event, steps: Sequence[states.Step], now: float, window: float
    ) -> list[ArmedStep]:
        """Arm the steps after `check` that this ping (`event`, which took it from `old`) triggers;
        the steps armed, each with its state before and after (for _undo)."""
        downstream_steps = self._steps.get(check.name)
        if not downstream_steps:
            return []
        armed: list[ArmedStep] = []
        runs = old.runs
        if event.kind is Kind.SUCCESS and old.waiting:
            # The runs open just before the ping itself, as event order leaves them: the pings held
            # for the reorder window before it apply first (some did before it, as steps).
            own = 2 if _split(steps) else 1  # the ping's own step(s): up_then_running makes two
            before = steps[-own - 1].state if len(steps) > own else old
            released = states.release_waiting(check.config, before, now, until=event.at)
            runs = (released[-1].state if released else before).runs
        succeeded_at = _success_since(old, check.state)
        fan_in = check.config.expect is not None
        if succeeded_at is not None and not fan_in and _holds_success(old, succeeded_at):
            succeeded_at = None  # a held success judged by this ping: it armed its steps as it came
        if succeeded_at is None and event.kind is Kind.SUCCESS and not fan_in and _holds_success(check.state, event.at):
            # Held for the reorder window (its start may yet show it too fast): it arms as it comes,
            # as a success of a check that judges no duration does, so that a step that follows it
            # at once is not armed again after it ran (judged too fast later, it disarms them: below).
            # Not a fan-in's: its success held behind a held deadline may not complete its batch.
            succeeded_at = event.at
        if succeeded_at is not None and fan_in:
            succeeded_at = _completed_at(old, event.run_id, succeeded_at)
        closed = old.closed_runs if fan_in else None
        for name, trigger in downstream_steps:
            downstream = self.checks.get(name)
            if downstream is None:
                continue
            if not pipeline.fires(trigger, event.kind, event.run_id, runs, succeeded=succeeded_at is not None,
                                  batches_closed=closed):  # fmt: skip
                continue
            at = succeeded_at if trigger == "success" and succeeded_at is not None else event.at
            self._arm(downstream, at, now, window, armed)
        self._unfold_after(check, steps, now, window, armed)
        if old.waiting:
            self._disarm_unsucceeded(check, old, armed)
        return armed

    def _judge_steps_after(self, check: Check, old: CheckState, steps: Sequence[states.Step], now: float) -> None:
        """After a change of `check` from `old` that no ping made (the timer, a pause or resume,
        the pings held for the reorder window applied): the steps below it, as _arm_steps does
        for a ping (its own triggers aside)."""
        self._unfold_after(check, steps, now, states.REORDER_WINDOW, [])
        if old.waiting:  # a held success judged now
            self._disarm_unsucceeded(check, old)
            self._arm_after_held(check, old, now)

    def _unfold_after(
        self, check: Check, steps: Sequence[states.Step], now: float, window: float, armed: list[ArmedStep]
    ) -> None:
        """After `check` changed by `steps`: if it is up again (a recovery, or resumed), every step
        below it whose down was folded into an upstream's alert is judged on its own (arm_folded;
        one whose nearer upstream is still down folds again)."""
        for step in steps:
            flip = step.flip
            if flip is None or not (flip.is_recovery or (flip.old is _PAUSED and flip.new not in (_DOWN, _PAUSED))):
                continue
            for downstream in self._below(check.name):
                if self._down_upstream(downstream) is not None:  # still folded: told when that one is up
                    continue
                self._arm(downstream, flip.at, now, window, armed, folded=True)

    def _arm_after_held(self, check: Check, old: CheckState, now: float) -> None:
        """After the timer (or a pause, resume, reload or restart) applied the pings `check` held
        for the reorder window (in `old`): a fan-in's success among them that completed its batch
        arms the steps after its success, as of the batch's newest member (it armed nothing as it
        came: it could not tell then that it would complete the batch)."""
        succeeded_at = _success_since(old, check.state)
        if check.config.expect is None or succeeded_at is None:
            return
        for w in old.waiting:
            if w[0] == succeeded_at and w not in check.state.waiting:
                succeeded_at = _completed_at(old, w[1], succeeded_at)
        for name, trigger in self._steps.get(check.name) or ():
            step = self.checks.get(name)
            if step is not None and trigger == "success":
                self._arm(step, succeeded_at, now, states.REORDER_WINDOW, [])

    def _disarm_unsucceeded(self, check: Check, old: CheckState, armed: list[ArmedStep] | None = None) -> None:
        """After the pings `check` held for the reorder window (in `old`) were applied: a held
        success that armed the steps after its success as it came, and is judged no success now
        (too fast), disarms those it armed and that have not run since (step_since its time)."""
        new = check.state
        for at, *_, kind in (w for w in old.waiting if w not in new.waiting):  # applied
            if kind not in HELD_SUCCESS or (new.last_success_at is not None and new.last_success_at >= at):
                continue
            for name, trigger in self._steps.get(check.name) or ():
                step = self.checks.get(name)
                if step is not None and trigger == "success" and step.state.step_since == at:
                    disarmed = step.state.copy()
                    disarmed.step_due = disarmed.step_since = None
                    self._set_step(step, disarmed, [] if armed is None else armed)

    def _below(self, name: str) -> Iterator[Check]:
        """The steps after `name`, theirs, and so on down (each once)."""
        seen = {name}
        todo = [name]
        while todo:
            for step, _ in self._steps.get(todo.pop()) or ():
                if step not in seen and (found := self.checks.get(step)) is not None:
                    seen.add(step)
                    todo.append(step)
                    yield found

    def _arm(
        self,
        step: Check,
        upstream_at: float,
        now: float,
        window: float,
        armed: list[ArmedStep],
        *,
        folded: bool = False,
    ) -> None:
        """A pipeline step's upstream triggered it at `upstream_at` (with `folded`: recovered then,
        states.arm_folded): armed, unless it is already."""
        arm = states.arm_folded if folded else states.arm_step
        new = arm(step.config, step.state, upstream_at, now, window)
        if new is not step.state:
            self._set_step(step, new, armed)

    def _set_step(self, step: Check, new: CheckState, armed: list[ArmedStep]) -> None:
        """A step's new state (armed or disarmed), noted in `armed` for _undo, scheduled and stored."""
        armed.append((step, step.state, new))
        step.state = new
        self._schedule(step)
        # Queued now, before the upstream's change: whenever that is stored, so is this.
        self.writer.submit_nowait(store.Write(state=self._mark_stored(step)))

    def _schedule(self, check: Check, at: float | None = math.nan) -> None:
        raise NotImplementedError


def _success_since(old: CheckState, new: CheckState) -> float | None:
    """The time of the newest success judged one since `old`, if any (not a success that broke an
    assertion or was too fast, nor a fan-in worker's short of a complete batch, nor one held for
    the reorder window, not judged yet): what arms the steps after a check's success."""
    at = new.last_success_at
    return at if at is not None and (old.last_success_at is None or at > old.last_success_at) else None


def _split(steps: Sequence[states.Step]) -> bool:
    """Whether the last two steps are one recovery split by states.up_then_running."""
    if len(steps) < 2 or (last := steps[-1].flip) is None or (first := steps[-2].flip) is None:
        return False
    return (first.old, first.new, last.old, last.new) == (_DOWN, _UP, _UP, _RUNNING)


def _holds_success(st: CheckState, at: float) -> bool:
    """Whether the success at `at` is held for the reorder window (applied later, in event order)."""
    return any(w[0] == at and w[6] in HELD_SUCCESS for w in st.waiting)


def _completed_at(old: CheckState, run_id: str | None, at: float) -> float:
    """When a fan-in's batch (run `run_id`) completed with a success at `at`: with its newest
    member, whichever ping came last."""
    run = old.runs.get(run_id or IMPLICIT_RUN)
    return at if run is None else max(at, run.active_at)
