"""load_runs against fabricated run directories: tables equal what was written."""
import json
import logging
import math

import pandas as pd
import pytest
from conftest import EPOCHS, HEADER, final_acc, metric_rows, write_run

from optsweep.analysis import AnalysisInputError, load_runs
from optsweep.contract import Status

METRICS = HEADER.split(",")[1:]


def test_runs_table_has_one_row_per_run_with_its_config_and_final_metrics(lr_sweep):
    runset = load_runs([lr_sweep])
    runs = runset.runs
    assert len(runs) == 9
    assert set(runs["sweep"]) == {"adam_lr"}
    assert set(runs["optimizer"]) == {"adam"} and set(runs["dataset"]) == {"digits"}
    assert set(runs["status"]) == {"completed"}
    for _, row in runs.iterrows():
        lr, seed = row["optimizer.lr"], row["trainer.seed"]
        assert row.final_test_acc1 == pytest.approx(final_acc(lr, seed))
        assert row.final_test_acc5 == pytest.approx(final_acc(lr, seed) + 0.05)
        assert row.epochs_completed == EPOCHS and row.best_epoch == EPOCHS
        assert row.wall_seconds == pytest.approx(2.0 * EPOCHS + 1)
        assert f"optimizer.lr={lr}" in row.overrides
    assert runs["optimizer.weight_decay"].eq(0.0).all()
    assert runs["model.name"].eq("resnet18").all()


def test_tidy_metrics_hold_every_value_written(lr_sweep):
    metrics = load_runs([lr_sweep]).metrics
    assert len(metrics) == 9 * EPOCHS * len(METRICS)
    for column in ("run", "sweep", "epoch", "metric", "value", "optimizer", "dataset", "status",
                   "trainer.seed", "optimizer.lr", "setting"):
        assert column in metrics.columns
    one = metrics[metrics["run"] == str(lr_sweep / "4")]  # lr 1e-3, seed 1
    written = pd.DataFrame(metric_rows(1e-3, 1)).melt(id_vars="epoch", var_name="metric")
    merged = one.merge(written, on=["epoch", "metric"], suffixes=("", "_written"))
    assert len(merged) == EPOCHS * len(METRICS)
    assert (merged["value"] - merged["value_written"]).abs().max() < 1e-12
    assert set(one["setting"]) == {"lr=0.001"}


def test_swept_parameters_are_found_from_what_varies(lr_sweep, optimizer_sweep):
    runset = load_runs([lr_sweep, optimizer_sweep])
    # seed varies in both sweeps, and lr between adam and sgd, but neither is a swept parameter
    assert runset.swept == {"adam_lr": ["optimizer.lr"], "compare": ["optimizer"]}
    assert set(runset.runs.loc[runset.runs["sweep"] == "compare", "setting"]) == {"adam", "sgd"}


def test_two_swept_keys_give_combined_settings(tmp_path):
    sweep = tmp_path / "grid"
    for num, (lr, wd) in enumerate([(1e-3, 0.0), (1e-3, 0.01), (1e-2, 0.0), (1e-2, 0.01)]):
        write_run(sweep / str(num), lr=lr, wd=wd, num=num)
    runset = load_runs([sweep])
    assert runset.swept == {"grid": ["optimizer.lr", "optimizer.weight_decay"]}
    assert "lr=0.01, weight_decay=0.01" in set(runset.runs["setting"])


def test_a_sweeps_keys_keep_its_own_config_order_whatever_is_loaded_beside_it(tmp_path):
    # rmsprop's config holds weight_decay before momentum, sgd's momentum before weight_decay:
    # loaded first, rmsprop's order must not rename sgd's settings (nor reorder them)
    for num, wd in enumerate((0.0, 0.01)):
        write_run(tmp_path / "a_rmsprop" / str(num), optimizer="rmsprop", wd=wd, num=num)
    sgd = tmp_path / "b_sgd"
    for num, (momentum, wd) in enumerate([(0.9, 0.0), (0.0, 0.01)]):
        config = write_run(sgd / str(num), optimizer="sgd", wd=wd, num=num) / ".hydra" / \
            "config.yaml"
        config.write_text(config.read_text().replace("momentum: 0.0", f"momentum: {momentum}"))
    both, alone = load_runs([tmp_path]), load_runs([sgd])
    assert alone.swept["b_sgd"] == ["optimizer.momentum", "optimizer.weight_decay"]
    assert both.swept == {"a_rmsprop": ["optimizer.weight_decay"], "b_sgd": alone.swept["b_sgd"]}
    assert both.runs.loc[both.runs["sweep"] == "b_sgd", "setting"].tolist() == [
        "momentum=0.9, weight_decay=0", "momentum=0, weight_decay=0.01"]


def test_bad_runs_are_skipped_with_one_warning_each(messy_sweep, caplog):
    with caplog.at_level(logging.WARNING):
        runset = load_runs([messy_sweep])
    skipped = dict(runset.skipped)
    assert set(skipped) == {str(messy_sweep / n) for n in ("11", "12", "13")}
    assert "metrics.csv" in skipped[str(messy_sweep / "11")]
    assert "config.yaml is empty" in skipped[str(messy_sweep / "12")]
    assert "summary.json" in skipped[str(messy_sweep / "13")]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3 and all(str(messy_sweep) in m for m in warned)
    assert len(runset.runs) == 11


def test_interrupted_and_diverged_runs_keep_what_they_recorded(messy_sweep):
    runs = load_runs([messy_sweep]).runs.set_index("job")
    interrupted = runs.loc["10"]  # metrics for 2 epochs, no summary.json: killed, or still running
    assert interrupted["status"] == Status.UNFINISHED
    assert interrupted["epochs_completed"] == 2
    assert interrupted["final_test_acc1"] == pytest.approx(metric_rows(1e-3, 3, 2)[-1]["test_acc1"])
    diverged = runs.loc["9"]
    assert diverged["status"] == "diverged" and diverged["error"] == "loss is nan"
    assert diverged["best_test_acc1"] == pytest.approx(metric_rows(1e-1, 0, 2)[-1]["test_acc1"])


def test_a_diverged_runs_finals_are_chance_on_its_classes_and_unknown_without_a_class_count(
        messy_sweep):
    runs = load_runs([messy_sweep]).runs.set_index("job")
    diverged = runs.loc["9"]  # digits: 10 classes, recorded in its summary
    assert (diverged["final_val_acc1"], diverged["final_test_acc5"]) == (0.1, 0.5)
    assert diverged["final_train_loss"] == pytest.approx(math.log(10))
    assert diverged["final_lr"] == 1e-1  # not an accuracy or a loss: as recorded
    summary = messy_sweep / "9" / "summary.json"
    summary.write_text(json.dumps({k: v for k, v in json.loads(summary.read_text()).items()
                                   if k != "classes"}))  # a run recorded before the field
    assert math.isnan(load_runs([messy_sweep]).runs.set_index("job").loc["9", "final_test_acc1"])


def test_summary_without_metrics_uses_the_summary(tmp_path):
    run = write_run(tmp_path / "runs" / "2026-11-27_12-00-00", lr=1e-2, seed=2)
    (run / "metrics.csv").unlink()
    runset = load_runs([run])
    row = runset.runs.iloc[0]
    assert row["sweep"] == "runs"
    assert row["final_test_acc1"] == pytest.approx(final_acc(1e-2, 2))
    assert runset.metrics.empty


def test_runs_without_validation_split_have_no_val_values(tmp_path):
    write_run(tmp_path / "s" / "0", val=False)
    runset = load_runs([tmp_path])
    assert runset.runs["final_val_acc1"].isna().all()
    assert not runset.metrics["metric"].str.startswith("val_").any()
    assert runset.runs["final_test_acc1"].iloc[0] == pytest.approx(final_acc(1e-3, 0))


def test_optimizer_name_falls_back_to_the_target_without_hydra_yaml(tmp_path):
    write_run(tmp_path / "s" / "0", optimizer="rmsprop", hydra_yaml=False)
    write_run(tmp_path / "s" / "1", optimizer="sgd", hydra_yaml=False, num=1)
    assert list(load_runs([tmp_path]).runs["optimizer"]) == ["rmsprop", "sgd"]


def test_mixed_optimizers_and_datasets_stay_apart(tmp_path):
    sweep = tmp_path / "mixed"
    for num, (optimizer, data) in enumerate([("adam", "digits"), ("adam", "cifar10"),
                                             ("sgd", "digits"), ("sgd", "cifar10")]):
        write_run(sweep / str(num), optimizer=optimizer, data=data, num=num)
    runset = load_runs([sweep])
    assert runset.swept["mixed"] == ["optimizer"]
    groups = runset.runs.groupby(["dataset", "setting"]).size()
    assert len(groups) == 4 and (groups == 1).all()


def test_missing_path_and_path_without_runs_are_input_errors(tmp_path):
    with pytest.raises(AnalysisInputError, match="no such file"):
        load_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisInputError, match="holds no run directory"):
        load_runs([tmp_path / "empty"])


def test_nothing_readable_is_an_input_error(tmp_path):
    run = write_run(tmp_path / "s" / "0")
    (run / "summary.json").write_text(json.dumps({"status": "exploded"}))
    with pytest.raises(AnalysisInputError, match="could be read"):
        load_runs([tmp_path])


@pytest.mark.parametrize("params, kind", [
    (["optimizer"], 0),                      # the optimizer comparison comes first
    (["optimizer.weight_decay"], 1),         # then each optimizer's attributes
    (["optimizer.beta1", "optimizer.beta2"], 1),
    (["optimizer.lr"], 2),                   # lr sweeps last,
    (["optimizer", "optimizer.lr"], 2),      # also the lr grid over several optimizers
])
def test_sweep_kind_follows_the_study_order(params, kind):
    from optsweep.analysis.sweeps import sweep_kind

    assert sweep_kind(params) == kind


def test_sweeps_are_named_by_their_path_below_the_analysed_folder(tmp_path):
    # python -m optsweep.analysis multirun/ over an lr search filed per optimizer and the demo
    for num, lr in enumerate((1e-4, 1e-3)):
        write_run(tmp_path / "lr_search" / "adam" / str(num), lr=lr, num=num)
        write_run(tmp_path / "lr_search" / "sgd" / str(num), optimizer="sgd", lr=lr, num=num)
    for num, optimizer in enumerate(("adam", "sgd")):
        write_run(tmp_path / "quickstart" / str(num), optimizer=optimizer, num=num)
    assert set(load_runs([tmp_path]).sweeps) == {"lr_search/adam", "lr_search/sgd", "quickstart"}
    # the sweep folder itself: its name
    assert load_runs([tmp_path / "lr_search" / "adam"]).sweeps == ["adam"]


def test_a_betas_pair_is_the_record_of_beta1_and_beta2_as_it_won_over_them(tmp_path):
    write_run(tmp_path / "s" / "0", num=0)
    paired = write_run(tmp_path / "s" / "1", num=1)
    config = paired / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("betas: null", "betas: [0.8, 0.99]"))
    runs = load_runs([tmp_path]).runs.set_index("job")
    assert (runs.loc["0", "optimizer.beta1"], runs.loc["0", "optimizer.beta2"]) == (0.9, 0.999)
    assert (runs.loc["1", "optimizer.beta1"], runs.loc["1", "optimizer.beta2"]) == (0.8, 0.99)
