"""Time the analysis on 1,000 fabricated runs x 10 epochs: load, figures, full report.

    MPLBACKEND=Agg python benchmarks/analysis_speed.py [--runs 1000] [--keep DIR]
                                                      [--baseline REV] [--rounds N]

The runs mimic a real study: an optimizer comparison, then attribute and lr sweeps, 10 seeds per
setting, a few diverged runs; each run directory has the full set of files the training core
writes (a ~110-line hydra.yaml included, since YAML parsing is most of the loading cost).
Target (issue 4): under 10 s in total on a 2-core CPU.

Then the drawing alone, against the figure code of `--baseline` (a git revision of this checkout,
its figure modules loaded from ``git show`` under private names, only for this comparison): every
sweep's figures, the overview, the benchmark's three figures (budget curves, profiles, lr
sensitivity) over fabricated benchmark tables of about as many trials as runs, and the figures of
fabricated Optuna studies (`STUDIES`: three pruned lr searches and a tune, 20 trials each, as
conf/sweep/lr_search.yaml and tune.yaml run them), old and new in turn (ABBA over `--rounds`).
Target (issue 30): the new drawing within 10% of the baseline's. The line
`drawing: ... ratio_cpu=R ratio_wall=W` (new over old, every figure; CPU seconds of this process
and its figure workers, which read true where other jobs share the CPU), then the same for the
studies' figures alone (`studies: ...`), come before the last line:
`analysis: runs=N load_s=X plot_s=Y total_s=Z` (total = load + figures + tables + report).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from optsweep.analysis import (  # noqa: E402
    benchmark_figures,
    load_runs,  # noqa: E402
    optuna_study,
    overview,
)
from optsweep.analysis import figures as sweep_figures  # noqa: E402
from optsweep.analysis.budget import budget_curves  # noqa: E402
from optsweep.analysis.figures import slug, write_figures  # noqa: E402
from optsweep.analysis.profile import performance_profile  # noqa: E402
from optsweep.analysis.report import write_report  # noqa: E402
from optsweep.analysis.style import save  # noqa: E402
from optsweep.analysis.tables import setting_table  # noqa: E402

HEADER = ("epoch,train_loss,train_acc1,val_loss,val_acc1,val_acc5,test_loss,test_acc1,test_acc5,"
          "lr,epoch_seconds,train_images_per_s")
EPOCHS = 10
SEEDS = 10
BASELINE = "30c8611"  # main before the figures were drawn through seaborn (issue 30)
# the figure modules of the baseline, in import order (each imports only those before it)
FIGURE_MODULES = ("style", "optuna_study", "figures", "benchmark_figures", "overview")
WORKLOADS = 4  # of the fabricated benchmark; its optimizers are the comparison's six
# (sweep, optimizer, searched keys, pruned): Optuna studies of STUDY_TRIALS trials, each reporting
# its objective every epoch; a pruned search stops every third trial after 1-5 epochs
STUDIES = [("lr_search", "adam", ("lr",), True), ("lr_search", "adagrad", ("lr",), True),
           ("lr_search", "rmsprop", ("lr",), True),
           ("tune", "adam", ("lr", "weight_decay", "beta1"), False)]
STUDY_TRIALS = 20  # n_trials of conf/sweep/lr_search.yaml and tune.yaml
SPACE = {"lr": (1e-5, 1e-1, True), "weight_decay": (1e-6, 1e-2, True), "beta1": (0.5, 0.99, False)}
# (sweep name, optimizer, swept key, values); the comparison sweeps the optimizer choice itself
SWEEPS = [
    ("compare", None, "optimizer", ["adam", "adagrad", "rmsprop", "sgd", "adadelta", "adamw"]),
    ("sgd_momentum", "sgd", "momentum", [0.0, 0.5, 0.9, 0.99]),
    ("adam_beta1", "adam", "beta1", [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99]),
    ("adam_wd", "adam", "weight_decay", [0, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]),
    ("adam_eps", "adam", "eps", [1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]),
    ("adagrad_lr_decay", "adagrad", "lr_decay",
     [0, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1]),
    ("rmsprop_alpha", "rmsprop", "alpha",
     [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999]),
    ("rmsprop_momentum", "rmsprop", "momentum", [0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]),
    ("adam_lr", "adam", "lr", [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3]),
    ("adagrad_lr", "adagrad", "lr", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0]),
    ("rmsprop_lr", "rmsprop", "lr", [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3]),
]
OPTIMIZER = {
    "adam": "{_target_: torch.optim.Adam, _partial_: true, lr: 0.001, beta1: 0.9, beta2: 0.999, "
            "betas: null, eps: 1.0e-08, weight_decay: 0.0, amsgrad: false, foreach: null, "
            "maximize: false, capturable: false, differentiable: false, fused: null}",
    "adamw": "{_target_: torch.optim.AdamW, _partial_: true, lr: 0.001, beta1: 0.9, beta2: 0.999, "
             "betas: null, eps: 1.0e-08, weight_decay: 0.01, amsgrad: false, foreach: null}",
    "adagrad": "{_target_: torch.optim.Adagrad, _partial_: true, lr: 0.001, lr_decay: 0.0, "
               "weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1.0e-10, foreach: null}",
    "rmsprop": "{_target_: torch.optim.RMSprop, _partial_: true, lr: 0.001, alpha: 0.99, "
               "eps: 1.0e-08, weight_decay: 0.0, momentum: 0.0, centered: false, foreach: null}",
    "sgd": "{_target_: torch.optim.SGD, _partial_: true, lr: 0.01, momentum: 0.0, dampening: 0.0, "
           "weight_decay: 0.0, nesterov: false, maximize: false, foreach: null}",
    "adadelta": "{_target_: torch.optim.Adadelta, _partial_: true, lr: 0.001, rho: 0.9, "
                "eps: 1.0e-06, weight_decay: 0.0, foreach: null}",
}
HYDRA_HEAD = """\
hydra:
  run:
    dir: multirun/runs/${now:%Y-%m-%d_%H-%M-%S_%f}
  sweep:
    dir: multirun/SWEEP
    subdir: ${hydra.job.num}
  launcher:
    _target_: hydra._internal.core_plugins.basic_launcher.BasicLauncher
  sweeper:
    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper
    max_batch_size: null
    params: null
  help:
    app_name: ${hydra.job.name}
    header: '${hydra.help.app_name} is powered by Hydra.'
    footer: 'Powered by Hydra (https://hydra.cc)

      Use --hydra-help to view Hydra specific help'
    template: '${hydra.help.header}

      == Configuration groups ==

      Compose your configuration from those groups (group=option)


      $APP_CONFIG_GROUPS


      == Config ==

      Override anything in the config (foo.bar=value)


      $CONFIG


      ${hydra.help.footer}'
  hydra_logging:
    version: 1
    formatters:
      simple:
        format: '[%(asctime)s][HYDRA] %(message)s'
    handlers:
      console:
        class: logging.StreamHandler
        formatter: simple
        stream: ext://sys.stdout
    root:
      level: INFO
      handlers:
      - console
    loggers:
      logging_example:
        level: DEBUG
    disable_existing_loggers: false
  job_logging:
    version: 1
    formatters:
      simple:
        format: '[%(asctime)s][%(name)s][%(levelname)s] - %(message)s'
    handlers:
      console:
        class: logging.StreamHandler
        formatter: simple
        stream: ext://sys.stdout
      file:
        class: logging.FileHandler
        formatter: simple
        filename: ${hydra.runtime.output_dir}/${hydra.job.name}.log
    root:
      level: INFO
      handlers:
      - console
      - file
    disable_existing_loggers: false
  env: {}
  mode: MULTIRUN
  searchpath: []
  callbacks: {}
  output_subdir: .hydra
"""


def hydra_yaml(sweep: str, num: int, overrides: list[str], optimizer: str) -> str:
    task = "".join(f"    - {o}\n" for o in overrides)
    return HYDRA_HEAD.replace("SWEEP", sweep) + (
        "  overrides:\n    hydra:\n    - hydra.mode=MULTIRUN\n    task:\n" + task
        + "  job:\n    name: __main__\n    chdir: false\n"
        f"    override_dirname: {','.join(overrides)}\n"
        f"    id: '{num}'\n    num: {num}\n    config_name: config\n    env_set: {{}}\n"
        "    env_copy: []\n  runtime:\n    version: 1.3.2\n    version_base: '1.3'\n"
        f"    cwd: /work\n    output_dir: /work/multirun/{sweep}/{num}\n    choices:\n"
        f"      sweep: null\n      trainer: default\n      optimizer: {optimizer}\n"
        "      data: digits\n      model: resnet18\n      hydra/env: default\n"
        "      hydra/launcher: basic\n      hydra/sweeper: basic\n  verbose: false\n"
    )


def yaml_number(value) -> str:
    """As OmegaConf writes it: YAML reads 1e-05 as a string, 1.0e-05 as a float."""
    text = repr(value)
    return text.replace("e", ".0e") if "e" in text and "." not in text else text


def write_run(run_dir: Path, sweep: str, num: int, optimizer: str, key: str, value, seed: int):
    config = OPTIMIZER[optimizer]
    if key != "optimizer":
        config = re.sub(rf"\b{key}: [^,}}]+", f"{key}: {yaml_number(value)}", config, count=1)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        "model: {name: resnet18, weights: IMAGENET1K_V1, freeze_backbone: false}\n"
        "data: {name: digits, root: data, download: true, batch_size: 128, eval_batch_size: 512, "
        "val_fraction: 0.1, augment: false, image_size: 32, train_limit: null, test_limit: null}\n"
        f"optimizer: {config}\ntrainer: {{epochs: {EPOCHS}, seed: {seed}, device: auto, "
        "objective: auto, progress: true}\n")
    overrides = [f"optimizer={optimizer}", f"trainer.seed={seed}"]
    if key != "optimizer":
        overrides.insert(1, f"optimizer.{key}={value}")
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run_dir / ".hydra" / "hydra.yaml").write_text(hydra_yaml(sweep, num, overrides, optimizer))
    quality = 0.5 + 0.04 * (hash((sweep, str(value))) % 10) + 0.003 * seed
    diverged = seed == 9 and num % 7 == 0
    epochs = 4 if diverged else EPOCHS
    rows = []
    for epoch in range(1, epochs + 1):
        acc = quality * (1 - 0.5 ** epoch)
        rows.append([epoch, 2 / epoch, acc + 0.02, 1.5 / epoch, acc + 0.01, acc + 0.1, 1.6 / epoch,
                     acc, acc + 0.1, 0.001, 3.1, 4000.0])
    (run_dir / "metrics.csv").write_text(
        HEADER + "\n" + "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows))
    final = dict(zip(HEADER.split(","), rows[-1]))
    (run_dir / "summary.json").write_text(json.dumps({
        "status": "diverged" if diverged else "completed", "objective": final["val_acc1"],
        "objective_name": "val_acc1", "epochs_completed": epochs, "epochs_planned": EPOCHS,
        "final": final, "best": final, "wall_seconds": 31.0 * epochs, "device": "cpu",
        "parameters": 11181642, "error": "loss is nan" if diverged else None,
        "versions": {"python": "3.11", "torch": "2.5", "torchvision": "0.20", "optsweep": "0.1.0"},
    }))


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the figure workers)."""
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in used)


def fabricate(root: Path, n_runs: int) -> Path:
    multirun = root / "multirun"
    made = 0
    while made < n_runs:
        for sweep, optimizer, key, values in SWEEPS:
            for i, value in enumerate(values):
                for seed in range(SEEDS):
                    if made == n_runs:
                        return multirun
                    num = i * SEEDS + seed
                    opt = value if key == "optimizer" else optimizer
                    run_dir = multirun / sweep / str(num)
                    if run_dir.exists():  # more runs than the study holds: a second copy of it
                        run_dir = multirun / f"{sweep}_{made // 1000}" / str(num)
                    write_run(run_dir, sweep, num, opt, key, value, seed)
                    made += 1
    return multirun


def fabricate_studies(root: Path) -> list:
    """`STUDIES` as optuna.db files under root/studies (Optuna's public create_trial), read back
    as the report reads them."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(1)
    for sweep, optimizer, keys, pruned in STUDIES:
        folder = root / "studies" / sweep / optimizer
        folder.mkdir(parents=True)
        study = optuna.create_study(study_name=optimizer, direction="maximize",
                                    storage=f"sqlite:///{folder / 'optuna.db'}")
        space = {f"optimizer.{k}": FloatDistribution(*SPACE[k][:2], log=SPACE[k][2]) for k in keys}
        for number in range(STUDY_TRIALS):
            params = {name: float(np.exp(rng.uniform(np.log(d.low), np.log(d.high)))) if d.log
                      else float(rng.uniform(d.low, d.high)) for name, d in space.items()}
            value = 0.9 - 0.04 * (np.log10(params["optimizer.lr"]) + 3) ** 2
            stop = pruned and number % 3 == 2
            epochs = int(rng.integers(1, 6)) if stop else EPOCHS
            study.add_trial(create_trial(
                state=TrialState.PRUNED if stop else TrialState.COMPLETE,
                value=None if stop else value, params=params, distributions=space,
                intermediate_values={e: value * (1 - 0.5 ** e) for e in range(1, epochs + 1)}))
    return optuna_study.find_studies([root / "studies"])[0]


def baseline_modules(rev: str) -> dict[str, types.ModuleType]:
    """The figure modules as they were at `rev`, importing one another under private names
    (``_baseline_figures``...) and everything else from this checkout."""
    modules = {}
    for name in FIGURE_MODULES:
        path = f"optsweep/analysis/{name}.py"
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                                capture_output=True, text=True).stdout
        for other in FIGURE_MODULES:
            source = re.sub(rf"\boptsweep\.analysis\.{other}\b", f"_baseline_{other}", source)
        module = types.ModuleType(f"_baseline_{name}")
        sys.modules[module.__name__] = module  # the figure workers unpickle jobs by module name
        exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
        modules[name] = module
    return modules


def benchmark_tables(n_trials: int) -> dict[str, pd.DataFrame]:
    """A benchmark's trials (value against lr, best near 1e-3 for each optimizer), budget curves
    and performance profile, about `n_trials` trials over WORKLOADS workloads."""
    rng = np.random.default_rng(0)
    optimizers = list(OPTIMIZER)
    per = max(1, n_trials // (WORKLOADS * len(optimizers)))
    rows, times = [], []
    for w in range(WORKLOADS):
        for k, optimizer in enumerate(optimizers):
            lr = 10 ** rng.uniform(-5, -1, per)
            value = 0.9 - 0.04 * (np.log10(lr) + 3) ** 2 - 0.02 * k + rng.normal(0, 0.02, per)
            rows += [{"workload": f"w{w}", "optimizer": optimizer, "trial": t, "value": v,
                      "lr": x} for t, (v, x) in enumerate(zip(value, lr))]
            times.append({"workload": f"w{w}", "optimizer": optimizer,
                          "epochs": float(rng.integers(2, 10)), "seconds": rng.uniform(10, 60)})
    trials = pd.DataFrame(rows)
    return {"trials": trials, "curves": budget_curves(trials, "val_acc1"),
            "profile": performance_profile(pd.DataFrame(times))[0]}


def draw_studies(modules, studies: list, out: Path) -> int:
    """Every figure of every Optuna study with `modules`' functions, saved as write_figures does."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = 0
    for study in studies:
        for kind, figure in modules["optuna_study"].study_figures(study).items():
            save(figure, out / f"{slug(study.sweep)}_{slug(study.name)}_{kind}.png")
            drawn += 1
    return drawn


def draw_all(modules, runset, overview_rows, bench: dict, out: Path) -> int:
    """Every figure the report and the benchmark report draw but the studies', with `modules`'."""
    written = modules["figures"].write_figures(runset, out / "sweeps")
    modules["overview"].write_overview(overview_rows, "test_acc1", "val_acc1", out / "overview.png")
    draw = modules["benchmark_figures"]
    draw.budget_figure(bench["curves"], out / "budget_curves.png")
    draw.profile_figure(bench["profile"], out / "performance_profile.png")
    draw.lr_figure(bench["trials"], "val_acc1", out / "lr_sensitivity.png")
    return sum(len(v) for v in written.values()) + 4


def compare_drawing(runset, root: Path, rev: str, rounds: int) -> str:
    """Old and new drawing timed in turn (ABBA): 'drawing: ...' (every figure) and 'studies: ...'
    (the Optuna studies' figures alone), each with the ratios new/old."""
    old = baseline_modules(rev)
    new = {"figures": sweep_figures, "overview": overview, "benchmark_figures": benchmark_figures,
           "optuna_study": optuna_study}
    table = setting_table(runset, "test_acc1", "val_acc1")
    overview_rows = overview.overview_table(runset, table, "test_acc1", "val_acc1")
    bench = benchmark_tables(len(runset.runs))
    studies = fabricate_studies(root)
    spent = {(name, part): [0.0, 0.0] for name in ("old", "new") for part in ("rest", "studies")}
    counts = {}
    for r in range(rounds):
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            modules, out = (old if name == "old" else new), root / "drawing" / name
            counts["rest"] = timed(spent[name, "rest"], draw_all, modules, runset, overview_rows,
                                   bench, out)
            counts["studies"] = timed(spent[name, "studies"], draw_studies, modules, studies,
                                      out / "studies")
    every = {name: [sum(spent[name, part][i] for part in ("rest", "studies")) for i in (0, 1)]
             for name in ("old", "new")}
    return "\n".join([
        f"drawing: {sum(counts.values())} figures x {rounds} round(s), baseline {rev}: "
        + _ratios(every["old"], every["new"]),
        f"studies: {counts['studies']} figures of {len(studies)} Optuna studies (in the above): "
        + _ratios(spent["old", "studies"], spent["new", "studies"])])


def timed(spent: list[float], draw, *args) -> int:
    """draw(*args), its wall and CPU seconds added to `spent`; what draw returns."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    count = draw(*args)
    spent[0] += time.perf_counter() - t0
    spent[1] += cpu_seconds() - c0
    return count


def _ratios(old: list[float], new: list[float]) -> str:
    (old_wall, old_cpu), (new_wall, new_cpu) = old, new
    return (f"old wall_s={old_wall:.2f} cpu_s={old_cpu:.2f}, "
            f"new wall_s={new_wall:.2f} cpu_s={new_cpu:.2f}; "
            f"ratio_cpu={new_cpu / old_cpu:.3f} ratio_wall={new_wall / old_wall:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="fabricate here and keep the folder")
    parser.add_argument("--baseline", default=BASELINE,
                        help="git revision whose figure code the drawing is compared with")
    parser.add_argument("--rounds", type=int, default=2, help="old and new drawings, ABBA")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="optsweep-bench-"))
    try:
        started = time.perf_counter()
        multirun = fabricate(root, args.runs)
        print(f"fabricated {args.runs} runs x {EPOCHS} epochs in "
              f"{time.perf_counter() - started:.1f} s")
        t0, c0 = time.perf_counter(), cpu_seconds()
        runset = load_runs([multirun])
        t1, c1 = time.perf_counter(), cpu_seconds()
        figures = write_figures(runset, root / "analysis" / "figures")
        t2, c2 = time.perf_counter(), cpu_seconds()
        report = write_report(runset, root / "analysis", figures=figures)
        t3, c3 = time.perf_counter(), cpu_seconds()
        print(f"load:    {t1 - t0:6.2f} s  "
              f"({len(runset.runs)} runs, {len(runset.metrics)} tidy rows)")
        print(f"figures: {t2 - t1:6.2f} s  ({sum(len(v) for v in figures.values())} PNG files)")
        print(f"report:  {t3 - t2:6.2f} s  ({report})")
        # CPU seconds tell what the wall times would be on an idle machine when others share it
        print(f"cpu:     load {c1 - c0:.2f} s, figures {c2 - c1:.2f} s (all workers), "
              f"report {c3 - c2:.2f} s; load average {os.getloadavg()[0]:.2f}")
        print(compare_drawing(runset, root, args.baseline, args.rounds))
        print(f"analysis: runs={len(runset.runs)} load_s={t1 - t0:.2f} plot_s={t2 - t1:.2f} "
              f"total_s={t3 - t0:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
