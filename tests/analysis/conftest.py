"""Fixtures that fabricate run directories in the training core's layout (the metrics carry the
columns these tests read: no ``lr_last``, as in runs written before that column existed).

The writer here is deliberately independent of optsweep.analysis: it spells out the files of the
run-directory contract (.hydra/config.yaml, hydra.yaml, overrides.yaml, metrics.csv, summary.json)
so that the loader is tested against the contract, not against its own idea of it.

Fabricated numbers are simple on purpose, so that expected values can be worked out by hand:
final test_acc1 = BASE_ACC[lr] + 0.01 * seed, test_acc5 = test_acc1 + 0.05.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

HEADER = ("epoch,train_loss,train_acc1,val_loss,val_acc1,val_acc5,test_loss,test_acc1,test_acc5,"
          "lr,epoch_seconds,train_images_per_s")
TARGETS = {"adam": "torch.optim.Adam", "sgd": "torch.optim.SGD", "adagrad": "torch.optim.Adagrad",
           "rmsprop": "torch.optim.RMSprop"}
OPTIMIZER_KEYS = {
    "adam": "{_target_: torch.optim.Adam, _partial_: true, lr: %(lr)r, beta1: 0.9, beta2: 0.999, "
            "betas: null, eps: 1.0e-08, weight_decay: %(wd)r, amsgrad: false, foreach: null, "
            "maximize: false, capturable: false, differentiable: false, fused: null}",
    "sgd": "{_target_: torch.optim.SGD, _partial_: true, lr: %(lr)r, momentum: 0.0, "
           "dampening: 0.0, weight_decay: %(wd)r, nesterov: false, maximize: false, foreach: null}",
    "adagrad": "{_target_: torch.optim.Adagrad, _partial_: true, lr: %(lr)r, lr_decay: 0.0, "
               "weight_decay: %(wd)r, initial_accumulator_value: 0.0, eps: 1.0e-10, foreach: null}",
    "rmsprop": "{_target_: torch.optim.RMSprop, _partial_: true, lr: %(lr)r, alpha: 0.99, "
               "eps: 1.0e-08, weight_decay: %(wd)r, momentum: 0.0, centered: false}",
}
BASE_ACC = {1e-4: 0.60, 1e-3: 0.90, 1e-2: 0.80, 1e-1: 0.10}
EPOCHS = 3

HYDRA_YAML = """\
hydra:
  run:
    dir: multirun/runs/${now:%%Y-%%m-%%d_%%H-%%M-%%S_%%f}
  sweep:
    dir: %(sweep_dir)s
    subdir: ${hydra.job.num}
  launcher:
    _target_: hydra._internal.core_plugins.basic_launcher.BasicLauncher
  sweeper:
    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper
    max_batch_size: null
    params: null
  hydra_logging:
    version: 1
    formatters:
      simple:
        format: '[%%(asctime)s][HYDRA] %%(message)s'
    root:
      level: INFO
  mode: MULTIRUN
  searchpath: []
  callbacks: {}
  output_subdir: .hydra
  overrides:
    hydra:
    - hydra.mode=MULTIRUN
    task:
%(task)s
  job:
    name: __main__
    chdir: false
    override_dirname: %(dirname)s
    id: '%(num)s'
    num: %(num)s
    config_name: config
  runtime:
    version: 1.3.2
    version_base: '1.3'
    cwd: /work/main
    output_dir: %(out)s
    choices:
      sweep: null
      trainer: default
      optimizer: %(optimizer)s
      data: %(data)s
      model: resnet18
      hydra/launcher: basic
      hydra/sweeper: basic
  verbose: false
"""


def final_acc(lr: float, seed: int) -> float:
    return round(BASE_ACC[lr] + 0.01 * seed, 6)


def metric_rows(lr: float, seed: int, epochs: int = EPOCHS, val: bool = True, acc=None,
                val_acc=None) -> list[dict]:
    """Per-epoch rows; test_acc1 climbs linearly to `acc` (default final_acc(lr, seed)) at EPOCHS,
    val_acc1 0.01 above it or linearly to `val_acc`."""
    rows = []
    final = final_acc(lr, seed) if acc is None else acc
    for epoch in range(1, epochs + 1):
        acc = round(final * epoch / EPOCHS, 6)
        rows.append({
            "epoch": epoch, "train_loss": round(2.0 / epoch + 0.1 * seed, 6),
            "train_acc1": round(acc + 0.02, 6),
            "val_loss": round(1.5 / epoch, 6) if val else None,
            "val_acc1": (round(acc + 0.01, 6) if val_acc is None
                         else round(val_acc * epoch / EPOCHS, 6)) if val else None,
            "val_acc5": round(acc + 0.06, 6) if val else None,
            "test_loss": round(1.6 / epoch, 6), "test_acc1": acc, "test_acc5": round(acc + 0.05, 6),
            "lr": lr, "epoch_seconds": 2.0, "train_images_per_s": 500.0,
        })
    return rows


def csv_text(rows: list[dict]) -> str:
    cells = lambda row: ",".join("" if row[k] is None else repr(row[k]) for k in HEADER.split(","))  # noqa: E731
    return HEADER + "\n" + "".join(cells(row) + "\n" for row in rows)


def write_run(run_dir: Path, *, optimizer="adam", lr=1e-3, wd=0.0, seed=0, data="digits",
              status="completed", epochs=EPOCHS, val=True, summary=True, num=0, extra=(), acc=None,
              hydra_yaml=True, val_acc=None):
    """One run directory in the contract format; `extra` adds override strings."""
    hydra = run_dir / ".hydra"
    hydra.mkdir(parents=True)
    opt = OPTIMIZER_KEYS[optimizer] % {"lr": lr, "wd": wd}
    (hydra / "config.yaml").write_text(
        "model: {name: resnet18, weights: IMAGENET1K_V1, freeze_backbone: false}\n"
        f"data: {{name: {data}, root: data, download: true, batch_size: 128, eval_batch_size: 512, "
        f"val_fraction: {0.1 if val else 0.0}, augment: false, image_size: 32, train_limit: null, "
        "test_limit: null}\n"
        f"optimizer: {opt}\n"
        f"trainer: {{epochs: {EPOCHS}, seed: {seed}, device: auto, objective: auto, "
        "progress: true}\n"
    )
    overrides = [f"optimizer={optimizer}", f"optimizer.lr={lr}", f"trainer.seed={seed}", *extra]
    (hydra / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if hydra_yaml:
        (hydra / "hydra.yaml").write_text(HYDRA_YAML % {
            "sweep_dir": run_dir.parent, "task": "".join(f"    - {o}\n" for o in overrides),
            "dirname": ",".join(sorted(overrides)), "num": num, "out": run_dir,
            "optimizer": optimizer, "data": data,
        })
    rows = metric_rows(lr, seed, epochs, val, acc, val_acc)
    (run_dir / "metrics.csv").write_text(csv_text(rows))
    if summary:
        best = max(rows, key=lambda r: (r["val_acc1"] or 0, -r["epoch"])) if rows else None
        (run_dir / "summary.json").write_text(json.dumps({
            "status": status, "objective": best["val_acc1"] if best else None,
            "objective_name": "val_acc1", "epochs_completed": len(rows), "epochs_planned": EPOCHS,
            "final": rows[-1] if rows else None, "best": best, "wall_seconds": 2.0 * len(rows) + 1,
            "device": "cpu", "parameters": 11_000_000, "classes": 10,  # digits' ten
            "versions": {"python": "3.11", "torch": "2.5", "torchvision": "0.20",
                         "optsweep": "0.1.0"},
            "error": "loss is nan" if status == "diverged" else None,
        }))
    return run_dir


def write_study(folder: Path, name: str = "adam_lr", direction: str = "maximize") -> Path:
    """folder/optuna.db holding one study of 12 trials over lr (log, 1e-5..1e-1) and weight_decay:
    objective = 0.9 - 0.05 * (log10(lr) + 3.2)^2 - weight_decay (no two trials alike), reported
    at steps 1-3 as objective * step / 3; trials 1, 5 and 9 pruned after step (number % 3) + 1,
    trial 3 failed after reporting step 1. Written through Optuna's public ``create_trial`` and
    ``add_trial``."""
    import math

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}",
                                direction=direction)
    space = {"optimizer.lr": FloatDistribution(1e-5, 1e-1, log=True),
             "optimizer.weight_decay": FloatDistribution(0.0, 0.1)}
    for number in range(12):
        lr, wd = 10 ** (-5 + (number * 5 % 12) / 3), 0.01 * (number % 4)
        value = 0.9 - 0.05 * (math.log10(lr) + 3.2) ** 2 - wd
        state = (TrialState.PRUNED if number % 4 == 1 else TrialState.FAIL if number == 3
                 else TrialState.COMPLETE)
        steps = {TrialState.PRUNED: number % 3 + 1, TrialState.FAIL: 1}.get(state, 3)
        study.add_trial(create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None,
            params={"optimizer.lr": lr, "optimizer.weight_decay": wd}, distributions=space,
            intermediate_values={step: value * step / 3 for step in range(1, steps + 1)}))
    return folder


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def lr_sweep(tmp_path) -> Path:
    """multirun/adam_lr: Adam at lr 1e-4, 1e-3, 1e-2, seeds 0-2 (9 runs, all completed)."""
    sweep = tmp_path / "multirun" / "adam_lr"
    num = 0
    for lr in (1e-4, 1e-3, 1e-2):
        for seed in range(3):
            write_run(sweep / str(num), lr=lr, seed=seed, num=num)
            num += 1
    return sweep


@pytest.fixture
def messy_sweep(lr_sweep) -> Path:
    """adam_lr plus: a diverged run (lr 0.1, 2 epochs), an interrupted run without summary.json
    (lr 1e-3, seed 3, 2 epochs), a run with a truncated metrics.csv, one with an empty config.yaml,
    and one whose summary.json is not JSON."""
    write_run(lr_sweep / "9", lr=1e-1, seed=0, status="diverged", epochs=2, num=9)
    write_run(lr_sweep / "10", lr=1e-3, seed=3, epochs=2, summary=False, num=10)
    truncated = write_run(lr_sweep / "11", lr=1e-3, seed=4, num=11)
    text = (truncated / "metrics.csv").read_text()
    (truncated / "metrics.csv").write_text(text[: len(text) - 20])
    empty = write_run(lr_sweep / "12", lr=1e-3, seed=5, num=12)
    (empty / ".hydra" / "config.yaml").write_text("")
    broken = write_run(lr_sweep / "13", lr=1e-3, seed=6, num=13)
    (broken / "summary.json").write_text('{"status": "completed", "objective": 0.')
    return lr_sweep


@pytest.fixture
def optimizer_sweep(tmp_path) -> Path:
    """multirun/compare: adam (lr 1e-3) and sgd (lr 1e-2), seeds 0-1, each at its own lr."""
    sweep = tmp_path / "multirun" / "compare"
    num = 0
    for optimizer, lr in (("adam", 1e-3), ("sgd", 1e-2)):
        for seed in range(2):
            write_run(sweep / str(num), optimizer=optimizer, lr=lr, seed=seed, num=num)
            num += 1
    return sweep
