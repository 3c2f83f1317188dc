"""``python -m optsweep.benchmark``: every optimizer tuned with the same budget, its chosen setting
confirmed over new seeds, ranked across workloads.

    python -m optsweep.benchmark preset=demo                      # offline, minutes on 2 cores
    python -m optsweep.benchmark workloads=[digits,cifar10_small] optimizers=[adam,sgd] budget=20 \\
        seeds=3 space=lr_only hydra/launcher=joblib hydra.sweeper.n_jobs=2

For every workload x optimizer: an Optuna study of ``budget`` trials in the optimizer's space
(``conf/space/``; TPE seeded the same for all, no pruning unless ``pruner=median``), then the best
trial's setting rerun over ``seeds`` new seeds (``optsweep.confirm``), then, with
``defaults_baseline``, every optimizer at its defaults over the same seeds; then the report
(``<dir>/report/report.html``), the benchmark's answer first. All of it runs through one pool of
``hydra.sweeper.n_jobs`` slots (``optsweep.benchmark.pool``; ``pool=false``: a process per step,
one after another). Everything lives in ``dir`` (multirun/benchmark/<name>/): rerunning the
command resumes where it stopped and trains nothing once finished. Several machines may run the
same command on one shared folder and storage (``hydra.sweeper.storage=postgresql://...``): the
studies share their trials, a run another machine trains is left to it, and a confirmation
waits until its study has no trial in flight.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from optsweep import contract
from optsweep.benchmark import plan, settings
from optsweep.errors import OptsweepError, unwritable
from optsweep.rundir import BenchmarkDir, SweepDir

TARGET_OVERRIDE = "workload.target"  # also workload.target_metric


def manifest(cfg: DictConfig, overrides: list[str], targets: dict, seeds: dict) -> dict:
    return {"settings": settings.as_dict(cfg), "overrides": overrides, "workloads": targets,
            "study_seeds": seeds}


def claim_dir(cfg: DictConfig, content: dict) -> None:
    """Write benchmark.json, or refuse a folder that holds another benchmark's, or other runs (a
    sweep's: the benchmark would write beside them and its analysis would read them too)."""
    root = Path(cfg.dir)
    problem = unwritable(root)
    if problem:
        raise OptsweepError(f"dir={root}: cannot be created or written ({problem}); name a "
                            "writable folder with dir=PATH")
    path = BenchmarkDir(root).manifest_file
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if _training(previous) != _training(content):
            raise OptsweepError(
                f"dir={root} holds another benchmark (settings in {path}); rerun that command to "
                "resume it, or name a new one with name=NEW")
    else:
        other = next(SweepDir(root).job_configs(), None)
        if other is not None:
            raise OptsweepError(
                f"dir={root} holds other runs ({other.parent.parent}) and no {path.name}: it is "
                "not a benchmark's folder; name a new one with dir=PATH")
    contract.atomic_write(path, lambda f: json.dump(content, f, indent=2))


def _training(content: dict) -> dict:
    """What decides the runs: the manifest without the targets (a new target needs a new
    analysis, not new runs: it is left out of each run's fingerprint too) and ``pool``."""
    def trained(overrides):
        return [o for o in overrides if not o.startswith(TARGET_OVERRIDE)]

    settings_ = dict(content.get("settings", {}))
    settings_["overrides"] = trained(settings_.get("overrides", []))
    settings_.pop("pool", None)  # how the runs are scheduled, not what they compute
    return {"settings": settings_, "overrides": trained(content.get("overrides", [])),
            "study_seeds": content.get("study_seeds")}


def step(cmd: list[str]) -> bool:
    print("+ " + " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd).returncode == 0


def tune_and_confirm(cfg: DictConfig, cell: plan.Cell, overrides: list[str]) -> bool:
    """The cell's study, then its confirmation; True when both are done or ran cleanly."""
    ok = plan.study_done(cfg, cell) or step(plan.tune_command(cfg, cell, overrides))
    waiting = plan.study_unsettled(cfg, cell)
    if waiting:
        print(f"optsweep.benchmark: {cell.workload}/{cell.optimizer}: trials {', '.join(waiting)} "
              "are still training or were cut off; rerun to confirm this study", flush=True)
        return False
    out = plan.confirmation_dir(cfg, cell)
    if plan.sweep_done(out, cfg.seeds):
        return ok
    return step(plan.confirm_command(cfg, cell, overrides, out)) and ok


def run_defaults(cfg: DictConfig, workload: str, seeds: list[int], overrides: list[str]) -> bool:
    if plan.sweep_done(BenchmarkDir(cfg.dir).defaults_dir(workload),
                       len(cfg.optimizers) * len(seeds)):
        return True
    return step(plan.defaults_command(cfg, workload, seeds, overrides))


def report(cfg: DictConfig) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from optsweep.analysis.benchmark_report import write_benchmark_report

    folder = BenchmarkDir(cfg.dir)
    with folder.report_lock():
        return write_benchmark_report(folder.path, folder.report_dir, metric=cfg.metric,
                                      select=cfg.select)


def main(argv: list[str] | None = None) -> int:
    from optsweep.benchmark import pool
    from optsweep.benchmark.preflight import check

    try:
        cfg, overrides = settings.load(sys.argv[1:] if argv is None else argv)
        targets, study_seeds, problems = check(cfg, overrides)
        if problems:
            for problem in problems:
                print(f"optsweep.benchmark: error: {problem}", file=sys.stderr)
            print("optsweep.benchmark: nothing was trained", file=sys.stderr)
            return 2
        claim_dir(cfg, manifest(cfg, overrides, targets, study_seeds))
    except OptsweepError as exc:
        print(f"optsweep.benchmark: error: {exc}", file=sys.stderr)
        return 2
    ok = pool.run(cfg, overrides, study_seeds) if cfg.pool else None
    if ok is None:
        ok = steps(cfg, overrides, study_seeds)
    print(f"report: {report(cfg)}", flush=True)
    return 0 if ok else 1


def steps(cfg: DictConfig, overrides: list[str], study_seeds: dict) -> bool:
    """Every step in a process of its own, one after another (``pool=false``, or a launcher
    that only runs batches)."""
    from optsweep.confirm import ConfirmError, new_seeds

    ok = True
    for cell in plan.cells(cfg):
        try:
            ok = tune_and_confirm(cfg, cell, overrides) and ok
        except ConfirmError as exc:  # no trial of the study finished: nothing to confirm
            print(f"optsweep.benchmark: {cell.workload}/{cell.optimizer}: {exc}", file=sys.stderr)
            ok = False
    if cfg.defaults_baseline:
        for workload, seed in study_seeds.items():
            ok = run_defaults(cfg, workload, new_seeds([seed], cfg.seeds), overrides) and ok
    return ok


if __name__ == "__main__":
    sys.exit(main())
