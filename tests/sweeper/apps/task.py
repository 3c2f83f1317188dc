"""A tiny Hydra task for the sweeper's tests: any Hydra app, nothing of optsweep but its sweeper and
``optsweep.sweep.trial``. ``mode`` picks the behaviour under test (see conf/task.yaml)."""

import os
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from optsweep.sweep.trial import current_trial, on_lent_cores, report


def custom_space(cfg: DictConfig, trial) -> None:
    """hydra.sweeper.custom_search_space=task.custom_space: y depends on x."""
    trial.suggest_float("y", -1.0, float(trial.params["x"]) if trial.params["x"] > -1 else -0.5)


@hydra.main(version_base="1.3", config_path="conf", config_name="task")
def main(cfg: DictConfig):
    x, y = float(cfg.x), float(cfg.y)
    # which process ran the job (the launcher's worker or the sweeper's own)
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    (job_dir / "pid").write_text(str(os.getpid()))
    (job_dir / "slot").write_text(os.environ.get("OPTSWEEP_SLOT", ""))  # a slot's worker says it
    if cfg.probe_module:  # was it imported before the job ran (hydra.sweeper.preload)?
        (job_dir / "probed").write_text(str(cfg.probe_module in sys.modules))
    # the cores the sweeper lends this job in its final drain, one line per offer
    on_lent_cores(lambda cores: _append(job_dir / "cores", f"{cores}\n"))
    trial = current_trial()
    if trial is not None and trial.number == cfg.slow_trial:
        time.sleep(float(cfg.slow_s))
    if cfg.mode == "die" and trial is not None and trial.number == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer ends a job
    if cfg.mode == "raise":
        raise ValueError(f"boom at x={x:.3f}")
    if cfg.mode == "crash_once":  # the first attempt in each job directory crashes; its record
        crashed = not (job_dir / "attempted").exists()  # says so as optsweep's summary.json does
        (job_dir / "attempted").write_text("")
        (job_dir / "summary.json").write_text('{"status": "%s"}' % (
            "failed" if crashed else "completed"))
        if crashed:
            raise RuntimeError(f"crash at x={x:.3f}")
    if cfg.mode == "nonfinite":
        return float("nan")
    if cfg.mode == "pair":  # direction: [minimize, maximize]; reports, which cannot prune there
        report(x * x, 0)
        report(x * x, 1)
        return [x * x, y]
    if cfg.mode == "steps":  # a loss that falls from x*x over the steps; reported after each
        for step in range(cfg.steps):
            report(x * x / (step + 1), step)
        return x * x / cfg.steps
    if cfg.mode == "stall" and trial is not None and trial.number == 1 \
            and Path(cfg.stall_file).exists():
        Path(cfg.stall_file).with_suffix(".started").write_text(str(os.getpid()))
        time.sleep(120)  # the test kills the sweep here
    time.sleep(float(cfg.sleep))
    (job_dir / "ended").write_text(str(time.time()))  # when the task returned (epoch seconds)
    return (x - 1.0) ** 2 + y * y


def _append(path: Path, text: str) -> None:
    with path.open("a") as out:
        out.write(text)


if __name__ == "__main__":
    main()
