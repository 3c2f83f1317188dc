"""Performance profiles (Dolan and More 2002; AlgoPerf's area from tau 1 to 4), by hand."""
import math

import pandas as pd
import pytest

from optsweep.analysis.profile import (
    median_time,
    performance_profile,
    profile_area,
    profile_curve,
    run_time_to_target,
)

INF = math.inf


def times(rows):
    return pd.DataFrame(rows, columns=["workload", "optimizer", "epochs", "seconds"])


def test_ties_share_the_fastest_place_and_never_reaching_scores_nothing():
    table, scores = performance_profile(times([
        ("a", "adam", 2, 20.0), ("a", "sgd", 4, 80.0), ("a", "rmsprop", INF, INF),
        ("b", "adam", 3, 30.0), ("b", "sgd", 3, 30.0), ("b", "rmsprop", 6, 60.0)]))
    assert table["ratio_epochs"].tolist() == [1.0, 2.0, INF, 1.0, 1.0, 2.0]
    area = scores.set_index("optimizer")["area_epochs"]
    assert area["adam"] == pytest.approx(1.0)
    assert area["sgd"] == pytest.approx((2 / 3 + 1) / 2)  # (4 - 2) / 3 on a, 1 on b
    assert area["rmsprop"] == pytest.approx((0 + 2 / 3) / 2)
    assert scores.set_index("optimizer")["area_seconds"]["sgd"] == pytest.approx((0 + 1) / 2)
    assert scores["optimizer"].tolist() == ["adam", "sgd", "rmsprop"]


def test_a_workload_no_optimizer_reaches_leaves_every_ratio_infinite():
    table, scores = performance_profile(times([("a", "adam", INF, INF), ("a", "sgd", INF, INF)]))
    assert table["ratio_epochs"].tolist() == [INF, INF]
    assert scores["area_epochs"].tolist() == [0.0, 0.0]


def test_a_single_workload_scores_by_the_ratio_to_the_fastest():
    table, scores = performance_profile(times([("a", "adam", 5, 1.0), ("a", "sgd", 10, 1.0),
                                               ("a", "adagrad", 40, 1.0)]))
    area = scores.set_index("optimizer")["area_epochs"]
    assert area.to_dict() == pytest.approx({"adam": 1.0, "sgd": 2 / 3, "adagrad": 0.0})


def test_the_profile_is_the_fraction_of_workloads_within_tau():
    assert profile_curve([1.0, 2.0], [1.0, 1.5, 2.0, 4.0]) == [0.5, 0.5, 1.0, 1.0]
    assert profile_curve([INF], [1.0, 4.0]) == [0.0, 0.0]
    assert profile_area([1.0, 2.5, INF]) == pytest.approx((1 + 0.5 + 0) / 3)


def test_time_to_target_is_the_first_epoch_that_reaches_it_with_its_cumulative_seconds():
    assert run_time_to_target([0.1, 0.5, 0.9], [1.0, 2.0, 3.0], 0.5, "val_acc1") == (2.0, 3.0)
    assert run_time_to_target([0.1, 0.2], [1.0, 1.0], 0.5, "val_acc1") == (INF, INF)
    assert run_time_to_target([2.0, 0.9], [1.0, 1.0], 1.0, "val_loss") == (2.0, 2.0)


def test_the_median_run_time_is_infinite_when_half_the_runs_never_reach():
    assert median_time([2.0, 3.0, INF]) == 3.0
    assert median_time([2.0, INF, INF]) == INF
    assert median_time([]) == INF


def run_rows(spec):
    """{(workload, optimizer): [epochs per seed]} -> one row per run, seconds = 10 x epochs."""
    return pd.DataFrame([{"workload": w, "optimizer": o, "trainer.seed": s, "epochs": e,
                          "seconds": 10.0 * e} for (w, o), epochs in spec.items()
                         for s, e in enumerate(epochs)])


def test_the_vectorised_areas_are_the_profiles_own():
    import numpy as np

    from optsweep.analysis.profile import _areas
    medians = np.array([[2.0, 4.0, INF], [3.0, 3.0, 6.0], [INF, INF, INF]])  # workloads x opts
    table = times([(w, o, medians[i, j], 1.0) for i, w in enumerate("abc")
                   for j, o in enumerate(["adam", "sgd", "rmsprop"])])
    scores = performance_profile(table)[1].set_index("optimizer")["area_epochs"]
    assert _areas(medians).tolist() == pytest.approx(scores[["adam", "sgd", "rmsprop"]].tolist())


def test_score_intervals_need_five_seeds_and_collapse_when_seeds_agree():
    from optsweep.analysis.profile import MIN_SEEDS, score_intervals
    same = score_intervals(run_rows({("a", "adam"): [2] * MIN_SEEDS,
                                     ("a", "sgd"): [4] * MIN_SEEDS})).set_index("optimizer")
    # every resample gives adam 2 and sgd 4 epochs: the scores 1 and 2/3, with no spread
    assert same.loc["adam", ["area_epochs_low", "area_epochs_high"]].tolist() == [1.0, 1.0]
    assert same.loc["sgd", ["area_seconds_low", "area_seconds_high"]].tolist() == pytest.approx(
        [2 / 3, 2 / 3])
    few = score_intervals(run_rows({("a", "adam"): [2] * (MIN_SEEDS - 1), ("a", "sgd"): [4] * 9}))
    few = few.set_index("optimizer")
    assert math.isnan(few.loc["adam", "area_epochs_low"])  # too few seeds: none given
    assert not math.isnan(few.loc["sgd", "area_epochs_low"])


def test_score_intervals_hold_the_score_and_order_the_faster_optimizer_higher():
    from optsweep.analysis.profile import score_intervals
    spec = {("a", "adam"): [2, 3, 2, 2, 3, 2], ("a", "sgd"): [3, 4, 3, 8, 4, INF],
            ("b", "adam"): [5, 5, 6, 5, 7, 5], ("b", "sgd"): [5, 4, 4, 5, 4, 4]}
    runs = run_rows(spec)
    medians = runs.groupby(["workload", "optimizer"], sort=False)[["epochs", "seconds"]].median()
    scores = performance_profile(medians.reset_index())[1].set_index("optimizer")
    intervals = score_intervals(runs).set_index("optimizer")
    for o in ("adam", "sgd"):
        low, high = intervals.loc[o, ["area_epochs_low", "area_epochs_high"]]
        assert 0 <= low <= scores.loc[o, "area_epochs"] <= high <= 1
    # adam is faster on a at every seed, and on b by less than sgd is faster there: the
    # direction holds at the interval's lower end too
    assert intervals.loc["adam", "area_epochs_low"] > intervals.loc["sgd", "area_epochs_low"]
