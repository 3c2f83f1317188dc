"""One pool of slots for the whole benchmark: every study's trials, every confirmation and the
defaults runs share one runner (``hydra.launcher``'s: one process per slot for joblib, one worker
process for the basic launcher, one submitit job per run for SLURM), whose workers live for the
whole benchmark, so that their imports are paid once per worker and the slots drain once, at
the end.

Each step is the sweep its command would be (``plan.tune_command``, the confirmation's and the
defaults' commands), composed and run as ``Hydra.multirun`` runs one (``_hydra_private``): its
callbacks (the sweep summary, the command's folder guard) around it, its directory and numbering.
A free slot goes, in this order, to a confirmation with a run to start (it ends a cell), to a study
below its cap of trials in flight, to a defaults grid. The cap keeps TPE learning between draws:
a study may have ``max(1, ceil(slots / studies still asking))`` trials in flight (``in_flight=0``),
or ``in_flight`` when set. A study's confirmation enters the pool once the study is settled (every
trial counted, none in flight on any machine); the defaults need nothing and fill the slots the
studies leave. When nothing is left to start, idle slots lend their cores to the runs still
running, once, at the very end.

Several machines may run the same command on one shared folder and one storage: the studies share
their trials under the study lock (exact budgets), a grid's run that another machine trains is
left to it (its lease), and a confirmation waits for the trials other machines still train.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import configure_log
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf

from optsweep import lease
from optsweep.benchmark import _hydra_private, plan
from optsweep.conf_tree import CONFIG_NAME, conf_dir
from optsweep.rundir import BenchmarkDir
from optsweep.sweep import launchers, runners, slots
from optsweep.sweep.errors import SweepError
from optsweep.sweep.grid import GridSource
from optsweep.sweep.process_pool import ProcessPool

COMMAND = ("python", "-m", "optsweep", "-m")  # a step's arguments follow these
POLL_S = 2.0  # how often a schedule that waits on other machines looks again


@dataclass
class Step:
    """One sweep of the benchmark: what it is, its composed config and its source of jobs."""
    label: str
    config: DictConfig
    callbacks: Any
    source: Any  # slots.StudySource or GridSource
    run: Any = None  # a study's sweeper run (its end writes optimization_results.yaml)
    ok: bool = True
    closed: bool = False
    waiting_since: Optional[float] = None  # exhausted here, waiting on trials elsewhere


@dataclass
class CellSteps:
    """A cell's study and, once the study is settled, its confirmation."""
    cell: plan.Cell
    study: Optional[Step] = None
    confirmation: Optional[Step] = None
    settled: bool = False  # the study needs nothing more: its confirmation may start
    unopened: bool = False  # its study is to run but not opened yet


@dataclass
class Pool:
    """The benchmark's schedule (``slots.Schedule``): its steps as they open and close."""
    cfg: DictConfig
    overrides: List[str]
    loader: Any  # Hydra's config loader
    slots: int
    cells: List[CellSteps] = field(default_factory=list)
    defaults: List[Step] = field(default_factory=list)
    unopened_defaults: List[Tuple[str, List[str]]] = field(default_factory=list)
    ok: bool = True

    # --- the schedule ---------------------------------------------------------------------------

    def active(self) -> Sequence[Any]:
        open_ = [c.confirmation for c in self.cells if c.confirmation and not c.confirmation.closed]
        open_ += [c.study for c in self.cells if c.study and not c.study.closed]
        open_ += [step for step in self.defaults if not step.closed]
        return [step.source for step in open_]

    def advance(self) -> bool:
        """Close the steps that ended, open the confirmations of the studies that settled, and
        open one more of the steps still unopened (studies first): the slot loop calls it while
        the runs it just started train, so that composing a step costs no slot time. True when a
        source was opened."""
        opened = False
        for cell in self.cells:
            opened = self._advance(cell) or opened
        for step in self.defaults:
            self._close_if_done(step)
        cell = next((c for c in self.cells if c.unopened), None)
        if cell is not None:
            cell.unopened = False
            cell.study = self.study(cell.cell)
            cell.settled = cell.study is None  # refused (said): nothing to confirm
            return True
        if self.unopened_defaults:
            step = self.grid(*self.unopened_defaults.pop(0))
            if step is not None:
                self.defaults.append(step)
            return True
        return opened

    def done(self) -> bool:
        return not self.unopened_defaults and all(
            c.settled and (c.confirmation is None or c.confirmation.closed) for c in self.cells
        ) and all(step.closed for step in self.defaults)

    def cap(self) -> int:
        """Trials in flight per study: ``in_flight``, or the slots shared by the studies still
        asking for trials (those not opened yet among them)."""
        if self.cfg.in_flight:
            return int(self.cfg.in_flight)
        asking = sum(1 for c in self.cells if c.unopened or (
            c.study and not c.study.closed and c.study.source.wants_slots))
        return max(1, math.ceil(self.slots / max(1, asking)))

    # --- steps ------------------------------------------------------------------------------------

    def _advance(self, cell: CellSteps) -> bool:
        """Close the cell's study once settled and open its confirmation (True: opened)."""
        study = cell.study
        if cell.unopened:
            return False
        if study is not None and not study.closed and study.source.exhausted:
            if not self._settled(cell, study):
                return False
            self._close(study)
        if cell.settled or (study is not None and not study.closed):
            if cell.confirmation is not None:
                self._close_if_done(cell.confirmation)
            return False
        cell.settled = True
        out = plan.confirmation_dir(self.cfg, cell.cell)
        if plan.sweep_done(out, self.cfg.seeds):
            return False
        try:
            arguments = confirm_arguments(self.cfg, cell.cell, self.overrides, out)
        except Exception as exc:  # ConfirmError: no trial of the study finished
            print(f"optsweep.benchmark: {cell.cell.workload}/{cell.cell.optimizer}: {exc}",
                  file=sys.stderr)
            self.ok = False
            return False
        cell.confirmation = self.grid(f"{cell.cell.workload}/{cell.cell.optimizer} "
                                      "confirmation", arguments)
        return cell.confirmation is not None

    def _settled(self, cell: CellSteps, study: Step) -> bool:
        """The study has every trial counted and none in flight on any machine; while trials
        are trained elsewhere (their lease is live) it waits, asking the study again (a dead
        machine's trial is failed and queued by the claim); one cut off with none to train it
        ends the wait after ``lease.STALE_S``, as the per-step path says it."""
        waiting = plan.study_unsettled(self.cfg, cell.cell)
        if plan.study_done(self.cfg, cell.cell) and not waiting:
            return True
        folder = plan.study_dir(self.cfg, cell.cell)
        now = time.monotonic()
        study.waiting_since = study.waiting_since or now
        alive = any(lease.has_live_record(folder / job) for job in waiting)
        if alive or now - study.waiting_since < lease.STALE_S:
            study.source.ask_again()  # a dead worker's trial may be queued again
            return False
        print(f"optsweep.benchmark: {cell.cell.workload}/{cell.cell.optimizer}: trials "
              f"{', '.join(waiting) or '(not started yet)'} are still training elsewhere or were "
              "cut off; rerun to confirm this study", flush=True)
        self._close(study)
        study.ok = self.ok = False
        cell.settled = True  # nothing to confirm in this command
        return False

    def _close_if_done(self, step: Step) -> None:
        if not step.closed and step.source.exhausted:
            self._close(step)

    def _close(self, step: Step) -> None:
        """The step's end, as Hydra ends a multirun: the study's results, the callbacks (the
        summary table; a failed job makes it say exit 1)."""
        step.closed = True
        if step.run is not None:
            step.run.sweeper.write_results(step.run, None)
            error = step.source.error()
            if error is not None:
                print(error, file=sys.stderr)
                step.ok = False
        try:
            step.callbacks.on_multirun_end(config=step.config, config_name=CONFIG_NAME)
        except SystemExit as exc:
            step.ok = step.ok and not exc.code
        self.ok = self.ok and step.ok

    def compose(self, label: str, arguments: List[str]) -> Optional[Step]:
        """A step's sweep composed and started as ``Hydra.multirun`` starts one (None: its
        callbacks refused it: said in one line by them)."""
        print(f"+ {label}: {' '.join(COMMAND)} {' '.join(arguments)}", flush=True)
        config = compose_multirun(self.loader, arguments)
        HydraConfig.instance().set_config(config)
        callbacks = _hydra_private.callbacks(config)
        try:
            callbacks.on_multirun_start(config=config, config_name=CONFIG_NAME)
        except SystemExit:
            self.ok = False
            return None
        return Step(label, config, callbacks, None)

    def study(self, cell: plan.Cell) -> Optional[Step]:
        step = self.compose(f"{cell.workload}/{cell.optimizer} study",
                            plan.tune_command(self.cfg, cell, self.overrides)[len(COMMAND):])
        if step is None:
            return None
        sweeper = Plugins.instance().instantiate_sweeper(
            config=step.config, hydra_context=self.context(step), task_function=task_function())
        task_overrides = OmegaConf.to_container(step.config.hydra.overrides.task, resolve=False)
        try:
            step.run = sweeper.open(list(task_overrides))
        except SweepError as exc:
            print(exc, file=sys.stderr)
            self.ok = False
            return None
        impl = step.run.sweeper
        window = slots.FailureWindow(impl.n_jobs, impl.max_failure_rate)
        step.source = slots.StudySource(step.run, window, self.cap)
        return step

    def grid(self, label: str, arguments: List[str]) -> Optional[Step]:
        step = self.compose(label, arguments)
        if step is None:
            self.ok = False
            return None
        context = runners.Sweep(str(step.config.hydra.sweep.dir), self.context(step),
                                step.config, task_function())
        task_overrides = OmegaConf.to_container(step.config.hydra.overrides.task, resolve=False)
        jobs = _hydra_private.grid_jobs(self.loader, step.config, list(task_overrides))
        folder = Path(str(step.config.hydra.sweep.dir))
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(step.config, folder / "multirun.yaml")  # as Hydra's basic sweeper does
        step.source = GridSource(context, jobs)
        return step

    def context(self, step: Step) -> HydraContext:
        return HydraContext(config_loader=self.loader, callbacks=step.callbacks)


def task_function() -> Any:
    """optsweep's task, as ``python -m optsweep`` runs it."""
    from optsweep.__main__ import task

    return task


def confirm_arguments(cfg: DictConfig, cell: plan.Cell, overrides: List[str],
                      out: Path) -> List[str]:
    return plan.confirm_command(cfg, cell, overrides, out)[len(COMMAND):]


def compose_multirun(loader: Any, arguments: List[str]) -> DictConfig:
    """The config ``python -m optsweep -m ARGUMENTS`` runs its sweep with: composed in MULTIRUN
    mode, with ``hydra.mode=MULTIRUN`` added where the config leaves the mode open, as ``-m``
    adds it (its jobs then run as multirun jobs)."""
    config = loader.load_configuration(config_name=CONFIG_NAME, overrides=arguments,
                                       run_mode=RunMode.MULTIRUN)
    if config.hydra.mode != RunMode.MULTIRUN:
        config = loader.load_configuration(config_name=CONFIG_NAME, run_mode=RunMode.MULTIRUN,
                                           overrides=[*arguments, "hydra.mode=MULTIRUN"])
    return config


def first_config(loader: Any, cfg: DictConfig, overrides: List[str]) -> DictConfig:
    """The first study's config: the launcher, slots and preload that every step shares."""
    first = plan.cells(cfg)[0]
    return compose_multirun(loader, plan.tune_command(cfg, first, overrides)[len(COMMAND):])


def run(cfg: DictConfig, overrides: List[str], study_seeds: Dict[str, int]) -> Optional[bool]:
    """Every step of the benchmark through one pool; True when all ran cleanly, None when the
    launcher has no runner (a launcher that only runs batches: the caller runs a process per step).
    A benchmark with nothing left to run starts no worker."""
    if not unfinished(cfg, study_seeds):
        return True
    loader = _hydra_private.config_loader(conf_dir())
    config = first_config(loader, cfg, overrides)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    HydraConfig.instance().set_config(config)
    runner = start_runner(loader, config)  # its workers import while the studies open
    if runner is None:
        return None
    pool = Pool(cfg, overrides, loader, runner.slots)
    ended = False
    try:
        plan_steps(pool, study_seeds)
        slot_time = slots.run_sources(pool, runner, POLL_S)
        ended = True
    except SweepError as exc:  # the pool's own end: workers that cannot start
        print(f"optsweep.benchmark: error: {exc}", file=sys.stderr)
        return False
    finally:
        runner.close(graceful=ended)
    BenchmarkDir(cfg.dir).write_slot_time({**slot_time,
                                           "worker_starts": getattr(runner, "starts", 0)})
    return pool.ok


def unfinished(cfg: DictConfig, study_seeds: Dict[str, int]) -> bool:
    """Anything left to run: a study not settled, a confirmation or a defaults grid not done."""
    from optsweep.confirm import new_seeds

    for cell in plan.cells(cfg):
        if not plan.study_done(cfg, cell) or plan.study_unsettled(cfg, cell) \
                or not plan.sweep_done(plan.confirmation_dir(cfg, cell), cfg.seeds):
            return True
    return bool(cfg.defaults_baseline) and any(
        not plan.sweep_done(BenchmarkDir(cfg.dir).defaults_dir(workload),
                            len(cfg.optimizers) * len(new_seeds([seed], cfg.seeds)))
        for workload, seed in study_seeds.items())


def start_runner(loader: Any, config: DictConfig) -> Optional[runners.Runner]:
    """The runner of ``hydra.launcher`` with ``hydra.sweeper.n_jobs`` slots (None: the launcher
    only runs batches); for Hydra's basic launcher, one slot in one worker process of the pool's
    own, not this process (as the benchmark's steps never ran in its process): the worker imports
    the task while the studies open, and this process opens steps and tells trials while it
    trains. Its own sweep runs no job: each job names its step's."""
    sweeper = config.hydra.sweeper
    own = runners.Sweep("", HydraContext(config_loader=loader,
                                         callbacks=_hydra_private.callbacks(config)),
                        config, task_function())
    target = str(config.hydra.launcher.get("_target_", ""))
    if target == launchers.BASIC:
        return ProcessPool(own, 1, list(sweeper.preload), lend_cores=False)
    unused = unused_launcher_jobs(config)
    if unused:
        print(f"optsweep.benchmark: {unused}", file=sys.stderr, flush=True)
    launcher = Plugins.instance().instantiate_launcher(
        config=config, hydra_context=own.hydra_context, task_function=own.task_function)
    return launchers.runner_for(launcher, own, int(sweeper.n_jobs), list(sweeper.preload),
                              bool(sweeper.lend_cores))


def unused_launcher_jobs(config: DictConfig) -> Optional[str]:
    """The joblib launcher's ``n_jobs`` set to other than the pool's slots (the sweeper's
    ``n_jobs``): said, since the per-step commands ran their grids with it."""
    asked = int(config.hydra.launcher.get("n_jobs", -1) or -1)
    slots = int(config.hydra.sweeper.n_jobs)
    if str(config.hydra.launcher.get("_target_", "")) != launchers.JOBLIB or asked in (-1, slots):
        return None
    return (f"the pool runs hydra.sweeper.n_jobs={slots} slots; hydra.launcher.n_jobs={asked} is "
            f"not used (set hydra.sweeper.n_jobs={asked} for {asked} runs at once)")


def plan_steps(pool: Pool, study_seeds: Dict[str, int]) -> None:
    """Every study not settled yet and every defaults grid not finished, to be opened one by one
    as the pool goes (``Pool.advance``); the confirmations open as their studies settle."""
    from optsweep.confirm import new_seeds

    cfg = pool.cfg
    for cell in plan.cells(cfg):
        pool.cells.append(CellSteps(cell, unopened=not plan.study_done(cfg, cell)
                                    or bool(plan.study_unsettled(cfg, cell))))
    if not cfg.defaults_baseline:
        return
    for workload, seed in study_seeds.items():
        seeds = new_seeds([seed], cfg.seeds)
        if not plan.sweep_done(BenchmarkDir(cfg.dir).defaults_dir(workload),
                               len(cfg.optimizers) * len(seeds)):
            pool.unopened_defaults.append((f"{workload} defaults", plan.defaults_command(
                cfg, workload, seeds, pool.overrides)[len(COMMAND):]))
