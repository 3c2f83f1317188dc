"""The work behind ``hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper.OptunaSweeper`` (see its
docstring), on Optuna's ask-and-tell interface.

Claiming, under the study lock, as many trials as there are free slots: first those cut off with a
dead worker of this host; then, after failing the trials whose job fell silent on any host and
queueing each one's setting again once (``optsweep.lease.silence`` on a journal, Optuna's heartbeat
on a database), the queued re-runs and new trials while the study has fewer than ``n_trials``
distinct settings. The trials run in slots (``optsweep.sweep.slots``): each end is told at once
and the freed slot gets the next trial. A trial whose task raised (a crash: not a divergence, a
prune or a dead worker) is FAIL and its setting queued again in its job directory, up to
``crash_retries`` times; then it counts as failed. A setting and its re-runs count once. A
returned number (a sequence of them when multi-objective) is COMPLETE; an exception is FAIL with
its text in the trial's ``error`` user attribute; ``optuna.TrialPruned``, or a trial that
``optsweep.sweep.trial.report`` told to stop, is PRUNED; NaN, inf or a value that is no number is
FAIL.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, cast

import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from optsweep import contract, lease
from optsweep.imports import importable
from optsweep.overrides import split_override
from optsweep.sweep import _optuna_private, launchers, runners, search_space, slots
from optsweep.sweep import storage as st
from optsweep.sweep import trial as job_trial
from optsweep.sweep.errors import SweepError

log = logging.getLogger(__name__)

WORKER_ATTR = "optsweep_worker"  # system attribute: the host:pid that runs the trial
# A worker names itself on its new trial one storage call after Optuna's ask, both under the study
# lock: a RUNNING trial that a claim (under the same lock) finds unnamed lost its worker in between,
# before its job started, and no heartbeat will ever make it stale (it never beat): that claim runs
# it, as a dead worker's of its own host. Without a cross-worker lock (an unknown storage) a live
# worker's trial can be seen between the two calls: there it is failed this long after its start
# and its setting queued again.
UNNAMED_AFTER_S = 10.0
ERROR_ATTR = "error"  # user attribute of a FAIL trial: why
# system attributes of a re-run, named as Optuna's RetryFailedTrialCallback names them: the number
# of the trial that died (whose job directory the re-run resumes) and the chain of such numbers
RETRY_OF, RETRY_HISTORY = "failed_trial", "retry_history"
DIRECTIONS = ("minimize", "maximize")
SCHEDULES = ("slots", "batches")  # optsweep.sweep.slots
# Samplers whose seed fixes an order kept across trials, not one trial's draw: the grid sampler
# shuffles its grid with the seed and gives trial n grid point n; the QMC sampler scrambles its
# sequence with it. Reseeding them per trial would repeat points.
KEEP_SEED = ("GridSampler", "QMCSampler")


class Claim(NamedTuple):
    number: int
    overrides: Tuple[str, ...]
    subdir: int  # the job directory: the trial's number, or for a re-run the dead trial's


class Defaults(NamedTuple):
    """``enqueue_defaults``' trial 0: the searched keys' configured values its distributions hold,
    and each key left out (Optuna samples it) with why."""
    params: Dict[str, Any]
    left_out: Dict[str, str]


class TrialResult(NamedTuple):
    """What the sweeper tells Optuna of one trial's job (not ``contract.Outcome``: a run's)."""
    state: TrialState
    values: Optional[List[float]] = None
    error: Optional[str] = None


class SamplerFactory:
    """Builds the sampler of ``hydra.sweeper.sampler`` afresh for each trial, seeded with
    ``seed + trial number``: trial n draws the same whether the study ran in one go, was resumed,
    or is shared by workers (which would otherwise all start from one seed and draw alike)."""

    def __init__(self, node: Any) -> None:
        if not node or "_target_" not in node:
            raise SweepError("hydra.sweeper.sampler is not set: expected hydra/sweeper/sampler=tpe "
                             "(or random, grid, cmaes, nsgaii, nsgaiii, qmc, gp)")
        self.node = cast(Dict[str, Any], OmegaConf.to_container(node, resolve=True)) \
            if isinstance(node, DictConfig) else dict(node)
        self.target = str(self.node["_target_"])
        self.seed = self.node.get("seed")
        self.grid: Optional[Dict[str, List[Any]]] = None
        self._shared: Optional[optuna.samplers.BaseSampler] = None
        self._check()

    @property
    def is_grid(self) -> bool:
        return self.target.endswith("GridSampler")

    def _check(self) -> None:
        name = self.target.rsplit(".", 1)[-1]
        if name == "MOTPESampler":
            raise SweepError("hydra/sweeper/sampler=motpe: Optuna has no MOTPESampler any more; "
                             "use hydra/sweeper/sampler=tpe (TPESampler optimizes several "
                             "objectives, e.g. hydra.sweeper.direction=[minimize,maximize])")
        needs = {"CmaEsSampler": ("cmaes", "pip install 'optsweep[cmaes]'"),
                 "GPSampler": ("scipy", "pip install scipy torch")}.get(name)
        if needs and not importable(needs[0]):
            raise SweepError(f"hydra.sweeper.sampler={name} needs the {needs[0]} package: "
                             f"{needs[1]}")

    def __call__(self, number: Optional[int]) -> optuna.samplers.BaseSampler:
        """The sampler for trial ``number`` (None: for opening the study)."""
        reseed = self.seed is not None and not self.target.endswith(KEEP_SEED)
        if not reseed and self._shared is not None:
            return self._shared  # unseeded, grid, QMC: one sampler for the whole sweep
        kwargs = {k: v for k, v in self.node.items() if v is not None}
        if reseed and number is not None and self.seed is not None:
            kwargs["seed"] = (int(self.seed) + number) % 2**32
        if self.is_grid:
            kwargs["search_space"] = self.grid
        try:
            sampler = instantiate(kwargs)
        except Exception as exc:
            raise SweepError(f"hydra.sweeper.sampler ({self.target}) cannot be built: "
                             f"{_last_line(exc)}") from exc
        if not reseed:
            self._shared = sampler
        return sampler


class OptunaSweeperImpl(Sweeper):
    # Optional in Sweeper; set by setup(), which Hydra calls before sweep()
    config: DictConfig
    hydra_context: HydraContext

    def __init__(self, *, sampler: Any, direction: Any, storage: Optional[str],
                 study_name: Optional[str], n_trials: int, n_jobs: int, max_failure_rate: float,
                 search_space: Optional[DictConfig], custom_search_space: Optional[str],
                 params: Optional[DictConfig], pruner: Any, heartbeat_interval: Optional[int],
                 grace_period: int, dead_after_s: float, schedule: str = "slots",
                 preload: Sequence[str] = (), lend_cores: bool = True,
                 enqueue_defaults: bool = False, crash_retries: int = 1) -> None:
        self.sampler_node, self.pruner_node = sampler, pruner
        self.direction, self.storage, self.study_name = direction, storage, study_name
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.max_failure_rate = float(max_failure_rate)
        self.legacy_space, self.params = search_space, params
        self.custom_search_space = custom_search_space
        self.heartbeat_interval = heartbeat_interval
        self.grace_period, self.dead_after_s = grace_period, float(dead_after_s)
        self.schedule = str(schedule)
        self.preload = [str(name) for name in preload]
        self.lend_cores = bool(lend_cores)
        self.enqueue_defaults = bool(enqueue_defaults)
        self.crash_retries = crash_retries

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.task_function = job_trial.BeatingTask(task_function)
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=self.task_function)
        self.sweep_dir = config.hydra.sweep.dir
        # what its jobs run in, wherever they run (a runner may run several sweeps' jobs)
        self.context = runners.Sweep(str(self.sweep_dir), hydra_context, config,
                                     self.task_function)

    # --- the sweep ----------------------------------------------------------------------------

    def sweep(self, arguments: List[str]) -> None:
        runner = None
        try:  # a sweep that cannot start is bad input: one line, exit 2, before any job
            self._validate()
            # a process pool's workers start now and import while the study opens
            runner = None if self.schedule == "batches" else launchers.runner_for(
                self.launcher, self.context, self.n_jobs, self.preload, self.lend_cores)
            run = self._prepare(arguments)
        except SweepError as exc:
            if runner is not None:
                runner.close(graceful=False)
            print(exc, file=sys.stderr)
            sys.exit(2)
        window = slots.FailureWindow(self.n_jobs, self.max_failure_rate)
        slot_time = None
        try:
            if runner is None and self.schedule != "batches":
                log.info("hydra.launcher (%s) runs batches only: %d trials are launched at a "
                         "time, and each batch waits for its slowest trial",
                         self.config.hydra.launcher.get("_target_"), self.n_jobs)
            if runner is None:
                slots.run_batches(run, self.launcher, self.n_jobs, window)
            else:
                slot_time = slots.run_slots(run, runner, window)
        except SweepError as exc:  # the sweep's own end (too many failures, workers that cannot
            # start): one line, exit 1, said here because Hydra prints a traceback instead under
            # a debugger or a tracer such as coverage's
            print(exc, file=sys.stderr)
            sys.exit(1)
        finally:
            try:  # first: the workers' exits need not hold it up
                self.write_results(run, slot_time)
            finally:
                if runner is not None:
                    runner.close()
                st.forget_job_storage()

    def open(self, arguments: List[str]) -> "_Run":
        """The study, checked and opened, for a slot loop that is not this sweeper's own (the
        benchmark's one pool); raises SweepError for bad input. Its end: ``write_results``."""
        self._validate()
        return self._prepare(arguments)

    def _prepare(self, arguments: List[str]) -> "_Run":
        """Everything before the first job but the checks of ``_validate``: search space,
        sampler and study."""
        directions = self._directions()
        sampler = SamplerFactory(self.sampler_node)
        space, fixed = search_space.parse(self.params, self.legacy_space, arguments)
        if sampler.is_grid:
            sampler.grid = search_space.grid(space)
            size = math.prod(len(v) for v in sampler.grid.values())
            if self.n_trials > size:
                log.info("n_trials %d capped at the grid's %d points", self.n_trials, size)
                self.n_trials = size
        extend = self._custom_search_space()
        first = Defaults(*search_space.defaults(space, self.config)) \
            if self.enqueue_defaults else None
        url = st.absolute(self.storage or st.default_storage(self.sweep_dir))
        name = str(self.study_name or st.DEFAULT_STUDY_NAME)
        beat = st.Heartbeat(self.heartbeat_interval, self.grace_period) \
            if self.heartbeat_interval else None
        study, storage = st.open_study(url, name, directions, sampler(None), self._pruner(), beat)
        log.info("Optuna study %r in %s: %d of %d trials exist; sampler %s, pruner %s, "
                 "directions %s", name, st.shown(url), len(study.get_trials(deepcopy=False)),
                 self.n_trials, sampler.target.rsplit(".", 1)[-1],
                 type(study.pruner).__name__, directions)
        if first is not None:
            log.info("a new study's trial 0: the defaults %s%s", first.params, "".join(
                f"; {key} left out (sampled): {why}" for key, why in first.left_out.items()))
        return _Run(self, study, storage, url, name, space, fixed, sampler, extend, first)

    def _validate(self) -> None:
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise SweepError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate} is invalid: "
                             "expected a fraction in [0, 1]")
        if self.n_trials < 1:  # 0 would run nothing and exit 0: nobody would notice
            raise SweepError(f"hydra.sweeper.n_trials={self.n_trials} is invalid: expected the "
                             "study's total number of trials, an integer >= 1")
        if self.heartbeat_interval is not None and (
                int(self.heartbeat_interval) < 1 or self.grace_period < self.heartbeat_interval):
            raise SweepError(f"hydra.sweeper.heartbeat_interval={self.heartbeat_interval}, "
                             f"grace_period={self.grace_period} are invalid: "
                             "expected whole seconds, "
                             "1 <= heartbeat_interval <= grace_period (null turns the beat off)")
        if self.dead_after_s <= 0:
            raise SweepError(f"hydra.sweeper.dead_after_s={self.dead_after_s} is invalid: "
                             "expected seconds > 0")
        if self.schedule not in SCHEDULES:
            raise SweepError(f"hydra.sweeper.schedule={self.schedule} is invalid: expected one "
                             f"of {', '.join(SCHEDULES)}")
        if not isinstance(self.crash_retries, int) or self.crash_retries < 0:
            raise SweepError(f"hydra.sweeper.crash_retries={self.crash_retries} is invalid: "
                             "expected how many times a crashed trial runs again, an integer >= 0")
        if self.n_jobs < 1:
            raise SweepError(f"hydra.sweeper.n_jobs={self.n_jobs} is invalid: expected the "
                             "number of trials run at once, an integer >= 1")
        for name in self.preload:
            if not importable(name):
                raise SweepError(f"hydra.sweeper.preload: no module named {name!r} can be "
                                 "imported here; expected dotted module names, e.g. "
                                 "[optsweep.sweep.job]")

    def _directions(self) -> List[str]:
        given = self.direction if isinstance(self.direction, Sequence) and \
            not isinstance(self.direction, str) else [self.direction]
        # str(): a plain string, or hydra-optuna-sweeper's Direction enum (Direction.maximize)
        directions = [str(d).rsplit(".", 1)[-1].lower() for d in given]
        if not directions or any(d not in DIRECTIONS for d in directions):
            raise SweepError(f"hydra.sweeper.direction={self.direction} is invalid: expected "
                             "minimize, maximize or a list of them (one per objective)")
        return directions

    def _pruner(self) -> optuna.pruners.BasePruner:
        if not self.pruner_node:
            return optuna.pruners.NopPruner()
        try:
            return instantiate(self.pruner_node)
        except Exception as exc:
            raise SweepError(f"hydra.sweeper.pruner cannot be built: {_last_line(exc)}") from exc

    def _custom_search_space(self) -> Any:
        if not self.custom_search_space:
            return None
        try:
            return get_method(self.custom_search_space)
        except Exception as exc:
            raise SweepError(f"hydra.sweeper.custom_search_space={self.custom_search_space} cannot "
                             f"be imported: {_last_line(exc)}; expected the dotted path of a "
                             "function (cfg, trial) -> None") from exc

    def write_results(self, run: "_Run", slot_time: Optional[Dict[str, Any]]) -> None:
        """``optimization_results.yaml``: hydra-optuna-sweeper's keys (name, best_params,
        best_value; solutions when multi-objective) plus the states, the pruned and re-run trials,
        this worker's slot time (``optsweep.sweep.slots.SlotTime``; none for batches) and, with
        ``enqueue_defaults``, the defaults trial (``defaults``: its number, params, left_out)."""
        study, url = run.study, run.url
        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state.name for t in trials)
        results: Dict[str, Any] = {
            "name": "optuna", "study_name": study.study_name, "storage": st.shown(url),
            "n_trials": len(trials), "states": {s.name: states[s.name] for s in TrialState
                                                if states[s.name]},
            "pruned": [{"trial": t.number, "last_step": t.last_step}
                       for t in trials if t.state == TrialState.PRUNED],
            "retried": [{"trial": t.number, RETRY_OF: t.system_attrs[RETRY_OF]}
                        for t in trials if RETRY_OF in t.system_attrs]}
        if slot_time is not None:
            results["slot_time"] = slot_time
        if run.first is not None:
            results["defaults"] = {"trial": run.defaults_trial(trials), **run.first._asdict()}
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if len(study.directions) > 1:
            results["solutions"] = [{"trial": t.number, "params": t.params, "values": t.values}
                                    for t in (study.best_trials if complete else [])]
            best = f"{len(results['solutions'])} Pareto-optimal trials"
        elif complete:
            best_trial = study.best_trial
            results.update(best_trial=best_trial.number, best_params=best_trial.params,
                           best_value=best_trial.value)
            best = f"trial {best_trial.number}, {best_trial.params}, value {best_trial.value:.6g}"
        else:
            best = "no completed trial"
        log.info("Optuna study %r: %d trials %s; pruned: %s; best: %s", study.study_name,
                 len(trials), results["states"], ", ".join(
                     f"#{p['trial']} at step {p['last_step']}" for p in results["pruned"])
                 or "none", best)
        Path(self.sweep_dir).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results),
                       Path(self.sweep_dir) / contract.OPTIMIZATION_RESULTS_FILE)


class _Run:
    """One worker's part of a sweep: what it claims, launches and tells."""

    def __init__(self, sweeper: OptunaSweeperImpl, study: optuna.Study,
                 storage: optuna.storages.BaseStorage, url: str, name: str,
                 space: search_space.Space, fixed: Dict[str, str], sampler: SamplerFactory,
                 extend: Any, first: Optional[Defaults] = None) -> None:
        self.sweeper, self.study, self.storage, self.url, self.name = \
            sweeper, study, storage, url, name
        self.space, self.fixed, self.sampler, self.extend = space, fixed, sampler, extend
        self.first = first
        self.first_checked = first is None or not first.params  # nothing to enqueue
        self.study_id = storage.get_study_id_from_name(name)
        self.worker = lease.worker_id()
        self.journal = st.journal_path(url) is not None

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def job_dir(self, frozen: optuna.trial.FrozenTrial) -> Path:
        return Path(self.sweeper.sweep_dir) / str(frozen.system_attrs.get(RETRY_OF, frozen.number))

    def claim(self, limit: int) -> List[Claim]:
        """Up to ``limit`` trials for this worker: first those cut off with a dead worker of this
        host, and those no worker named (``UNNAMED_AFTER_S``); then, once the trials of dead
        workers anywhere are failed and queued again, the queued ones and new ones while the study
        has fewer than n_trials distinct settings (a failed trial that was queued again is not
        one). Call under the study lock."""
        n_trials = self.sweeper.n_trials
        batch: List[Claim] = []
        locked = st.has_study_lock(self.url)
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = frozen.system_attrs.get(WORKER_ATTR)
            if len(batch) < limit and (lease.is_dead_local_worker(worker) or (
                    locked and worker is None)) and not (
                    self.journal and lease.has_live_record(self.job_dir(frozen))):
                self.storage.set_trial_system_attr(self.trial_id(frozen.number), WORKER_ATTR,
                                                   self.worker)
                log.info("trial %d was cut off with its worker; running it again", frozen.number)
                batch.append(self.claimed(frozen, self.overrides(frozen.params), reclaimed=True))
        self.fail_dead()
        self.enqueue_first()
        trials = self.study.get_trials(deepcopy=False)
        rerun = superseded(trials)
        count = sum(t.number not in rerun for t in trials)
        # counted already; Optuna gives the oldest first, and a key it leaves open (the defaults'
        # left out) is drawn with that trial's own number's seed
        waiting = sorted(t.number for t in trials if t.state == TrialState.WAITING)
        number = len(trials)  # Optuna's number for the next new trial
        while len(batch) < limit and (waiting or count < n_trials):
            claim = self.ask(waiting[0] if waiting else number)
            if claim.number < number:
                waiting.remove(claim.number)
            else:
                count, number = count + 1, number + 1
            batch.append(claim)
        return batch

    def enqueue_first(self) -> None:
        """Queue the defaults as trial 0 of a study that has no trial yet. Called under the study
        lock, before any ask: of several workers or a rerun, only the first to find the study empty
        queues it (a study begun without it is left as it is: its trial 0 was drawn)."""
        if self.first_checked or self.first is None:
            return
        self.first_checked = True
        if self.study.get_trials(deepcopy=False):
            return
        # skip_if_exists: a storage without a cross-worker lock could see two workers here at once
        self.study.enqueue_trial(dict(self.first.params), skip_if_exists=True)
        log.info("trial 0 is queued at the defaults: %s", self.first.params)

    def defaults_trial(self, trials: Sequence[optuna.trial.FrozenTrial]) -> Optional[int]:
        """The number of the trial that ran the defaults (None: the study was begun without)."""
        first = self.first.params if self.first is not None else None
        return next((t.number for t in trials if first and RETRY_OF not in t.system_attrs
                     and all(t.params.get(k) == v for k, v in first.items())), None)

    def claimed(self, frozen: optuna.trial.FrozenTrial, overrides: Tuple[str, ...],
                reclaimed: bool = False) -> Claim:
        """This worker runs ``frozen`` now. Until its job beats, the claim says it is alive: on a
        journal a ``heartbeat.json`` that lasts ``dead_after_s``; on an RDB storage a reclaimed
        trial's stale beat is renewed (a new trial has none, and none is stale)."""
        if self.sweeper.heartbeat_interval:
            if self.journal:
                lease.write_record(self.job_dir(frozen), self.sweeper.dead_after_s)
            elif reclaimed:
                # an RDB storage (not a journal); Optuna types it as BaseStorage
                self.storage.record_heartbeat(  # type: ignore[attr-defined]
                    self.trial_id(frozen.number))
        return Claim(frozen.number, overrides,
                     int(frozen.system_attrs.get(RETRY_OF, frozen.number)))

    def fail_dead(self) -> None:
        """Fail the RUNNING trials whose job fell silent, on any host, and those no worker named
        (``UNNAMED_AFTER_S``), saying why, and queue each one's setting again once
        (``optsweep.lease``)."""
        for frozen, why in [*self.unnamed_trials(), *(
                self.silent_trials() if self.sweeper.heartbeat_interval else [])]:
            trial_id = self.trial_id(frozen.number)
            why = f"{why} (worker {frozen.system_attrs.get(WORKER_ATTR)})"
            try:  # the reason first: a finished trial takes no attribute
                self.storage.set_trial_user_attr(trial_id, ERROR_ATTR, why)
                self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # its own worker told its result just now
            log.warning("trial %d failed: %s", frozen.number, why)
            self.retry(frozen)

    def unnamed_trials(self) -> List[Tuple[optuna.trial.FrozenTrial, str]]:
        """The RUNNING trials whose worker died between asking for them and naming itself."""
        if st.has_study_lock(self.url):
            return []  # claimed again, as a dead worker's of this host (``claim``)
        why = f"its worker died before it named itself on the trial ({UNNAMED_AFTER_S:.0f} s)"
        now = datetime.now()  # Optuna records datetime_start in local time
        return [(frozen, why) for frozen in self.study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,))
                if WORKER_ATTR not in frozen.system_attrs and frozen.datetime_start is not None
                and (now - frozen.datetime_start).total_seconds() > UNNAMED_AFTER_S]

    def silent_trials(self) -> List[Tuple[optuna.trial.FrozenTrial, str]]:
        """The RUNNING trials whose job fell silent, each with why it is taken for dead."""
        if not self.journal:  # Optuna's heartbeat, as its fail_stale_trials reads it
            why = ("its worker died: no heartbeat for more than hydra.sweeper.grace_period="
                   f"{self.sweeper.grace_period} s")
            return [(self.storage.get_trial(trial_id), why) for trial_id in
                    _optuna_private.stale_trial_ids(self.storage, self.study_id)]
        silent = []
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            silence = lease.silence(self.job_dir(frozen), frozen.datetime_start,
                                    self.sweeper.dead_after_s)
            if silence is not None:
                silent.append((frozen, silence))
        return silent

    def retry(self, frozen: optuna.trial.FrozenTrial, limit: int = 1) -> None:
        """Queue ``frozen``'s setting as a new trial that runs in its job directory, as Optuna's
        ``RetryFailedTrialCallback`` does, unless the setting was re-run ``limit`` times already
        (a dead worker's: once; a crash's: ``crash_retries``). Call under the study lock."""
        history = list(frozen.system_attrs.get(RETRY_HISTORY, []))
        if len(history) >= limit:
            log.warning("trial %d, the re-run of trial %d, is not run again: its setting ran %d "
                        "times", frozen.number, history[0], len(history) + 1)
            return
        dropped = (WORKER_ATTR, job_trial.PRUNED_ATTR)
        system_attrs = {k: v for k, v in frozen.system_attrs.items() if k not in dropped}
        system_attrs.update({RETRY_OF: frozen.system_attrs.get(RETRY_OF, frozen.number),
                             RETRY_HISTORY: [*history, frozen.number]})
        self.study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=frozen.params, distributions=frozen.distributions,
            user_attrs={k: v for k, v in frozen.user_attrs.items() if k != ERROR_ATTR},
            system_attrs=system_attrs, intermediate_values=frozen.intermediate_values))
        log.info("trial %d: its setting is queued to run again in %s (re-run %d of at most %d)",
                 frozen.number, self.job_dir(frozen), len(history) + 1, limit)

    def ask(self, number: int) -> Claim:
        """A queued trial or a new one; ``number`` is the one Optuna gives a new trial (trials are
        counted under the lock)."""
        self.study.sampler = self.sampler(number)
        with warnings.catch_warnings():
            # Optuna warns that a heartbeat storage expects Study.optimize, whose threads beat for
            # its trials: here each trial's job beats itself (optsweep.sweep.trial.BeatingTask)
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used",
                                    UserWarning)
            trial = self.study.ask(fixed_distributions=self.space)
        self.storage.set_trial_system_attr(self.trial_id(trial.number), WORKER_ATTR, self.worker)
        for key, value in self.fixed.items():
            trial.set_user_attr(key, value)  # as hydra-optuna-sweeper records them
        try:
            if self.extend is not None:
                self.extend(self.sweeper.config, trial)
            overlap = sorted(set(trial.params) & set(self.fixed))
            if overlap:
                raise ValueError(f"parameters {overlap} are both fixed and suggested")
        except Exception as exc:
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            raise SweepError(f"hydra.sweeper.custom_search_space={self.sweeper.custom_search_space}"
                             f" failed on trial {trial.number}: {_last_line(exc)}") from exc
        frozen = self.storage.get_trial(self.trial_id(trial.number))
        return self.claimed(frozen, self.overrides(trial.params))

    def overrides(self, params: Dict[str, Any]) -> Tuple[str, ...]:
        return tuple(f"{name}={value}" for name, value in {**params, **self.fixed}.items())

    def job(self, claim: Claim) -> runners.Job:
        """The Hydra job of ``claim``: its parameters, its directory and where its trial lives."""
        beat = self.sweeper.heartbeat_interval, self.sweeper.grace_period
        overrides = (*claim.overrides, f"hydra.sweep.subdir={claim.subdir}",
                     *job_trial.job_overrides(self.url, self.name, claim.number, *beat))
        # the log shows what this trial draws: the command's fixed overrides are every trial's
        drawn = [o for o in claim.overrides if split_override(o)[0] not in self.fixed]
        return runners.Job(claim.number, overrides, " ".join(drawn), self.sweeper.context)

    def finish(self, end: runners.Ended, busy: int, n_slots: int) -> Optional[str]:
        """Tell Optuna how ``end``'s trial ended and say so in one line; its error, if it failed
        (a crash queued to run again is no failure yet: its re-run's end is)."""
        number = end.job.number
        result = self.result(number, end)
        crashed = result.state == TrialState.FAIL and end.raised and self.reruns_left(number)
        if crashed:
            self.set_aside(number)
        crashed = self.tell(number, result) and crashed
        frozen = self.storage.get_trial(self.trial_id(number))
        if crashed:
            with st.study_lock(self.url, self.name):
                self.retry(frozen, self.sweeper.crash_retries)
        took = frozen.duration.total_seconds() if frozen.duration else float("nan")
        value = "" if frozen.values is None else \
            ", value " + ", ".join(f"{v:.6g}" for v in frozen.values)
        log.info("trial %d %s%s, %.1f s; %d of %d slots busy", number, frozen.state.name, value,
                 took, busy, n_slots)
        return result.error if result.state == TrialState.FAIL and not crashed else None

    def reruns_left(self, number: int) -> bool:
        """Whether crashed trial ``number``'s setting may run again (``crash_retries``)."""
        frozen = self.storage.get_trial(self.trial_id(number))
        return len(frozen.system_attrs.get(RETRY_HISTORY, [])) < self.sweeper.crash_retries

    def set_aside(self, number: int) -> None:
        """Move a crashed attempt's ``summary.json`` (optsweep's run record) aside while its re-run
        is queued: the job directory then reads unfinished, as the benchmark's plan must see it,
        until the re-run records its own end (``contract.CRASHED_SUMMARY_FILE`` keeps it)."""
        job_dir = self.job_dir(self.storage.get_trial(self.trial_id(number)))
        summary = job_dir / contract.SUMMARY_FILE
        if summary.is_file():
            summary.replace(job_dir / contract.CRASHED_SUMMARY_FILE)

    def result(self, number: int, end: runners.Ended) -> TrialResult:
        told_to_stop = job_trial.PRUNED_ATTR in self.storage.get_trial(
            self.trial_id(number)).system_attrs
        if end.error is not None:
            log.warning("trial %d failed: %s", number, end.trace or end.error)
            return TrialResult(TrialState.FAIL, error=end.error)
        if isinstance(end.value, job_trial.Pruned):
            log.info("trial %d pruned: %s", number, end.value.message)
            return TrialResult(TrialState.PRUNED)
        if told_to_stop:  # the task caught TrialPruned and returned anyway
            return TrialResult(TrialState.PRUNED)
        values, error = _objective_values(end.value, len(self.study.directions))
        if error:
            log.warning("trial %d failed: %s", number, error)
            return TrialResult(TrialState.FAIL, error=error)
        return TrialResult(TrialState.COMPLETE, values)

    def tell(self, number: int, result: TrialResult) -> bool:
        """Tell ``result``; False when the trial was finished elsewhere (a sweeper that took it for
        dead), which dropped it."""
        trial_id = self.trial_id(number)
        if self.storage.get_trial(trial_id).state.is_finished():
            log.warning("trial %d was finished elsewhere; its result here is dropped", number)
            return False
        if result.error:
            self.storage.set_trial_user_attr(trial_id, ERROR_ATTR, result.error[:2000])
        with _optuna_private.grid_exhaustion_tolerated():
            self.study.tell(number, result.values, state=result.state, skip_if_finished=True)
        return True


def superseded(trials: Sequence[optuna.trial.FrozenTrial]) -> set:
    """The numbers of the trials that were run again (each re-run names its chain): a setting and
    its re-runs count once, as the re-run."""
    return {n for t in trials for n in t.system_attrs.get(RETRY_HISTORY, [])} | {
        t.system_attrs[RETRY_OF] for t in trials if RETRY_OF in t.system_attrs}


def _objective_values(value: Any, n_objectives: int) -> Tuple[Optional[List[float]], Optional[str]]:
    """The task's return value as ``n_objectives`` finite floats, or why it is not."""
    expected = "a number" if n_objectives == 1 else f"a sequence of {n_objectives} numbers"
    try:
        values = [float(value)] if n_objectives == 1 else [float(v) for v in value]
    except (TypeError, ValueError):
        return None, f"the task returned {value!r}: expected {expected}"
    if len(values) != n_objectives:
        return None, f"the task returned {value!r}: expected {expected}"
    if not all(math.isfinite(v) for v in values):
        return None, f"the task returned {value!r}: not a finite number"
    return values, None


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}".rstrip(": ")
