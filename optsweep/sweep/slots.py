"""Two ways of running jobs: slots (a job's end starts the next one at once, for one study's
trials or for every source of a benchmark) and, for a launcher that only runs batches, batches.

Slots: up to ``n_jobs`` trials run at once; when one ends (complete, pruned, failed, or its job
died) its result is told to Optuna and, under the study lock, the next trial is asked and submitted
right away, until the study has ``n_trials`` distinct settings and this worker's trials have ended.
A pruned trial's slot (its core, its GPU) is busy again within a poll, instead of idling until the
slowest trial of its batch ends. In the final drain (nothing left to start) a process pool's idle
slots lend their cores to the trials still running (``runner.lend``). ``SlotTime`` says how much
slot-time idled, and how much of that was lent.

``max_failure_rate`` is judged over the last ``n_jobs`` finished trials of this worker (all of them
when fewer finished): more failures than that fraction stops the launching; the trials still
running end and are told, then the sweep stops with an error showing the last failure.

One loop serves any number of sources (``run_sources``): the sweeper's one study, or the
benchmark's every study, confirmation and defaults grid through one runner (``optsweep.benchmark.
pool``); a free slot goes to the first source of the schedule's order that has a job to start.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Sequence, Tuple

from optsweep.sweep import runners
from optsweep.sweep import storage as st
from optsweep.sweep.errors import SweepError

log = logging.getLogger(__name__)

WAIT_S = 5.0  # the longest a slot loop waits for an end before it looks again


class FailureWindow:
    """The last ``size`` finished trials, and whether too many of them failed."""

    def __init__(self, size: int, rate: float) -> None:
        self.rate = rate
        self.recent: Deque[Tuple[int, Optional[str]]] = deque(maxlen=size)

    def add(self, number: int, error: Optional[str]) -> None:
        self.recent.append((number, error))

    def exceeded(self, final: bool = False) -> bool:
        """Too many failures among a full window (at the sweep's end: among what there is)."""
        if not self.recent or (len(self.recent) < (self.recent.maxlen or 0) and not final):
            return False
        failures = sum(error is not None for _, error in self.recent)
        return failures > 0 and failures / len(self.recent) > self.rate

    def error(self, sweep_dir: str) -> SweepError:
        failures = [(n, e) for n, e in self.recent if e is not None]
        number, error = failures[-1]
        return SweepError(
            f"{len(failures)} of the last {len(self.recent)} finished trials failed, more than "
            f"hydra.sweeper.max_failure_rate={self.rate}; last failure: trial {number}: {error} "
            f"(see its log in {Path(sweep_dir) / str(number)}; hydra.sweeper.max_failure_rate=1.0 "
            "lets a sweep go on past failures)")


class SlotTime:
    """Busy and idle slot-seconds from the first launch to the last end; the idle time after the
    last launch is the final drain (nothing was left to start); lent: idle slot-seconds whose
    cores the running trials had."""

    def __init__(self, slots: int) -> None:
        self.slots, self.busy, self.lending = slots, 0, 0
        self.first: Optional[float] = None
        self.last: Optional[float] = None
        self.busy_s = self.idle_s = self.idle_at_last_launch = self.lent_s = 0.0

    def _advance(self) -> None:
        now = time.monotonic()
        if self.last is not None:
            self.busy_s += self.busy * (now - self.last)
            self.idle_s += (self.slots - self.busy) * (now - self.last)
            self.lent_s += self.lending * (now - self.last)
        self.first = now if self.first is None else self.first
        self.last = now

    def launched(self) -> None:
        self._advance()
        self.busy += 1
        self.idle_at_last_launch = self.idle_s

    def ended(self) -> None:
        self._advance()
        self.busy -= 1
        self.lending = 0  # until lend() says again

    def lent(self, slots: int) -> None:
        """From now on ``slots`` idle slots lend their cores."""
        self._advance()
        self.lending = slots

    def summary(self) -> Dict[str, Any]:
        wall = (self.last or 0.0) - (self.first or 0.0)
        return {"slots": self.slots, "wall_s": round(wall, 3), "busy_slot_s": round(self.busy_s, 3),
                "idle_slot_s": round(self.idle_s, 3),
                "drain_idle_slot_s": round(self.idle_s - self.idle_at_last_launch, 3),
                "lent_slot_s": round(self.lent_s, 3)}


class Source(Protocol):
    """Work for the slots: one study's trials (``StudySource``), one grid's jobs
    (``optsweep.sweep.grid.GridSource``)."""

    def claim(self, free: int) -> List[runners.Job]:
        """Up to ``free`` jobs to start now (none: nothing now, or its cap is reached)."""

    def finish(self, end: runners.Ended, busy: int, slots: int) -> None:
        """One of its jobs ended; ``busy`` slots still run."""

    @property
    def wants_slots(self) -> bool:
        """It has jobs to start that it did not get slots for (or held back by its cap)."""

    @property
    def exhausted(self) -> bool:
        """Nothing of it runs and it will give no more jobs."""


class Schedule(Protocol):
    """The sources a slot loop serves, in the order free slots go to them, as they are now."""

    def active(self) -> Sequence[Source]: ...

    def advance(self) -> bool:
        """Its own work between claims (closing and opening sources), done while the jobs just
        started run; True when a new source may have jobs to start."""

    def done(self) -> bool:
        """Nothing is left to run (a schedule may wait on work elsewhere: another machine's)."""


class StudySource:
    """An Optuna study's trials (the sweeper's ``_Run``: claim under the study lock, tell each
    end): at most ``cap()`` of them in flight at once, and none once more than
    ``max_failure_rate`` of the last finished failed (``window``)."""

    def __init__(self, run: Any, window: FailureWindow,
                 cap: Optional[Callable[[], int]] = None) -> None:
        self.run, self.window, self.cap = run, window, cap
        self.running = 0
        self.full = False  # the study had nothing more to give at the last claim
        self.stopping = False  # too many failures: no more launches

    def claim(self, free: int) -> List[runners.Job]:
        limit = free if self.cap is None else min(free, self.cap() - self.running)
        if self.full or self.stopping or limit <= 0:
            return []
        with st.study_lock(self.run.url, self.run.name):
            claims = self.run.claim(limit)
        self.full = len(claims) < limit
        jobs = [self.run.job(claim) for claim in claims]
        for job in jobs:
            log.info("trial %d: %s", job.number, job.shown or "(no parameters)")
        self.running += len(jobs)
        return jobs

    def finish(self, end: runners.Ended, busy: int, slots: int) -> None:
        self.running -= 1
        self.window.add(end.job.number, self.run.finish(end, busy, slots))
        self.full = False  # an end may have queued a re-run, or freed a setting's count
        if self.window.exceeded() and not self.stopping:
            self.stopping = True
            log.error("too many failures: no more trials are launched; waiting for the %d "
                      "still running", self.running)

    def ask_again(self) -> None:
        """Claim again, though the study had nothing more to give (trials that other workers
        run may die, and their settings be queued again)."""
        self.full = False

    @property
    def wants_slots(self) -> bool:
        return not (self.full or self.stopping)

    @property
    def exhausted(self) -> bool:
        return self.running == 0 and (self.full or self.stopping)

    def error(self) -> Optional[SweepError]:
        """The sweep's end by too many failures, once nothing runs (None: it ended well)."""
        if self.stopping or self.window.exceeded(final=True):
            return self.window.error(self.run.sweeper.sweep_dir)
        return None


class _One:
    """The schedule of one source: the sweeper's one study."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def active(self) -> Sequence[Source]:
        return [self.source]

    def advance(self) -> bool:
        return False

    def done(self) -> bool:
        return self.source.exhausted


def run_sources(schedule: Schedule, runner: runners.Runner,
                poll_s: float = WAIT_S) -> Dict[str, Any]:
    """Keep ``runner.slots`` jobs running, each free slot given to the first active source with a
    job to start, until the schedule is done; ``poll_s``: how often a schedule with nothing running
    that waits on work elsewhere is asked again. Returns ``SlotTime.summary()``."""
    clock, running = SlotTime(runner.slots), 0
    owners: Dict[int, Tuple[runners.Job, Source]] = {}
    runner.ready()  # before the first claim: a trial's start in its study is its job's
    while True:
        free = runner.slots - running
        sources = schedule.active()
        for source in sources:
            if not free:
                break
            for job in source.claim(free):
                runner.submit(job)
                owners[id(job)] = (job, source)
                running, free = running + 1, free - 1
                clock.launched()
        if schedule.advance() and free:
            continue  # a new source may fill the free slots at once
        if not running:
            if schedule.done():
                break
            time.sleep(poll_s)  # what is left runs elsewhere, or waits on what does
            continue
        clock.lent(runner.lend(nothing_to_start=free > 0 and not any(
            source.wants_slots for source in sources)))
        for end in runner.wait(WAIT_S):
            running -= 1
            clock.ended()
            owners.pop(id(end.job))[1].finish(end, running, runner.slots)
    return clock.summary()


def run_slots(run: Any, runner: runners.Runner, window: FailureWindow) -> Dict[str, Any]:
    """Keep ``runner.slots`` trials of one study running until none is left to ask (see the
    module docstring); returns ``SlotTime.summary()``."""
    source = StudySource(run, window)
    slot_time = run_sources(_One(source), runner)
    error = source.error()
    if error is not None:
        raise error
    return _said(slot_time)


def run_batches(run: Any, launcher: Any, n_jobs: int, window: FailureWindow) -> None:
    """Hydra-optuna-sweeper's way, for launchers that only run batches: ask ``n_jobs`` trials,
    launch them as one batch, tell each result when the whole batch has ended."""
    while True:
        with st.study_lock(run.url, run.name):
            batch = run.claim(n_jobs)
        if not batch:
            break
        jobs = [run.job(claim) for claim in batch]
        returns = launcher.launch([job.overrides for job in jobs], initial_job_idx=jobs[0].number)
        for job, ret in zip(jobs, returns):
            window.add(job.number, run.finish(runners.ended(job, ret), 0, n_jobs))
        if window.exceeded(final=True):
            raise window.error(run.sweeper.sweep_dir)


def _said(slot_time: Dict[str, Any]) -> Dict[str, Any]:
    total = slot_time["slots"] * slot_time["wall_s"]
    share = slot_time["idle_slot_s"] / total if total else 0.0
    log.info("slot time: %d slots x %.1f s; %.1f slot-s busy, %.1f idle (%.1f%%), %.1f of them "
             "in the final drain, %.1f lent to running trials", slot_time["slots"],
             slot_time["wall_s"], slot_time["busy_slot_s"], slot_time["idle_slot_s"], 100 * share,
             slot_time["drain_idle_slot_s"], slot_time["lent_slot_s"])
    return slot_time
