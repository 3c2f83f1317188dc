"""The run directory: what every run leaves on disk and the rules for reading it, in one place.

Training writes it, the sweep job and the Optuna sweeper report it, the study and the analysis read
it, and each imports its facts from here instead of repeating them: the file names, the metric
columns, the statuses (which are final and which are averaged), the objective (its name, direction
and worst finite value), the best-epoch rule, the keys that do not change a result and the
summary's fields. ``optsweep.rundir`` is the one code that opens the files. Torch-free, so that the
analysis reads runs without importing training.

A run directory holds:

- ``metrics.csv``: one row per finished epoch, ``METRIC_COLUMNS``, rewritten after every epoch;
- ``summary.json``: written at the run's end, whatever the end was (``summary()`` builds it);
- ``checkpoint.pt``: the last finished epoch while the run can still resume
  (``optsweep.checkpoint``);
- ``best.pt``: with ``trainer.keep_best``, the model's weights at the best epoch (``best_row``);
- ``lease.json``: while a process trains the run, who it is (``optsweep.lease``);
- ``.hydra/``: Hydra's files: ``config.yaml`` (the run's config), ``overrides.yaml`` (its command
  line) and ``hydra.yaml`` (Hydra's own config, with the group choices);
- ``tracking.json``: the run's ids in the selected trackers (``optsweep.tracking``), so that a
  resumed run continues them.

A sweep's folder (``hydra.sweep.dir``) holds its job directories and ``sweep_command.json`` (the
command that owns it), ``.sweep_started``, ``sweep_summary.csv``/``.json`` and, for an Optuna sweep,
``optuna.db`` and ``optimization_results.yaml``.

Every file is written atomically (temporary file, fsync, rename): a reader sees the old file or the
new one, never a mix, and a crash loses at most the epoch in progress.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from dataclasses import dataclass
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, cast

from omegaconf import DictConfig, OmegaConf

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
# a crashed attempt's summary.json, set aside while the sweeper's re-run of it is queued
# (hydra.sweeper.crash_retries): the job directory reads unfinished until the re-run ends
CRASHED_SUMMARY_FILE = "summary.crashed.json"
CHECKPOINT_FILE = "checkpoint.pt"
BEST_WEIGHTS_FILE = "best.pt"  # trainer.keep_best: the model's state dict at the best epoch
LEASE_FILE = "lease.json"  # who trains the run right now (optsweep.lease)
HEARTBEAT_FILE = "heartbeat.json"  # an Optuna trial's job is alive (optsweep.lease)
HYDRA_DIR = ".hydra"
CONFIG_FILE = "config.yaml"  # in HYDRA_DIR, as are the next two
OVERRIDES_FILE = "overrides.yaml"
HYDRA_FILE = "hydra.yaml"
TRACKING_FILE = "tracking.json"

# A sweep's folder (optsweep.rundir.SweepDir).
SWEEP_COMMAND_FILE = "sweep_command.json"  # the overrides of the command that owns the folder
SWEEP_STARTED_FILE = ".sweep_started"  # its mtime: which jobs this command ran
SWEEP_SUMMARY_FILES = ("sweep_summary.csv", "sweep_summary.json")
OPTUNA_DB_FILE = "optuna.db"  # the default SQLite storage of an Optuna sweep
OPTIMIZATION_RESULTS_FILE = "optimization_results.yaml"  # an Optuna sweep's best trial

# A benchmark's folder (optsweep.rundir.BenchmarkDir).
BENCHMARK_MANIFEST_FILE = "benchmark.json"  # the protocol and each workload's target
BENCHMARK_DEFAULTS_DIR = "defaults"  # per workload: the optimizers at their defaults
BENCHMARK_CONFIRM_SUFFIX = "_confirm"  # per workload: <optimizer>_confirm, its confirmation
BENCHMARK_REPORT_DIR = "report"
# the benchmark's one pool of slots: its slot time (optsweep.sweep.slots.SlotTime) and worker starts
BENCHMARK_SLOT_TIME_FILE = "slot_time.json"
BENCHMARK_REPORT_LOCK_FILE = ".report.lock"  # held while a benchmark writes its report

# One row per finished epoch. Accuracies are fractions of *every* example of the split; `lr` is the
# learning rate of the epoch's first step, `lr_last` that of its last (they differ when the
# schedule steps per batch). `epoch_seconds` is the training pass alone; `eval_seconds` what the
# epoch spent after it (an optimizer's evaluation mode, such as Schedule-Free's batch-norm pass,
# and the validation and test evaluations). `train_steps` counts optimizer steps, `train_passes`
# forward-backward passes (LBFGS makes several a step). The last three are absent from metrics.csv
# files written before them.
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc1", "val_loss", "val_acc1", "val_acc5",
                  "test_loss", "test_acc1", "test_acc5", "lr", "lr_last", "epoch_seconds",
                  "train_images_per_s", "eval_seconds", "train_steps", "train_passes",
                  "step_size_estimate")
# Prodigy/D-Adaptation's own estimate d of the step size at the epoch's last step (effective step
# d x lr); empty for other optimizers and absent from metrics.csv files written before it.
STEP_SIZE_COLUMN = METRIC_COLUMNS[-1]
# What the clock measured: they differ between two runs of one config, every other column does not.
TIME_COLUMNS = ("epoch_seconds", "train_images_per_s", "eval_seconds")
EPOCH_COLUMN = METRIC_COLUMNS[0]
MEASURED_COLUMNS = METRIC_COLUMNS[1:]  # what an epoch measured: every column but its number
SPLITS = ("train", "val", "test")
# The one-line log of each epoch (optsweep.log) shows these, where measured.
LOGGED_COLUMNS = ("train_loss", "train_acc1", "val_acc1", "test_acc1", "test_acc5")


class Status(str, Enum):
    """How a run ended. The value is what ``summary.json`` holds."""

    COMPLETED = "completed"  # every planned epoch
    # trainer.early_stop_patience epochs without a better validation objective: a result, as final
    # as a completed run
    EARLY_STOPPED = "early_stopped"
    DIVERGED = "diverged"  # NaN/inf or a loss above trainer.max_loss: an outcome of its setting
    PRUNED = "pruned"  # stopped by an Optuna pruner; never resumed
    INTERRUPTED = "interrupted"  # Ctrl-C or a scheduler's SIGTERM; resumes from its checkpoint
    FAILED = "failed"  # an error; resumes from its checkpoint once the cause is fixed
    UNFINISHED = "unfinished"  # no summary.json: killed, or still running

    def __str__(self) -> str:
        return self.value


# A summary.json may hold these (UNFINISHED is the absence of one).
RECORDED = (Status.COMPLETED, Status.EARLY_STOPPED, Status.DIVERGED, Status.PRUNED,
            Status.INTERRUPTED, Status.FAILED)
# A rerun of the same config would only repeat these (training is deterministic per seed): skipped.
FINAL = (Status.COMPLETED, Status.EARLY_STOPPED, Status.DIVERGED)
# Counted in means and tests: reached their last epoch (a diverged run at its last finished epoch).
AVERAGED = FINAL
# Ends whose checkpoint is kept, because the run can go on from it.
RESUMABLE = (Status.INTERRUPTED, Status.FAILED)
# Ends that are a problem to report (exit status, "failed jobs"), not a result.
PROBLEMS = (Status.FAILED,)
# Ends a setting may be chosen from: the sweeper scores them by their last epoch
# (``objective_value``) and a diverged run at the worst value, so choosing on a diverged run's last
# finished epoch would pick what the sweeper ranked last. (Pruned runs stopped before their end.)
SCORED = (Status.COMPLETED, Status.EARLY_STOPPED)


def status_of(summary: Optional[Mapping]) -> Status:
    """The status a run directory's summary records; UNFINISHED when it has none."""
    if not summary:
        return Status.UNFINISHED
    return Status(summary.get("status"))


# --- the optimizer's betas ---------------------------------------------------------------------

BETA_KEYS = ("beta1", "beta2")  # optsweep's own, so that each can be swept alone


def betas_that_ran(optimizer: Mapping) -> Optional[tuple]:
    """The ``betas`` an optimizer config gives its class: a ``betas`` pair wins over
    ``beta1``/``beta2`` (as conf/optimizer/adam.yaml says); None for a config without ``beta1``."""
    if "beta1" not in optimizer:
        return None
    pair = optimizer.get("betas")
    return tuple(pair) if pair is not None else (optimizer["beta1"], optimizer["beta2"])


def with_betas_that_ran(config: Mapping) -> dict:
    """A run's saved config with ``optimizer.beta1``/``beta2`` as they ran: Hydra saved them as
    written, beside the ``betas`` pair that won over them."""
    optimizer = config.get("optimizer") or {}
    betas = betas_that_ran(optimizer)  # None without beta1
    if betas is None or optimizer.get("betas") is None:
        return dict(config)
    return {**config, "optimizer": {**optimizer, **dict(zip(BETA_KEYS, betas))}}


# --- the objective -------------------------------------------------------------------------------

OBJECTIVES = tuple(f"{split}_{measure}" for split in ("val", "test")
                   for measure in ("acc1", "acc5", "loss"))
WORST_ACCURACY = 0.0
WORST_LOSS = 1e9  # finite: sweepers (Optuna) reject NaN and inf
# trainer.objective=auto: validation top-1, or test top-1 without a validation split
AUTO_OBJECTIVE, AUTO_OBJECTIVE_WITHOUT_VAL = "val_acc1", "test_acc1"


def objective_name(cfg: Mapping) -> str:
    """The metric a run returns: ``trainer.objective``, or with ``auto`` val_acc1 (test_acc1 when
    ``data.val_fraction`` is 0 and there is no validation split). ``cfg``: the run's config, as a
    DictConfig or as the plain dict read back from ``.hydra/config.yaml``."""
    objective = cfg["trainer"]["objective"]
    if objective != "auto":
        return str(objective)
    return AUTO_OBJECTIVE if cfg["data"]["val_fraction"] > 0 else AUTO_OBJECTIVE_WITHOUT_VAL


def recorded_objective(cfg: Mapping) -> str:
    """The objective a failed run records: its own (``objective_name``) when the config names a
    valid one; otherwise (the config itself is what is broken) the auto objective by the same
    rule, reading as much of the config as can be read."""
    try:
        name = objective_name(cfg)
    except Exception:  # a missing or unresolvable key: the auto rule below names what it can
        name = "auto"
    if name in OBJECTIVES:
        return name
    try:
        has_val = cfg["data"]["val_fraction"] > 0
    except Exception:  # no readable val_fraction: every shipped data config has a split
        has_val = True
    return AUTO_OBJECTIVE if has_val else AUTO_OBJECTIVE_WITHOUT_VAL


def maximize(name: str) -> bool:
    """Accuracies go up, losses go down."""
    return not name.endswith("_loss")


def direction(name: str) -> str:
    """The objective's direction as Optuna spells it."""
    return "maximize" if maximize(name) else "minimize"


def worst_value(name: str) -> float:
    return WORST_ACCURACY if maximize(name) else WORST_LOSS


def better(a: float, b: float, name: str) -> bool:
    """True when ``a`` is strictly better than ``b`` for the metric ``name``."""
    return a > b if maximize(name) else a < b


def best_epoch_metric(name: str) -> str:
    """The metric the best epoch is chosen on: the objective's measure on the validation split
    (the test split is never used to choose)."""
    return "val_" + name.split("_", 1)[1]


# The metrics a setting may be chosen on (a selection, an objective, a target): validation's. The
# test split only reports, so that its score stays a fair estimate of the chosen setting's.
SELECTABLE = tuple(c for c in METRIC_COLUMNS if c.startswith("val_"))
# The analysis's defaults: a setting is chosen on what a sweep maximises by default and reported on
# the test split, which no choice looked at.
DEFAULT_SELECT = AUTO_OBJECTIVE
DEFAULT_REPORTED = "test_acc1"


def selection_problem(name: str) -> Optional[str]:
    """Why the metric ``name`` cannot choose a setting, or None; said after the key that names it
    (``select=test_acc1: ...``)."""
    if name in SELECTABLE:
        return None
    choose = f"choose one of {', '.join(SELECTABLE)}"
    if name.startswith("test_") and name in METRIC_COLUMNS:
        return f"a test metric (settings are chosen on validation, never on the test set); {choose}"
    if name in METRIC_COLUMNS:
        return f"not a validation metric (settings are chosen on validation); {choose}"
    return f"not a metric; {choose}"


def metric_problem(name: str) -> Optional[str]:
    """Why ``name`` is no metric a run measured, or None; said after the key that names it."""
    return None if name in MEASURED_COLUMNS else \
        f"not a metric; choose one of {', '.join(MEASURED_COLUMNS)}"


def best_row(rows: Sequence[Mapping], name: str) -> Optional[Mapping]:
    """The best epoch's row: the first epoch at the best value of ``best_epoch_metric(name)`` in
    the objective's direction; None when no epoch measured it (no validation split)."""
    key = best_epoch_metric(name)
    best = None
    for row in rows:
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if best is None or better(value, best[key], name):
            best = row
    return best


def stops_early(rows: Sequence[Mapping], name: str, patience: Optional[int]) -> bool:
    """True when the last ``patience`` epochs brought no better ``best_epoch_metric(name)`` than
    the best epoch before them (``best_row``: strictly better, in the objective's direction).
    Never with ``patience`` None or before any epoch measured it."""
    best = best_row(rows, name)
    if patience is None or best is None:
        return False
    return rows[-1]["epoch"] - best["epoch"] >= patience


def objective_value(status: Status, rows: Sequence[Mapping], name: str) -> float:
    """What a run returns to sweepers: the final epoch's objective when the run completed, stopped
    early or was pruned, the worst finite value otherwise (a diverged or failed run has no
    trustworthy one)."""
    if rows and status in (*SCORED, Status.PRUNED):
        return float(rows[-1][name])
    return worst_value(name)


# --- a diverged run's value in the analysis ------------------------------------------------------

# A diverged run has no result of its own: its loss went NaN or past trainer.max_loss, its last
# finite epoch is a model on its way to diverging (flattering, and absent after a divergence in
# epoch 1). The analysis keeps it among its setting's seeds (in n, the means, the Welch tests, the
# power statement, the budget curves) at what a model that learnt nothing scores on C classes:
# top-k accuracy min(k, C) / C (chance), and as a stated cap on its loss ln(C), the cross-entropy of
# the uniform prediction. The cap is kinder than the diverged model's own loss (infinite), but any
# finite cap is, and this one is on the scale of the other seeds' losses, where WORST_LOSS (1e9:
# Optuna's worst finite value) would make every mean it enters 1e9 / n. A run recorded before
# summaries held its class count has no chance value: its finals stay unknown (NaN), out of n.
CLASSES_FIELD = "classes"  # summary.json: the class count of the run's data


def chance_value(metric: str, classes: Optional[int]) -> Optional[float]:
    """A diverged run's value of ``metric`` (``val_acc1``, ``test_loss``, ...) on ``classes``
    classes; None for a metric that is neither an accuracy nor a loss, or an unknown class count."""
    measure = metric.split("_", 1)[-1]
    if classes is None or classes != classes or classes < 2:  # None or NaN: not recorded
        return None
    if measure == "loss":
        return math.log(classes)
    if measure.startswith("acc") and measure[3:].isdigit():  # top-k, k in its name
        return min(int(measure[3:]), classes) / classes
    return None


# --- what a run returns --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The end of one run, as ``train()`` returns it and ``summary.json`` records it."""

    status: Status
    objective: float
    objective_name: str
    epochs_completed: int = 0
    error: Optional[str] = None

    @classmethod
    def from_summary(cls, summary: Mapping) -> "Outcome":
        return cls(status_of(summary), float(summary["objective"]), summary["objective_name"],
                   int(summary.get("epochs_completed") or 0), summary.get("error"))


# --- the config fingerprint ----------------------------------------------------------------------

# The keys that do not change a result: left out of the fingerprint (a run that differs only in
# them is skipped or resumed), never "swept" in the analysis, never carried over by confirm.
RESULT_FREE_KEYS = {
    "trainer": (
        "progress",  # a progress bar on a terminal
        "resume",  # whether to reuse this directory's record, not what the run computes
        "keep_checkpoint",  # a file kept or deleted after the end
        "num_threads",  # the same kernels on more or fewer CPU threads: speed
    ),
    "data": (
        "eval_batch_size",  # evaluation sums every example in float64: any batching, same sums
        "root",  # where the same files are read from
        "download",  # whether missing files may be fetched; the files are checked either way
    ),
    # what "reached" means for a benchmark's analysis, not what a run learns
    "workload": ("target", "target_metric"),
}
# Not in it: trainer.device, compile, channels_last, fast_path and optimizer.foreach/fused pick
# other kernels, which round differently, so a finished CPU run is not the result a CUDA run would
# give (a sweep that varies them shows them as swept); trainer.seed, which the analysis treats as
# the repeat of a setting (analysis.sweeps.SEED). The logger group changes no result, but the
# fingerprints of logged runs on disk include it: leaving it out would retrain them.


# summary.json: the torch thread counts a sweep's job ran with, in order (its slot's share, then
# each share the final drain lent it: optsweep.sweep.trial.on_lent_cores); absent where it kept its
# share. trainer.num_threads is out of the fingerprint, so a lent run and the same setting run
# alone share one, while sums over other thread counts may round differently in the last digits
# (hydra.sweeper.lend_cores=false: never lent, identical).
LENT_THREADS_FIELD = "lent_threads"
# summary.json: the process pool's slot that ran the run (optsweep.sweep.process_pool; absent
# outside one). Jobs are placed on GPUs by slot: slot mod the GPUs (optsweep.sweep.job).
SLOT_FIELD = "slot"


def result_free(key: str) -> bool:
    """Whether the dotted config key (``data.root``) is one of ``RESULT_FREE_KEYS``."""
    group, _, leaf = key.partition(".")
    return leaf in RESULT_FREE_KEYS.get(group, ())


# Keys added after runs were recorded, at the value that does what those runs did: left out at that
# value, so that a run directory recorded before them is still recognised (skipped, resumed).
NEUTRAL_KEYS: dict[str, dict[str, Any]] = {
    "trainer": {"early_stop_patience": None, "keep_best": False},
    "model": {"cifar_stem": False}}
# How data.train_limit / data.test_limit draw their subset (optsweep.data.subset; rename this when
# that rule changes). Part of a capped run's fingerprint: runs capped by an older rule trained on
# other examples, and are neither skipped nor resumed.
SUBSET_RULE = "stratified-v1"


def config_fingerprint(cfg: DictConfig) -> str:
    """A short hash of what determines a run's results: equal fingerprints, equal metrics."""
    container = cast(dict, OmegaConf.to_container(cfg, resolve=True))
    for group, keys in RESULT_FREE_KEYS.items():
        for key in keys:
            container.get(group, {}).pop(key, None)
    for group, neutral in NEUTRAL_KEYS.items():
        for key, value in neutral.items():
            if key in container.get(group, {}) and container[group][key] == value:
                del container[group][key]
    if container.get("scheduler", {}).get("_target_", "") is None:  # scheduler=none: constant lr
        del container["scheduler"]
    data = container.get("data", {})
    if data.get("train_limit") is not None or data.get("test_limit") is not None:
        data["subset_rule"] = SUBSET_RULE
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


# --- writing -------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file that replaces it at once."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
    try:
        with os.fdopen(fd, "wb" if binary else "w", newline=None if binary else "") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a diverged value is recorded as null
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def versions() -> dict:
    """Versions of what produced a run (read from the installed packages, without importing
    them)."""
    found: dict[str, Optional[str]] = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "optsweep"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


# summary.json of a simulated run (workload=simulated, optsweep.simulate): its device, the flag that
# marks it and the setting's noise-free expectations (optsweep.simulate.model.truth)
SIMULATED_DEVICE = "simulated"
SIMULATED_FIELD = "simulated"
TRUTH_FIELD = "truth"
SIMULATED_NOTE = ("Simulated runs (workload=simulated): their numbers are invented to exercise "
                  "the protocol, not measurements of any optimizer.")


def summary(status: Status, name: str, rows: Sequence[Mapping] = (), *,
            error: Optional[str] = None, **facts: Any) -> dict:
    """The content of summary.json for a run that ended with ``status`` after ``rows``.

    ``facts`` adds what only the writer knows (epochs_planned, wall_seconds, device, parameter
    counts, config_fingerprint, choices: the Hydra group choices, model/data/optimizer/...)."""
    final = rows[-1] if rows else None
    return {"status": Status(status), "objective": objective_value(status, rows, name),
            "objective_name": name, "epochs_completed": len(rows), "final": final,
            "best": best_row(rows, name), "error": error, **facts, "versions": versions()}
