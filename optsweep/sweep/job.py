"""One job of a multirun: train, report to Optuna when the job is a trial, and turn any failure
into a recorded result so that the sweep goes on.

Hydra 1.3's basic sweeper re-raises a job's exception (``JobReturn.return_value``), which ends the
whole sweep. So outside an Optuna sweep a job never raises: it returns its objective, or the worst
finite value when it failed, and its ``summary.json`` says which. Inside one (see ``_trial_answer``)
it tells optsweep's Optuna sweeper what happened in the sweeper's own terms.

Torch-free at import (the simulated task needs none): the threads and GPU of a training job are
set through torch imported where they are set, by then imported by the sweep's preload.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

from omegaconf import DictConfig

from optsweep import contract
from optsweep.contract import Outcome, Status
from optsweep.dispatch import run_task
from optsweep.errors import OptsweepError
from optsweep.resources import available_cores, threads_per_job
from optsweep.rundir import RunDir
from optsweep.sweep import trial
from optsweep.task import EpochHook, StopRun, is_simulated

log = logging.getLogger(__name__)

# the torch thread counts the current job ran with, in order: its share, then each lent one
_ran_with: List[int] = []


def sweep_job(cfg: DictConfig, hydra_cfg: DictConfig) -> float:
    """Train ``cfg`` into this job's directory; never raises an ``Exception``."""
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if not is_simulated(cfg):  # the simulated task has no threads or GPU to share
        limit_threads(cfg, hydra_cfg)
        place_on_gpu(cfg, hydra_cfg)
    choices = dict(hydra_cfg.runtime.choices)
    in_trial = trial.current_trial() is not None
    before = RunDir(run_dir).summary()
    try:
        outcome = run_task(cfg, run_dir, on_epoch=_report_epochs(cfg) if in_trial else None,
                           choices=choices)
    except Exception as exc:  # one job's failure is a result of the sweep, not its end
        outcome = record_failure(cfg, run_dir, exc, choices)
    if RunDir(run_dir).summary() != before:  # not a finished run left as it was
        record_pool_facts(RunDir(run_dir))
    _ran_with.clear()
    return _trial_answer(outcome) if in_trial else outcome.objective


class RunFailed(Exception):
    """An Optuna trial's training failed: the sweeper records a FAIL trial with this message."""


def _report_epochs(cfg: DictConfig) -> EpochHook:
    """After every epoch, report the objective to this job's Optuna trial (``trial.report``); a
    prune ends the run as PRUNED, keeping its metrics so far."""
    import optuna

    name = contract.objective_name(cfg)

    def report(epoch: int, row: dict) -> None:
        try:
            # after the last epoch a prune saves nothing and would discard a finished run
            trial.report(row[name], epoch, may_prune=epoch < cfg.trainer.epochs)
        except optuna.TrialPruned as exc:
            raise StopRun(Status.PRUNED,
                          f"{exc} ({name}={row[name]:.4f} after epoch {epoch})") from exc

    return report


def _trial_answer(outcome: Outcome) -> float:
    """optsweep's run in the sweeper's terms: completed -> its objective (COMPLETE); diverged ->
    the worst finite value (COMPLETE: an outcome of its setting, which the sampler should learn);
    pruned -> optuna.TrialPruned (PRUNED); failed or not run -> an exception (FAIL, never a value
    that would mislead the sampler)."""
    import optuna

    if outcome.status == Status.PRUNED:
        raise optuna.TrialPruned(outcome.error or Status.PRUNED.value)
    if outcome.status in contract.FINAL:
        return outcome.objective
    raise RunFailed(f"{outcome.status}: {outcome.error}")


def record_failure(cfg: DictConfig, run_dir: Path, exc: Exception, choices: dict) -> Outcome:
    """Log ``exc`` and make sure ``summary.json`` says failed; return the failed outcome."""
    if isinstance(exc, OptsweepError):
        log.error("optsweep: error: %s", exc)  # the user's input: the message says what to change
    else:
        log.exception("job failed: %s: %s", type(exc).__name__, exc)
    record = RunDir(run_dir)
    summary = record.summary()
    if contract.status_of(summary) == Status.FAILED:  # train() writes one itself for most failures
        return Outcome.from_summary(summary)
    return record.write_failed_summary(f"{type(exc).__name__}: {exc}", cfg, choices=choices)


def parallel_jobs(hydra_cfg: DictConfig, cores: int) -> int:
    """How many jobs run at once on this machine: in a process pool's worker, its slots (the
    sweeper's ``hydra.sweeper.n_jobs``, or the benchmark's one pool for all its sweeps); under the
    joblib launcher's own processes its ``n_jobs`` (joblib's rules), at most the sweeper's batch
    of ``hydra.sweeper.n_jobs`` trials where the sweeper has one."""
    slots = trial.pool_slots()
    if slots is not None:
        return max(1, slots)
    launcher = hydra_cfg.get("launcher") or {}
    if "joblib" not in str(launcher.get("_target_", "")):
        return 1  # Hydra's basic launcher runs one job at a time; SLURM gives each job its cores
    sweeper = hydra_cfg.get("sweeper") or {}
    batch = sweeper.get("n_jobs")
    if batch is not None and sweeper.get("schedule") == "slots":
        return max(1, int(batch))
    n_jobs = int(launcher.get("n_jobs", -1))
    if n_jobs < 0:  # joblib: -1 = all cores, -2 = all but one, ...
        n_jobs = cores + 1 + n_jobs
    return max(1, min(n_jobs, int(batch)) if batch is not None else n_jobs)


def gpu_for_job(job_num: int, parallel: int, gpu_count: int) -> Optional[int]:
    """The GPU for job ``job_num`` when ``parallel`` jobs run at once on ``gpu_count`` GPUs: job i
    on GPU i mod G, so that jobs running together spread over every GPU (n_jobs = G x k puts k jobs
    on each); None where there is nothing to choose (one GPU, or one job at a time)."""
    if gpu_count < 2 or parallel < 2:
        return None
    return job_num % gpu_count


def place_on_gpu(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """Spread parallel jobs over this machine's visible GPUs (``trainer.device=auto`` only; an
    explicit ``cuda:N`` is the user's choice)."""
    import torch

    if cfg.trainer.device != "auto" or not torch.cuda.is_available():
        return
    # by slot, where the sweeper runs slots: a freed slot's GPU gets the next trial
    gpu = gpu_for_job(trial.slot(int(hydra_cfg.job.num)),
                      parallel_jobs(hydra_cfg, available_cores()), torch.cuda.device_count())
    if gpu is not None:
        torch.cuda.set_device(gpu)  # "cuda" then means this GPU (runtime.resolve_device)
        log.info("job %s on cuda:%d of %d GPUs", hydra_cfg.job.num, gpu, torch.cuda.device_count())


def limit_threads(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """Parallel jobs share the cores instead of each taking all of them (oversubscription makes
    every job slower than running them one by one)."""
    if cfg.trainer.num_threads:
        return  # the user's explicit choice
    import torch

    cores = available_cores()
    jobs = parallel_jobs(hydra_cfg, cores)
    _ran_with.clear()
    if jobs > 1:
        threads = threads_per_job(cores, jobs)
        torch.set_num_threads(threads)
        _ran_with.append(threads)
        log.info("%d parallel jobs on %d cores: %d torch threads in this job", jobs, cores, threads)
        trial.on_lent_cores(use_lent_cores)  # the sweep's final drain: idle slots lend theirs


def use_lent_cores(cores: int) -> None:
    """Run on the ``cores`` the sweep now gives this job (``optsweep.sweep.trial.on_lent_cores``:
    called in the job's main thread between two statements, where torch's threads may change)."""
    import torch

    if cores != torch.get_num_threads():
        torch.set_num_threads(cores)
        _ran_with.append(cores)
        log.info("the sweep gives this job %d cores: as many torch threads from now on", cores)


def record_pool_facts(record: RunDir) -> None:
    """Say in the run's ``summary.json`` which of a process pool's slots ran it
    (``contract.SLOT_FIELD``) and, when the sweep lent it cores, which thread counts it ran with
    (``contract.LENT_THREADS_FIELD``): what its fingerprint does not tell."""
    summary = record.summary()
    facts = {}
    if trial.pool_slots() is not None:
        facts[contract.SLOT_FIELD] = trial.slot(-1)
    if len(_ran_with) > 1:
        facts[contract.LENT_THREADS_FIELD] = list(_ran_with)
    if facts and summary is not None:
        record.write_summary({**summary, **facts})
    _ran_with.clear()
