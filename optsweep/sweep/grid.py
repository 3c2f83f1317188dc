"""``GridSource``: a Hydra basic sweep's jobs (a grid: every combination of its comma lists) as work
for the slot loop (``optsweep.sweep.slots.run_sources``), so that a grid's jobs share slots with
studies' trials and other grids' jobs.

Job ``n`` is the basic sweeper's job ``n`` (``hydra.sweep.subdir`` is ``${hydra.job.num}``:
conf/config.yaml), so a grid run here and the same command run by Hydra fill the same directories.
A job whose run is final is not started again (a rerun finishes a grid); one that another live
process trains (its lease, ``optsweep.lease``: another machine on a shared folder) is left to it,
and started here only if that process dies (its lease goes stale) before the run is final.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from optsweep import contract, lease
from optsweep.rundir import RunDir
from optsweep.sweep.runners import Ended, Job, Sweep

log = logging.getLogger(__name__)


class GridSource:
    """The jobs of ``sweep`` (each job's overrides, in the basic sweeper's order) that are not
    final yet, each started once here."""

    def __init__(self, sweep: Sweep, jobs: Sequence[Sequence[str]]) -> None:
        self.sweep = sweep
        self.folder = Path(str(sweep.config.hydra.sweep.dir))
        self.pending: Dict[int, Tuple[str, ...]] = {
            number: tuple(overrides) for number, overrides in enumerate(jobs)}
        self.running = 0
        self._forget_final()

    def _forget_final(self) -> None:
        """Leave out the jobs whose run is final: from an earlier command, or another process."""
        self.pending = {n: overrides for n, overrides in self.pending.items()
                        if RunDir(self.folder / str(n)).status() not in contract.FINAL}

    def _startable(self) -> List[int]:
        """Its pending jobs whose run no other live process trains (by the run's lease)."""
        return [n for n in self.pending if not lease.has_live_record(self.folder / str(n))]

    def claim(self, free: int) -> List[Job]:
        self._forget_final()
        jobs = [Job(n, self.pending.pop(n), "", self.sweep) for n in self._startable()[:free]]
        for job in jobs:
            log.info("%s job %d: %s", self.folder, job.number, " ".join(job.overrides))
        self.running += len(jobs)
        return jobs

    def finish(self, end: Ended, busy: int, slots: int) -> None:
        self.running -= 1
        run_dir = self.folder / str(end.job.number)
        if RunDir(run_dir).status() == contract.Status.UNFINISHED \
                and lease.has_live_record(run_dir):
            self.pending[end.job.number] = end.job.overrides  # its trainer may die: look again
        elif end.error is not None:
            log.warning("%s job %d failed: %s", self.folder, end.job.number, end.error)

    @property
    def wants_slots(self) -> bool:
        return bool(self._startable())

    @property
    def exhausted(self) -> bool:
        return self.running == 0 and not self.pending
