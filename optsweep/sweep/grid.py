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
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from optsweep import contract, lease
from optsweep.rundir import RunDir
from optsweep.sweep.runners import Ended, Job, Sweep

log = logging.getLogger(__name__)


def trained_elsewhere(run_dir: Path) -> bool:
    """Another live process holds the run's lease: it trains the run now."""
    return lease.is_live(lease.read_lease(run_dir), time.time())


class GridSource:
    """The jobs of ``sweep`` (each job's overrides, in the basic sweeper's order) that are not
    final yet, each started once; ``failed``: the jobs that ended here with an error."""

    def __init__(self, sweep: Sweep, jobs: Sequence[Sequence[str]]) -> None:
        self.sweep = sweep
        self.folder = Path(str(sweep.config.hydra.sweep.dir))
        self.pending: Dict[int, Tuple[str, ...]] = {
            number: tuple(overrides) for number, overrides in enumerate(jobs)
            if RunDir(self.folder / str(number)).status() not in contract.FINAL}
        self.running = 0
        self.failed: List[int] = []

    def _startable(self) -> List[int]:
        for number in [n for n in self.pending
                       if RunDir(self.folder / str(n)).status() in contract.FINAL]:
            del self.pending[number]  # another process finished it meanwhile
        return [n for n in self.pending if not trained_elsewhere(self.folder / str(n))]

    def claim(self, free: int) -> List[Job]:
        jobs = [Job(n, self.pending.pop(n), "", self.sweep) for n in self._startable()[:free]]
        for job in jobs:
            log.info("%s job %d: %s", self.folder, job.number, " ".join(job.overrides))
        self.running += len(jobs)
        return jobs

    def finish(self, end: Ended, busy: int, slots: int) -> None:
        self.running -= 1
        run_dir = self.folder / str(end.job.number)
        if RunDir(run_dir).status() == contract.Status.UNFINISHED and trained_elsewhere(run_dir):
            self.pending[end.job.number] = end.job.overrides  # its trainer may die: look again
        elif end.error is not None:
            log.warning("%s job %d failed: %s", self.folder, end.job.number, end.error)
            self.failed.append(end.job.number)

    @property
    def wants_slots(self) -> bool:
        return bool(self._startable())

    @property
    def exhausted(self) -> bool:
        return self.running == 0 and not self.pending

    def waiting_elsewhere(self) -> List[int]:
        """Its jobs that other live processes train now."""
        return sorted(self.pending) if self.running == 0 else []
