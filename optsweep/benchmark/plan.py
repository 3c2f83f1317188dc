"""What the benchmark runs: the cells (workload x optimizer), their commands, and what is done.

Every step is an ordinary optsweep command into a named sweep directory (``conf/sweep/tune.yaml``
for a study, ``optsweep.confirm``'s command for the confirmation, a grid for the defaults), so
any launcher and storage a sweep takes works here, and a rerun resumes each step the way a sweep
resumes. Done is read from the run directories (``summary.json``), not from the Optuna storage,
so that the check is the same for SQLite, a journal file or PostgreSQL.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from optsweep import contract
from optsweep.benchmark.settings import TUNED
from optsweep.overrides import override_key
from optsweep.rundir import BenchmarkDir, SweepDir

# A study's trial that needs no rerun: a result (pruned counts: the pruner ended it on purpose).
SETTLED = (*contract.FINAL, contract.Status.PRUNED)
# A study's trial the sweeper counts among its budget: settled, or failed once its crash re-runs
# were spent (hydra.sweeper.crash_retries; while one is queued the sweeper sets the crashed
# attempt's summary aside, and the directory reads unfinished).
COUNTED = (*SETTLED, contract.Status.FAILED)
# Overrides that reach the confirmation and defaults sweeps too (Hydra's basic sweeper, which has
# no Optuna keys): the launcher and everything that is not Hydra's.
LAUNCHER_KEYS = ("hydra/launcher", "hydra.launcher.")


@dataclass(frozen=True)
class Cell:
    workload: str
    optimizer: str
    space: str  # the conf/space option it is tuned in


def cells(cfg: DictConfig) -> list[Cell]:
    return [Cell(w, o, o if cfg.space == TUNED else str(cfg.space))
            for w in cfg.workloads for o in cfg.optimizers]


def study_name(cfg: DictConfig, cell: Cell) -> str:
    """Unique per benchmark and cell: several benchmarks may share one storage."""
    return f"{cfg.name}_{cell.workload}_{cell.optimizer}"


def tune_command(cfg: DictConfig, cell: Cell, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "optsweep", "-m", "sweep=tune", f"workload={cell.workload}",
            f"optimizer={cell.optimizer}", f"space={cell.space}",
            f"hydra/sweeper/pruner={cfg.pruner}", f"hydra.sweeper.n_trials={cfg.budget}",
            f"hydra.sweeper.study_name={study_name(cfg, cell)}",
            f"hydra.sweep.dir={study_dir(cfg, cell)}", *overrides]


def basic_sweep_overrides(overrides: list[str]) -> list[str]:
    """The overrides a confirmation or defaults sweep takes: the runs' own and the launcher's."""
    return [o for o in overrides if not override_key(o).startswith("hydra")
            or override_key(o).startswith(LAUNCHER_KEYS)]


def defaults_command(cfg: DictConfig, workload: str, seeds: list[int],
                     overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "optsweep", "-m", f"workload={workload}",
            f"optimizer={','.join(cfg.optimizers)}", f"trainer.seed={','.join(map(str, seeds))}",
            f"hydra.sweep.dir={BenchmarkDir(cfg.dir).defaults_dir(workload)}",
            *basic_sweep_overrides(overrides)]


def confirm_command(cfg: DictConfig, cell: Cell, overrides: list[str], out: Path) -> list:
    """``optsweep.confirm``'s command for the study's chosen setting (chosen as it chooses)."""
    from optsweep.analysis.load import load_runs
    from optsweep.confirm import chosen_run, command, new_seeds, selection, setting_overrides

    runset = load_runs([study_dir(cfg, cell)])
    run, used = chosen_run(runset, cfg.metric, selection(runset, cfg.select))
    chosen = {override_key(o): o for o in setting_overrides(Path(run["run"]))}
    chosen.update({override_key(o): o for o in basic_sweep_overrides(overrides)})
    return command(out, list(chosen.values()), new_seeds(used, cfg.seeds))


def job_statuses(sweep_dir: Path) -> dict[str, contract.Status]:
    """{job folder name: status} of every job directory of a sweep (unfinished: no summary)."""
    return {job.path.name: job.status() for job in SweepDir(sweep_dir).jobs()}


def study_done(cfg: DictConfig, cell: Cell) -> bool:
    """The study holds ``budget`` trials the sweeper counts (``COUNTED``): nothing is left to
    train, as the sweeper itself would find (a failed trial is not run again by a rerun)."""
    statuses = job_statuses(study_dir(cfg, cell))
    return sum(s in COUNTED for s in statuses.values()) >= cfg.budget


def study_unsettled(cfg: DictConfig, cell: Cell) -> list[str]:
    """Trials still training (here or on another machine) or cut off: the study's best is not
    known yet, so its confirmation waits."""
    statuses = job_statuses(study_dir(cfg, cell))
    return sorted(job for job, s in statuses.items() if s == contract.Status.UNFINISHED)


def sweep_done(sweep_dir: Path, jobs: int) -> bool:
    """A grid sweep of ``jobs`` jobs has every one final."""
    statuses = job_statuses(sweep_dir)
    return sum(s in contract.FINAL for s in statuses.values()) >= jobs


def study_dir(cfg: DictConfig, cell: Cell) -> Path:
    return BenchmarkDir(cfg.dir).study_dir(cell.workload, cell.optimizer)


def confirmation_dir(cfg: DictConfig, cell: Cell) -> Path:
    return BenchmarkDir(cfg.dir).confirm_dir(cell.workload, cell.optimizer)


