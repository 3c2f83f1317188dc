"""Which runner (``optsweep.sweep.runners``) runs the jobs of ``hydra.launcher``: this process for
Hydra's basic launcher, optsweep's process pool for the joblib launcher, one submitit job per run
for submitit's launchers; none for any other (a launcher that only runs batches).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from optsweep.sweep.process_pool import ProcessPool
from optsweep.sweep.runners import InProcess, Runner, Submitit, Sweep

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."


def runner_for(launcher: Any, sweep: Sweep, slots: int, preload: Sequence[str] = (),
               lend_cores: bool = True) -> Optional[Runner]:
    """The runner for ``hydra.launcher`` of ``sweep`` (``launcher``: the instantiated, set-up
    launcher), or None for a launcher only batches can use. ``preload``: modules a worker process
    imports before its first job (the process pool's; SLURM jobs import in their own time);
    ``lend_cores``: the process pool's idle slots lend their cores in the final drain."""
    target = str(sweep.config.hydra.launcher.get("_target_", ""))
    if target == BASIC:
        return InProcess(sweep)
    if target == JOBLIB:
        return ProcessPool(sweep, slots, preload, lend_cores)
    if target.startswith(SUBMITIT):
        return Submitit(launcher, sweep, slots)
    return None
