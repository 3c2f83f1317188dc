"""One training run end to end on fabricated or bundled data."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torchvision

from optsweep.contract import CLASSES_FIELD, METRIC_COLUMNS, TIME_COLUMNS
from optsweep.errors import ConfigError, DataError
from optsweep.train import train
from tests.conftest import QUICK, make_cfg


def read_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_one_epoch_on_fabricated_cifar100_writes_every_file(tmp_path, cifar_root, cached_weights):
    cfg = make_cfg([f"data.root={cifar_root}", "trainer.epochs=1", "data.batch_size=32",
                    "trainer.progress=false"])
    objective = train(cfg, tmp_path).objective
    rows = read_rows(tmp_path)
    assert tuple(rows[0].keys()) == METRIC_COLUMNS and len(rows) == 1
    row = {k: float(v) for k, v in rows[0].items() if v != ""}  # step_size_estimate: Prodigy's
    for key in ("train_acc1", "val_acc1", "val_acc5", "test_acc1", "test_acc5"):
        assert 0.0 <= row[key] <= 1.0
    assert row["val_acc1"] <= row["val_acc5"] and row["test_acc1"] <= row["test_acc5"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["objective_name"] == "val_acc1"
    assert summary["objective"] == objective == row["val_acc1"]
    assert summary["epochs_completed"] == 1 and summary["best"]["epoch"] == 1
    resnet18_100 = torchvision.models.resnet18(num_classes=100)
    assert summary["parameters"] == sum(p.numel() for p in resnet18_100.parameters())
    assert summary[CLASSES_FIELD] == 100  # a diverged run's chance, in the analysis
    assert set(summary["versions"]) == {"python", "torch", "torchvision", "optsweep"}
    assert not (tmp_path / "checkpoint.pt").exists()  # removed once the run completed


@pytest.mark.slow
def test_objective_falls_back_to_test_without_val_split(tmp_path):
    objective = train(make_cfg([*QUICK, "data.val_fraction=0"]), tmp_path).objective
    row = read_rows(tmp_path)[0]
    assert row["val_acc1"] == "" and objective == float(row["test_acc1"])


@pytest.mark.slow
def test_eval_batch_size_does_not_change_test_metrics(tmp_path):
    results = []
    for size in (7, 1000):
        run_dir = tmp_path / str(size)
        train(make_cfg([*QUICK, f"data.eval_batch_size={size}"]), run_dir)
        results.append(read_rows(run_dir)[0])
    small, large = results
    for key in ("test_acc1", "test_acc5", "val_acc1", "val_acc5"):
        assert small[key] == large[key], key
    for key in ("test_loss", "val_loss"):  # summed in float64; convolution order may differ
        assert math.isclose(float(small[key]), float(large[key]), rel_tol=1e-6), key


def test_huge_lr_diverges_with_a_finite_objective(tmp_path):
    cfg = make_cfg([*QUICK, "trainer.epochs=2", "optimizer.lr=1e6"])
    objective = train(cfg, tmp_path).objective
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and math.isfinite(objective) and objective == 0.0
    rows = read_rows(tmp_path) if (tmp_path / "metrics.csv").exists() else []
    assert summary["epochs_completed"] == len(rows) < 2  # finished epochs kept, none after
    assert not (tmp_path / "checkpoint.pt").exists()  # a rerun would only diverge again
    written = (tmp_path / "summary.json").stat().st_mtime_ns
    again = train(make_cfg([*QUICK, "trainer.epochs=2", "optimizer.lr=1e6"]), tmp_path).objective
    assert again == objective and (tmp_path / "summary.json").stat().st_mtime_ns == written


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(make_cfg([*QUICK, "trainer.epochs=2", f"trainer.seed={seed}"]), tmp_path / name)
        runs.append([{k: v for k, v in r.items() if k not in TIME_COLUMNS}
                     for r in read_rows(tmp_path / name)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.slow
def test_rerun_skips_a_completed_run_and_resumes_an_unfinished_one(tmp_path):
    reference = tmp_path / "reference"
    train(make_cfg([*QUICK, "trainer.epochs=3"]), reference)
    expected = [{k: v for k, v in r.items() if k not in TIME_COLUMNS}
                for r in read_rows(reference)]

    run_dir = tmp_path / "resumed"

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt  # as Ctrl-C or a scheduler's SIGTERM would

    with pytest.raises(KeyboardInterrupt):
        train(make_cfg([*QUICK, "trainer.epochs=3"]), run_dir, on_epoch=stop_after_two)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and (run_dir / "checkpoint.pt").exists()

    epochs_trained = []
    train(make_cfg([*QUICK, "trainer.epochs=3"]), run_dir,
          on_epoch=lambda epoch, row: epochs_trained.append(epoch))
    assert epochs_trained == [3]  # epochs 1-2 came from the checkpoint
    resumed = [{k: v for k, v in r.items() if k not in TIME_COLUMNS}
               for r in read_rows(run_dir)]
    assert resumed == expected

    before = (run_dir / "metrics.csv").stat().st_mtime_ns
    train(make_cfg([*QUICK, "trainer.epochs=3"]), run_dir,
          on_epoch=lambda *a: epochs_trained.append(0))
    assert epochs_trained == [3] and (run_dir / "metrics.csv").stat().st_mtime_ns == before


def test_bad_config_is_recorded_and_raised_before_training(tmp_path):
    with pytest.raises(ConfigError, match="optimizer.lr"):
        train(make_cfg([*QUICK, "optimizer.lr=-1"]), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "optimizer.lr" in summary["error"]
    assert not (tmp_path / "metrics.csv").exists()


def test_missing_dataset_fails_before_training(tmp_path, no_network):
    with pytest.raises(DataError, match="data=digits"):
        train(make_cfg([f"data.root={tmp_path / 'nothing'}", "model.weights=null",
                        "trainer.progress=false"]), tmp_path / "run")


SLOW = pytest.mark.slow


@pytest.mark.parametrize("extra", [["data.augment=true"],
                                   pytest.param(["trainer.precision=bf16"], marks=SLOW),
                                   ["trainer.channels_last=false"],
                                   pytest.param(["data.image_size=48"], marks=SLOW),
                                   ["optimizer=rmsprop", "optimizer.centered=true"]])
def test_options_run_one_epoch(tmp_path, extra):
    objective = train(make_cfg([*QUICK, "data.train_limit=40", *extra]), tmp_path).objective
    assert math.isfinite(objective)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_early_stopping_ends_the_run_and_best_pt_holds_the_best_epochs_weights(tmp_path):
    import torch

    # lr 0: only batch-norm statistics move, so the validation accuracy soon stops improving
    frozen = [*QUICK, "optimizer.lr=0"]
    outcome = train(make_cfg([*frozen, "trainer.epochs=6", "trainer.early_stop_patience=1",
                              "trainer.keep_best=true"]), tmp_path / "stopped")
    summary = json.loads((tmp_path / "stopped" / "summary.json").read_text())
    best = summary["best"]["epoch"]
    assert summary["status"] == outcome.status == "early_stopped"
    assert summary["epochs_completed"] == best + 1 < 6  # one epoch without improvement
    assert outcome.objective == float(read_rows(tmp_path / "stopped")[-1]["val_acc1"])
    assert not (tmp_path / "stopped" / "checkpoint.pt").exists()
    # the same run trained to its best epoch only: its last weights are best.pt
    train(make_cfg([*frozen, f"trainer.epochs={best}", "trainer.keep_checkpoint=true"]),
          tmp_path / "to_best")
    kept = torch.load(tmp_path / "stopped" / "best.pt", weights_only=True)
    at_best = torch.load(tmp_path / "to_best" / "checkpoint.pt", weights_only=True)["model"]
    assert kept.keys() == at_best.keys()
    assert all(torch.equal(kept[k], at_best[k]) for k in kept)  # batch-norm statistics included


@pytest.mark.parametrize("name", [
    "mobilenet_v3_small", *(pytest.param(name, marks=SLOW) for name in (
        "resnet50", "efficientnet_b0", "convnext_tiny", "regnet_x_400mf", "vit_b_32", "swin_t"))])
def test_each_family_trains_a_step_and_evaluates(tmp_path, name):
    overrides = [*QUICK, f"model.name={name}", "data.train_limit=20", "data.test_limit=10"]
    assert train(make_cfg(overrides), tmp_path).status == "completed"
    assert float(read_rows(tmp_path)[0]["train_loss"]) > 0


@pytest.mark.slow
def test_resnet_with_the_cifar_stem_trains(tmp_path):
    overrides = [*QUICK, "model.cifar_stem=true", "data.train_limit=20", "data.test_limit=10"]
    assert train(make_cfg(overrides), tmp_path).status == "completed"


def test_a_model_too_big_for_the_image_size_is_refused_before_any_data(tmp_path, no_network):
    with pytest.raises(ConfigError, match="data.image_size=32.*at least 75.*inception_v3"):
        train(make_cfg([*QUICK, "model.name=inception_v3", "data.root=/nonexistent"]), tmp_path)


@pytest.mark.parametrize("optimizer, passes_per_step", [
    (["optimizer=sgd"], 1),
    (["optimizer=lbfgs", "optimizer.lr=0.001", "optimizer.max_iter=3"], None)])
def test_an_epoch_records_its_steps_passes_and_evaluation_time(tmp_path, optimizer,
                                                               passes_per_step):
    # 54 training images (60 less the validation tenth) in batches of 16: ceil(54 / 16) = 4 steps
    train(make_cfg([*QUICK, *optimizer]), tmp_path)
    row = {k: float(v) for k, v in read_rows(tmp_path)[0].items() if v != ""}
    assert row["train_steps"] == 4 and row["eval_seconds"] > 0
    if passes_per_step is not None:
        assert row["train_passes"] == passes_per_step * row["train_steps"]
    else:  # LBFGS evaluates the batch up to max_iter times a step: more passes than steps
        assert row["train_passes"] > row["train_steps"]
