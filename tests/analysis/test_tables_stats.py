"""Tables and significance verdicts against numbers worked out by hand from the fixtures."""
import math

import pandas as pd
import pytest
from conftest import write_run
from scipy import stats as scipy_stats

from optsweep.analysis import load_runs
from optsweep.analysis.report import write_report
from optsweep.analysis.stats import (
    BEYOND_NOISE,
    Verdict,
    compare_to_best,
    holm,
    holm_verdicts,
    judge,
    verdict,
)
from optsweep.analysis.tables import (
    best_settings,
    display_table,
    epoch_text,
    markdown_table,
    setting_table,
)


def test_setting_table_numbers(messy_sweep):
    table = setting_table(load_runs([messy_sweep])).set_index("setting")
    # lr=1e-3: seeds 0-2 give 0.90, 0.91, 0.92; seed 3 left no summary (unfinished), so it is
    # counted, not averaged
    row = table.loc["lr=0.001"]
    assert row["n"] == 3 and row["runs"] == 4
    assert row["completed"] == 3 and row["unfinished"] == 1
    assert row["test_acc1_mean"] == pytest.approx(0.91)
    assert row["test_acc1_std"] == pytest.approx(0.01)
    assert row["test_acc5_mean"] == pytest.approx(0.96)
    assert row["best_val_epoch"] == 3 and row["wall_s"] == pytest.approx(7.0)
    # lr=0.1 diverged after 2 of 3 epochs: it counts at chance (digits' 10 classes), not at its
    # last finite epoch's 0.10 * 2 / 3
    diverged = table.loc["lr=0.1"]
    assert diverged["n"] == 1 and diverged["diverged"] == 1
    assert diverged["test_acc1_mean"] == pytest.approx(0.1)
    assert math.isnan(diverged["test_acc1_std"])
    assert list(table.index) == ["lr=0.0001", "lr=0.001", "lr=0.01", "lr=0.1"]


def test_a_seed_that_diverged_in_epoch_1_stays_in_n_at_chance_in_the_means_and_the_test(tmp_path):
    sweep = tmp_path / "s"
    for seed in range(3):  # lr=1e-2: test_acc1 0.80, 0.81, 0.82
        write_run(sweep / str(seed), lr=1e-2, seed=seed, num=seed)
    for seed in range(2):  # lr=1e-3: 0.90, 0.91, then seed 2 diverged before any epoch ended
        write_run(sweep / str(3 + seed), lr=1e-3, seed=seed, num=3 + seed)
    write_run(sweep / "5", lr=1e-3, seed=2, num=5, status="diverged", epochs=0)
    runset = load_runs([sweep])
    row = setting_table(runset).set_index("setting").loc["lr=0.001"]
    assert row["n"] == 3 and row["diverged"] == 1 and row["completed"] == 2
    # chance on digits' 10 classes: top-1 1/10, top-5 5/10, loss ln(10) beside 1.6 / 3 epochs
    assert row["test_acc1_mean"] == pytest.approx((0.90 + 0.91 + 0.10) / 3)
    assert row["test_acc5_mean"] == pytest.approx((0.95 + 0.96 + 0.50) / 3)
    assert setting_table(runset, "test_loss").set_index("setting").loc[
        "lr=0.001", "test_loss_mean"] == pytest.approx((2 * 0.533333 + math.log(10)) / 3)
    test = compare_to_best(runset).set_index("setting").loc["lr=0.001"]
    assert test["best"] == "lr=0.01" and test["n"] == 3
    welch = scipy_stats.ttest_ind([0.80, 0.81, 0.82], [0.90, 0.91, 0.10], equal_var=False)
    assert test["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    shown = display_table(setting_table(runset)).set_index("setting").loc["lr=0.001"]
    assert "n=3" in shown["test_acc1"] and shown["status"] == "completed 2, diverged 1"


def test_the_95_percent_interval_is_the_t_interval_over_seeds(lr_sweep):
    table = setting_table(load_runs([lr_sweep])).set_index("setting")
    # lr=1e-3: 0.90, 0.91, 0.92 -> sd 0.01; t(0.975, 2 dof) = 4.302653 from a t-table
    assert table.loc["lr=0.001", "test_acc1_ci95"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3),
                                                                    rel=1e-6)
    assert table.loc["lr=0.001", "test_acc1_std"] == pytest.approx(0.01)


def test_a_single_run_has_no_interval(tmp_path):
    write_run(tmp_path / "s" / "0", lr=1e-3)
    table = setting_table(load_runs([tmp_path]))
    assert math.isnan(table.loc[0, "test_acc1_ci95"])
    assert display_table(table).loc[0, "test_acc1"] == "0.9000 (n=1)"


def test_holm_adjusts_by_rank_and_keeps_the_order():
    # sorted 0.01, 0.02, 0.04 times 3, 2, 1: 0.03, 0.04, 0.04 (already monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # 0.01 * 3 = 0.03; 0.011 * 2 = 0.022, raised to the 0.03 before it; 0.5 * 1 = 0.5; capped at 1
    assert holm([0.5, 0.011, 0.01]) == pytest.approx([0.5, 0.03, 0.03])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # 0.6 * 2 = 1.2 -> 1
    adjusted = holm([math.nan, 0.02])  # an untested comparison is not counted: k = 1
    assert math.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.02)


def comparison(setting, p, sweep="s"):
    return {"sweep": sweep, "dataset": "digits", "setting": setting, "n_best": 3, "n": 3,
            "difference": -0.1, "p_value": p}


def test_holm_verdicts_correct_within_each_sweep():
    rows = holm_verdicts([comparison("a", 0.01), comparison("b", 0.02), comparison("c", 0.04),
                          comparison("d", 0.04, sweep="other")])
    by = {(r["sweep"], r["setting"]): r for r in rows}
    # three comparisons in s: 0.01 * 3 = 0.03, 0.02 * 2 = 0.04, 0.04 * 1 = 0.04: all below 0.05
    assert [by["s", x]["p_adjusted"] for x in "abc"] == pytest.approx([0.03, 0.04, 0.04])
    assert all(by["s", x]["comparisons"] == 3 and by["s", x]["significant"] for x in "abc")
    assert by["s", "a"]["verdict"] == "worse beyond noise (Holm p=0.03)"  # difference -0.1
    assert by["s", "a"]["outcome"] == Verdict.WORSE
    assert by["s", "a"]["p_value"] == 0.01  # the raw p-value stays
    # the other sweep is its own family of one: no correction
    assert by["other", "d"]["p_adjusted"] == pytest.approx(0.04)
    assert by["other", "d"]["verdict"] == "worse beyond noise (p=0.04)"


def test_a_raw_significance_can_be_within_noise_after_holm():
    # four comparisons: 0.01 * 4 = 0.04, 0.02 * 3 = 0.06, 0.04 * 2 = 0.08, 0.3 * 1 = 0.3
    rows = holm_verdicts([comparison(x, p) for x, p in zip("abcd", (0.02, 0.01, 0.3, 0.04))])
    assert [r["p_adjusted"] for r in rows] == pytest.approx([0.06, 0.04, 0.3, 0.08])
    assert [r["significant"] for r in rows] == [False, True, False, False]
    assert rows[0]["verdict"] == "within noise (Holm p=0.06)"


def test_best_setting_per_sweep(lr_sweep, optimizer_sweep):
    best = best_settings(setting_table(load_runs([lr_sweep, optimizer_sweep])))
    assert dict(zip(best["sweep"], best["setting"])) == {"adam_lr": "lr=0.001", "compare": "adam"}
    lowest_loss = best_settings(setting_table(load_runs([lr_sweep]), "test_loss"), "test_loss")
    assert len(lowest_loss) == 1  # every setting has the same test loss; the first one wins ties


def test_display_and_markdown(lr_sweep):
    shown = display_table(setting_table(load_runs([lr_sweep])))
    # 95% CI half-width: t(0.975, 2 dof) = 4.3027 (a t-table) * 0.01 / sqrt(3) = 0.0248
    assert shown.loc[1, "test_acc1"] == "0.9100 ± 0.0248 (95% CI; sd 0.0100, n=3)"
    text = markdown_table(shown)
    lines = text.splitlines()
    assert lines[0].startswith("| sweep | dataset | setting | test_acc1")
    assert lines[1].startswith("| --- |") and len(lines) == 2 + 3
    assert markdown_table(shown.assign(setting="a|b")).count("a\\|b") == 3


def test_a_mean_epoch_reads_as_an_integer_when_it_is_one():
    assert [epoch_text(v) for v in (4.0, 3.5, 10.0, float("nan"))] == ["4", "3.5", "10", "–"]


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
    assert large["significant"] and large["verdict"].startswith("worse beyond noise")
    assert large["outcome"] == Verdict.WORSE
    assert large["difference"] == pytest.approx(-0.30)
    # two comparisons: Holm doubles the smaller p-value and leaves the larger (1) at 1
    assert set(tests["comparisons"]) == {2}
    assert large["p_adjusted"] == pytest.approx(2 * large["p_value"])
    null = tests.loc["lr=0.01"]  # same mean: t = 0, p = 1
    assert null["p_value"] == pytest.approx(1.0)
    assert not null["significant"] and null["verdict"].startswith("within noise")
    assert null["outcome"] == Verdict.TIED
    assert null["p_adjusted"] == pytest.approx(1.0)
    write_report(load_runs([sweep]), tmp_path / "out", figures={})
    assert "Holm-corrected for 2 comparisons" in (tmp_path / "out" / "report.md").read_text()
    written = pd.read_csv(tmp_path / "out" / "significance.csv")
    assert {"p_value", "p_adjusted", "comparisons"} <= set(written.columns)


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


def test_a_verdict_is_signed_by_the_metric_direction():
    # difference = setting - best; on accuracy higher is better, on a loss lower is
    assert judge(0.01, 3, 3, +0.02) == Verdict.BETTER
    assert judge(0.01, 3, 3, -0.02) == Verdict.WORSE
    assert judge(0.01, 3, 3, -0.02, lower=True) == Verdict.BETTER
    assert judge(0.01, 3, 3, +0.02, lower=True) == Verdict.WORSE
    assert judge(0.2, 3, 3, +0.02) == Verdict.TIED
    assert judge(0.01, 1, 3, +0.02) == Verdict.UNTESTED
    assert judge(float("nan"), 3, 3, 0.0) == Verdict.TIED
    assert verdict(0.01, 3, 3, +0.02, p_name="Holm p") == "better beyond noise (Holm p=0.01)"
    assert set(BEYOND_NOISE) == {Verdict.BETTER, Verdict.WORSE}


def test_the_best_on_validation_can_be_beaten_on_test_and_is_said_so(tmp_path):
    # the review's case: A val (.90, .91, .90) test (.70, .71, .70); B val (.85, .86, .85) test
    # (.80, .81, .80). A is chosen on validation; on test B is 0.10 higher, Welch p = 2.9e-5.
    sweep = tmp_path / "multirun" / "signed"
    num = 0
    for lr, vals, tests in ((1e-3, (.90, .91, .90), (.70, .71, .70)),
                            (1e-4, (.85, .86, .85), (.80, .81, .80))):
        for seed, (val, test) in enumerate(zip(vals, tests)):
            write_run(sweep / str(num), lr=lr, seed=seed, acc=test, val_acc=val, num=num)
            num += 1
    row = compare_to_best(load_runs([sweep]), "test_acc1", select="val_acc1").iloc[0]
    assert (row["best"], row["setting"]) == ("lr=0.001", "lr=0.0001")
    assert row["difference"] == pytest.approx(0.10)
    assert row["p_value"] == pytest.approx(2.9e-5, rel=0.05)
    assert row["outcome"] == Verdict.BETTER and row["verdict"].startswith("better beyond noise")
