"""``SweepSummary``: the Hydra callback (``hydra.callbacks`` in conf/config.yaml) that runs in the
launching process around every multirun (a single run's guard is ``optsweep.rundir.RunDirGuard``).

Start: a named sweep directory belongs to one command. Hydra numbers jobs by their position in the
sweep, so a different command into the same directory would put other configs into finished jobs'
directories; that is refused before any job starts.

End: every job directory's ``summary.json`` is read from disk (jobs may have run in other processes
or machines), printed as a table and written to ``sweep_summary.csv`` and ``sweep_summary.json``;
the command exits with status 1 when a job run by this command failed (diverged and pruned are
results, not failures).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, cast

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from optsweep import contract
from optsweep.lease import is_live, read_lease
from optsweep.rundir import SweepDir, refuse, refuse_unwritable
from optsweep.sweep import preflight

COLUMNS = ["job", "status", "objective_name", "objective", "epochs_completed", "overrides",
           "error", "this_run", "dir", contract.SIMULATED_FIELD]


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.started_ns = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        refuse_unwritable("hydra.sweep.dir", sweep_dir)
        command = sorted(cast(list, OmegaConf.to_container(config.hydra.overrides.task,
                                                           resolve=False)))
        check_same_command(sweep_dir, command)
        problem = preflight.shared_problem(config)
        if problem:  # every job would fail on it: say it once, launch nothing
            print(f"optsweep: error: {problem} (every job of this sweep needs it; nothing was "
                  "launched)", file=sys.stderr)
            sys.exit(2)
        SweepDir(sweep_dir).write_command(command)
        self.started_ns = SweepDir(sweep_dir).mark_started()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = collect(sweep_dir, self.started_ns)
        SweepDir(sweep_dir).write_sweep_summary(rows, COLUMNS)
        print(format_summary(sweep_dir, rows), flush=True)
        if any(row["this_run"] and row["status"] in contract.PROBLEMS for row in rows):
            # SystemExit, not an exception: Hydra turns a callback's exceptions into warnings
            sys.exit(1)


def check_same_command(sweep_dir: Path, command: list) -> None:
    previous = SweepDir(sweep_dir).command()
    if previous is not None and previous != command:
        refuse(f"hydra.sweep.dir={sweep_dir} holds a sweep started with overrides {previous}, "
                f"not {command}: its job directories would get other configs. Rerun that "
                "command to resume it, or name a new directory with hydra.sweep.dir=multirun/NAME")


def _job_key(job: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in Path(job).parts)


def _held_elsewhere(job_dir: Path) -> str:
    """For a job without a summary: who trains it right now, if anyone."""
    holder = read_lease(job_dir)
    if holder is None or not is_live(holder, time.time()):
        return ""
    return f"running elsewhere: {holder.get('owner')}"


def collect(sweep_dir: Path, since_ns: int = 0) -> list[dict]:
    """One row per job directory under ``sweep_dir`` (any depth), in job order."""
    rows = []
    for job in SweepDir(sweep_dir).jobs():
        summary: dict = job.summary() or {}
        rows.append({
            "job": job.path.relative_to(sweep_dir).as_posix(),
            "status": contract.status_of(summary).value,
            "objective_name": summary.get("objective_name", ""),
            "objective": summary.get("objective"),
            "epochs_completed": summary.get("epochs_completed", 0),
            "overrides": " ".join(job.overrides()),
            "error": summary.get("error") or _held_elsewhere(job.path),
            # Hydra rewrites .hydra/config.yaml whenever it starts the job
            "this_run": job.config_file.stat().st_mtime_ns >= since_ns,
            "dir": str(job.path),
            contract.SIMULATED_FIELD: bool(summary.get(contract.SIMULATED_FIELD)),
        })
    return sorted(rows, key=lambda row: _job_key(row["job"]))


def format_summary(sweep_dir: Path, rows: list[dict]) -> str:
    counts: dict = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    simulated = any(row.get(contract.SIMULATED_FIELD) for row in rows)
    lines = [contract.SIMULATED_NOTE] if simulated else []
    lines += [f"sweep {sweep_dir}: {len(rows)} jobs: "
             + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    for row in rows:
        value = ("" if row["objective"] is None
                 else f"{row['objective_name']}={row['objective']:.4f}")
        lines.append(f"  {row['dir']}  {row['status']:<11} {value:<18} {row['overrides']}")
    failed = [row for row in rows if row["status"] in contract.PROBLEMS]
    if failed:
        lines.append("failed jobs:")
        lines += [f"  {row['dir']}: {row['error']}" for row in failed]
    lines.append(f"written: {SweepDir(sweep_dir).summary_files[0]}")
    return "\n".join(lines)
