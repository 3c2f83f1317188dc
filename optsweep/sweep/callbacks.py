"""``RunDirGuard`` and ``SweepSummary``: the Hydra callbacks (``hydra.callbacks`` in conf/config.yaml)
that check an output directory before Hydra writes into it, and summarise a multirun.

``RunDirGuard``, before a single run: its directory must be writable, and must not hold the
finished result of another config (Hydra would overwrite its ``.hydra/`` and training its metrics);
the same config there is left to ``train`` (skipped when final, resumed otherwise).

``SweepSummary``: the Hydra callback (``hydra.callbacks`` in conf/config.yaml) that runs in the
launching process around every multirun.

Start: a named sweep directory belongs to one command. Hydra numbers jobs by their position in the
sweep, so a different command into the same directory would put other configs into finished jobs'
directories; that is refused before any job starts.

End: every job directory's ``summary.json`` is read from disk (jobs may have run in other processes
or machines), printed as a table and written to ``sweep_summary.csv`` and ``sweep_summary.json``;
the command exits with status 1 when a job run by this command failed (diverged and pruned are
results, not failures).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from optsweep import contract
from optsweep.errors import unwritable
from optsweep.lease import is_live, read_lease
from optsweep.sweep import preflight

COMMAND_FILE = "sweep_command.json"
STARTED_FILE = ".sweep_started"
SUMMARY_FILES = ("sweep_summary.csv", "sweep_summary.json")
COLUMNS = ["job", "status", "objective_name", "objective", "epochs_completed", "overrides",
           "error", "this_run", "dir"]


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.started_ns = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        refuse_unwritable("hydra.sweep.dir", sweep_dir)
        command = sorted(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
        check_same_command(sweep_dir, command)
        problem = preflight.shared_problem(config)
        if problem:  # every job would fail on it: say it once, launch nothing
            print(f"optsweep: error: {problem} (every job of this sweep needs it; nothing was "
                  "launched)", file=sys.stderr)
            sys.exit(2)
        contract.atomic_write(sweep_dir / COMMAND_FILE,
                            lambda f: json.dump({"overrides": command}, f, indent=2))
        marker = sweep_dir / STARTED_FILE
        marker.touch()
        # the file system's clock, as the jobs' files will carry it (also on a cluster's NFS)
        self.started_ns = marker.stat().st_mtime_ns

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = collect(sweep_dir, self.started_ns)
        write_summary(sweep_dir, rows)
        print(format_summary(sweep_dir, rows), flush=True)
        if any(row["this_run"] and row["status"] in contract.PROBLEMS for row in rows):
            # SystemExit, not an exception: Hydra turns a callback's exceptions into warnings
            sys.exit(1)


class RunDirGuard(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(config.hydra.run.dir))
        refuse_unwritable("hydra.run.dir", run_dir)
        task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            fingerprint = contract.config_fingerprint(task)
        except Exception:  # an unresolvable value (data.root=???): train() will name it
            return
        previous = contract.read_summary(run_dir)
        if contract.status_of(previous) in contract.FINAL \
                and previous.get("config_fingerprint") != fingerprint:
            _refuse(f"hydra.run.dir={run_dir} holds a {previous['status']} run of another "
                    "config; its metrics.csv, summary.json and .hydra/ would be overwritten. Name "
                    "a new directory with hydra.run.dir=PATH (or rerun that config there)")


def _refuse(message: str) -> None:
    # SystemExit, not an exception: Hydra turns a callback's exceptions into warnings
    print(f"optsweep: error: {message}", file=sys.stderr)
    sys.exit(2)


def refuse_unwritable(key: str, path: Path) -> None:
    """Exit with one line naming ``key`` when ``path`` cannot be created or written."""
    problem = unwritable(path)
    if problem:
        _refuse(f"{key}={path} cannot be created or written ({problem}); name a writable "
                f"directory with {key}=PATH")


def check_same_command(sweep_dir: Path, command: list) -> None:
    try:
        previous = json.loads((sweep_dir / COMMAND_FILE).read_text())["overrides"]
    except (OSError, ValueError, KeyError):
        return
    if previous != command:
        _refuse(f"hydra.sweep.dir={sweep_dir} holds a sweep started with overrides {previous}, "
                f"not {command}: its job directories would get other configs. Rerun that "
                "command to resume it, or name a new directory with hydra.sweep.dir=multirun/NAME")


def _job_key(job: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in Path(job).parts)


def _overrides(job_dir: Path) -> list:
    try:
        return list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))
    except Exception:
        return []


def _held_elsewhere(job_dir: Path) -> str:
    """For a job without a summary: who trains it right now, if anyone."""
    holder = read_lease(job_dir)
    if not is_live(holder, time.time()):
        return ""
    return f"running elsewhere: {holder.get('owner')}"


def collect(sweep_dir: Path, since_ns: int = 0) -> list[dict]:
    """One row per job directory under ``sweep_dir`` (any depth), in job order."""
    rows = []
    for config_path in sweep_dir.rglob(f"{contract.HYDRA_DIR}/config.yaml"):
        job_dir = config_path.parent.parent
        summary: Optional[dict] = contract.read_summary(job_dir) or {}
        rows.append({
            "job": job_dir.relative_to(sweep_dir).as_posix(),
            "status": contract.status_of(summary).value,
            "objective_name": summary.get("objective_name", ""),
            "objective": summary.get("objective"),
            "epochs_completed": summary.get("epochs_completed", 0),
            "overrides": " ".join(str(o) for o in _overrides(job_dir)),
            "error": summary.get("error") or _held_elsewhere(job_dir),
            # Hydra rewrites .hydra/config.yaml whenever it starts the job
            "this_run": config_path.stat().st_mtime_ns >= since_ns,
            "dir": str(job_dir),
        })
    return sorted(rows, key=lambda row: _job_key(row["job"]))


def write_summary(sweep_dir: Path, rows: list[dict]) -> None:
    def write_csv(f) -> None:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    contract.atomic_write(sweep_dir / SUMMARY_FILES[0], write_csv)
    contract.atomic_write(sweep_dir / SUMMARY_FILES[1], lambda f: json.dump(rows, f, indent=2))


def format_summary(sweep_dir: Path, rows: list[dict]) -> str:
    counts: dict = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines = [f"sweep {sweep_dir}: {len(rows)} jobs: "
             + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    for row in rows:
        value = "" if row["objective"] is None else f"{row['objective_name']}={row['objective']:.4f}"
        lines.append(f"  {row['dir']}  {row['status']:<11} {value:<18} {row['overrides']}")
    failed = [row for row in rows if row["status"] in contract.PROBLEMS]
    if failed:
        lines.append("failed jobs:")
        lines += [f"  {row['dir']}: {row['error']}" for row in failed]
    lines.append(f"written: {sweep_dir / SUMMARY_FILES[0]}")
    return "\n".join(lines)
