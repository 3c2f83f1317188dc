"""Time to target against sequences and fabricated sweeps worked out by hand."""
import math

import pandas as pd
import pytest
from conftest import write_run

from optsweep.analysis import load_runs
from optsweep.analysis.report import write_report
from optsweep.analysis.targets import display_targets, first_reaching, target_value, time_to_target

SECONDS = [10.0, 12.0, 11.0, 9.0]  # cumulative: 10, 22, 33, 42


def test_an_accuracy_reaches_95_and_99_percent_of_its_best():
    accuracy = [0.40, 0.70, 0.78, 0.80]  # best 0.80: targets 0.76 and 0.792
    assert target_value(0.80, 0.95, "val_acc1") == pytest.approx(0.76)
    assert first_reaching(accuracy, SECONDS, target_value(0.80, 0.95, "val_acc1"),
                          "val_acc1") == (3, pytest.approx(33.0))
    assert first_reaching(accuracy, SECONDS, target_value(0.80, 0.99, "val_acc1"),
                          "val_acc1") == (4, pytest.approx(42.0))
    assert first_reaching([0.5, 0.6], SECONDS, 0.76, "val_acc1") is None


def test_a_loss_reaches_105_and_101_percent_of_its_best():
    loss = [2.0, 1.2, 1.04, 1.0]  # best 1.0: at or below 1.05, then at or below 1.01
    assert target_value(1.0, 0.95, "val_loss") == pytest.approx(1.05)
    assert first_reaching(loss, SECONDS, 1.05, "val_loss") == (3, pytest.approx(33.0))
    assert first_reaching(loss, SECONDS, 1.01, "val_loss") == (4, pytest.approx(42.0))
    assert first_reaching([1.2, 1.1], SECONDS, 1.05, "val_loss") is None


def test_exactly_on_the_target_counts_as_reached():
    assert first_reaching([0.76], [1.0], 0.95 * 0.8, "val_acc1") == (1, 1.0)  # 0.7600000000000001


def test_time_to_target_per_setting(lr_sweep, tmp_path):
    # val_acc1 at epoch e = final_test_acc1 * e / 3 + 0.01; lr=1e-3 seeds 0-2 end at 0.91, 0.92,
    # 0.93: mean curve 0.3133, 0.6167, 0.92, the sweep's best 0.92; 95%: 0.874, 99%: 0.9108.
    # lr=1e-2 ends at mean 0.82 and lr=1e-4 at 0.62: never. Every epoch takes 2.0 s.
    table = time_to_target(load_runs([lr_sweep]), "val_acc1").set_index("setting")
    assert table["best"].unique() == pytest.approx([0.92])
    assert table.loc["lr=0.001", "epoch_95"] == 3 and table.loc["lr=0.001", "seconds_95"] == 6.0
    assert table.loc["lr=0.001", "epoch_99"] == 3
    assert math.isnan(table.loc["lr=0.01", "epoch_95"])
    assert math.isnan(table.loc["lr=0.0001", "epoch_99"])
    shown = display_targets(table.reset_index()).set_index("setting")
    assert shown.loc["lr=0.001", "95% of best"] == "epoch 3 (6.0 s)"
    assert shown.loc["lr=0.01", "99% of best"] == "never"

    write_report(load_runs([lr_sweep]), tmp_path / "out", select="val_acc1", figures={})
    written = pd.read_csv(tmp_path / "out" / "time_to_target.csv", keep_default_na=False)
    assert set(written.loc[written["setting"] == "lr=0.01", "epoch_95"]) == {"never"}
    assert "Time to target" in (tmp_path / "out" / "report.md").read_text()


def test_a_loss_objective_targets_the_lowest_loss(lr_sweep):
    # val_loss = 1.5 / e whatever the lr: the best is 0.5 at epoch 3, 1.05 x best = 0.525 and
    # 1.01 x best = 0.505 are reached only at epoch 3 (epoch 2: 0.75)
    table = time_to_target(load_runs([lr_sweep]), "val_loss")
    assert table["best"].unique() == pytest.approx([0.5])
    assert set(table["epoch_95"]) == {3} and set(table["epoch_99"]) == {3}
    assert display_targets(table).columns[-2:].tolist() == ["1.05 x best", "1.01 x best"]


def test_a_diverged_run_is_counted_at_the_epochs_it_finished(tmp_path):
    write_run(tmp_path / "s" / "0", lr=1e-3)  # val_acc1 0.31, 0.61, 0.91
    # 0.2767 at epoch 1
    write_run(tmp_path / "s" / "1", lr=1e-2, status="diverged", epochs=1, num=1)
    table = time_to_target(load_runs([tmp_path]), "val_acc1").set_index("setting")
    assert table.loc["lr=0.001", "epoch_95"] == 3
    assert math.isnan(table.loc["lr=0.01", "epoch_95"])
