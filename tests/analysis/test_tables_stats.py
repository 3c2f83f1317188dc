"""Tables and significance verdicts against numbers worked out by hand from the fixtures."""
import math

import pytest
from conftest import write_run
from scipy import stats as scipy_stats

from optsweep.analysis import load_runs
from optsweep.analysis.stats import compare_to_best
from optsweep.analysis.tables import best_settings, display_table, markdown_table, setting_table


def test_setting_table_numbers(messy_sweep):
    table = setting_table(load_runs([messy_sweep])).set_index("setting")
    # lr=1e-3: seeds 0-2 give 0.90, 0.91, 0.92; seed 3 left no summary (unfinished), so it is counted, not averaged
    row = table.loc["lr=0.001"]
    assert row["n"] == 3 and row["runs"] == 4
    assert row["completed"] == 3 and row["unfinished"] == 1
    assert row["test_acc1_mean"] == pytest.approx(0.91)
    assert row["test_acc1_std"] == pytest.approx(0.01)
    assert row["test_acc5_mean"] == pytest.approx(0.96)
    assert row["best_val_epoch"] == 3 and row["wall_s"] == pytest.approx(7.0)
    # lr=0.1 diverged after 2 of 3 epochs: it counts, at its last value 0.10 * 2 / 3
    diverged = table.loc["lr=0.1"]
    assert diverged["n"] == 1 and diverged["diverged"] == 1
    assert diverged["test_acc1_mean"] == pytest.approx(0.10 * 2 / 3, abs=1e-6)  # written rounded to 6 places
    assert math.isnan(diverged["test_acc1_std"])
    assert list(table.index) == ["lr=0.0001", "lr=0.001", "lr=0.01", "lr=0.1"]


def test_best_setting_per_sweep(lr_sweep, optimizer_sweep):
    best = best_settings(setting_table(load_runs([lr_sweep, optimizer_sweep])))
    assert dict(zip(best["sweep"], best["setting"])) == {"adam_lr": "lr=0.001", "compare": "adam"}
    lowest_loss = best_settings(setting_table(load_runs([lr_sweep]), "test_loss"), "test_loss")
    assert len(lowest_loss) == 1  # every setting has the same test loss; the first one wins ties


def test_display_and_markdown(lr_sweep):
    shown = display_table(setting_table(load_runs([lr_sweep])))
    assert shown.loc[1, "test_acc1"] == "0.9100 ± 0.0100 (n=3)"
    text = markdown_table(shown)
    lines = text.splitlines()
    assert lines[0].startswith("| sweep | dataset | setting | test_acc1")
    assert lines[1].startswith("| --- |") and len(lines) == 2 + 3
    assert markdown_table(shown.assign(setting="a|b")).count("a\\|b") == 3


def test_large_difference_is_significant_and_equal_means_are_within_noise(tmp_path):
    sweep = tmp_path / "multirun" / "noise"
    # lr 1e-3: 0.90, 0.91, 0.92 (mean 0.91, sd 0.01); lr 1e-4: 0.60, 0.61, 0.62 (mean 0.61, sd 0.01)
    # lr 1e-2 is overridden to 0.89, 0.93, 0.91: mean 0.91 like the best, sd 0.02
    num = 0
    for lr, accs in ((1e-3, (None,) * 3), (1e-4, (None,) * 3), (1e-2, (0.89, 0.93, 0.91))):
        for seed, acc in enumerate(accs):
            write_run(sweep / str(num), lr=lr, seed=seed, acc=acc, num=num)
            num += 1
    tests = compare_to_best(load_runs([sweep])).set_index("setting")
    assert set(tests["best"]) == {"lr=0.001"}
    # equal variances, n=3: t = 0.30 / sqrt(2 * 0.01**2 / 3) = 36.74, Welch dof = 4
    large = tests.loc["lr=0.0001"]
    t = 0.30 / math.sqrt(2 * 0.01 ** 2 / 3)
    assert large["p_value"] == pytest.approx(2 * scipy_stats.t.sf(t, 4), rel=1e-3)
    assert large["significant"] and large["verdict"].startswith("significant")
    assert large["difference"] == pytest.approx(-0.30)
    null = tests.loc["lr=0.01"]  # same mean: t = 0, p = 1
    assert null["p_value"] == pytest.approx(1.0)
    assert not null["significant"] and null["verdict"].startswith("within noise")


def test_single_seed_is_not_tested(tmp_path):
    write_run(tmp_path / "s" / "0", lr=1e-3)
    write_run(tmp_path / "s" / "1", lr=1e-2, num=1)
    tests = compare_to_best(load_runs([tmp_path]))
    assert list(tests["verdict"]) == ["not tested (needs 2 or more seeds in both settings)"]


def test_best_is_chosen_on_validation_never_on_test(tmp_path):
    from optsweep.analysis.__main__ import main

    sweep = tmp_path / "multirun" / "pick"
    write_run(sweep / "0", lr=1e-3, num=0)  # final test_acc1 0.90, val_acc1 0.91
    write_run(sweep / "1", lr=1e-2, num=1)  # final test_acc1 0.80, val_acc1 0.81
    csv = sweep / "1" / "metrics.csv"  # make lr=1e-2 the validation winner, still worse on test
    lines = csv.read_text().splitlines()
    header, last = lines[0].split(","), lines[-1].split(",")
    last[header.index("val_acc1")] = "0.95"
    csv.write_text("\n".join([*lines[:-1], ",".join(last)]) + "\n")

    table = setting_table(load_runs([sweep]), "test_acc1", "val_acc1")
    assert best_settings(table, "val_acc1")["setting"].tolist() == ["lr=0.01"]
    assert best_settings(table, "test_acc1")["setting"].tolist() == ["lr=0.001"]
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Best on digits (by val_acc1 0.9500): **lr=0.01**, test_acc1 0.8000 (n=1)." in report


def test_tables_show_swept_values_at_three_significant_digits_unless_that_merges_two():
    import pandas as pd

    from optsweep.analysis.sweeps import readable

    names = pd.Series(["lr=0.000998856, weight_decay=0", "lr=2.01945e-05", "adam"])
    assert readable(names).tolist() == ["lr=0.000999, weight_decay=0", "lr=2.02e-05", "adam"]
    close = pd.Series(["lr=0.00100011", "lr=0.00100012"])
    assert readable(close).nunique() == 2  # more digits rather than one name for two settings
