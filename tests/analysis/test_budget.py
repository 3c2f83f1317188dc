"""Expected best of k trials (unbiased, Tang et al. 2020; Dodge et al. 2019's beside it) and
best-so-far, against cases counted by hand, brute force and Monte Carlo."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from optsweep.analysis.budget import (
    band_limit,
    best_so_far,
    budget_curves,
    expected_best,
    expected_best_band,
    expected_best_dodge,
    jackknife_band,
)


def test_the_unbiased_estimate_matches_the_six_pairs_of_four_trials_counted_by_hand():
    # pairs of (0.1, 0.5, 0.3, 0.9): maxima 0.5, 0.3, 0.9, 0.5, 0.9, 0.9 -> 4.0 / 6
    assert expected_best([0.1, 0.5, 0.3, 0.9], 2) == pytest.approx(4.0 / 6)
    # with replacement (16 ordered pairs, max 0.1 once, 0.3 3x, 0.5 5x, 0.9 7x): lower
    assert expected_best_dodge([0.1, 0.5, 0.3, 0.9], 2) == pytest.approx(9.8 / 16)


def test_the_unbiased_estimate_is_the_mean_best_of_every_k_subset():
    values = [0.62, 0.18, 0.71, 0.71, 0.44, 0.05, 0.93]  # a tie included
    for metric, best in (("val_acc1", max), ("val_loss", min)):
        for k in range(1, len(values) + 1):
            subsets = list(itertools.combinations(values, k))
            brute = sum(best(s) for s in subsets) / len(subsets)
            assert expected_best(values, k, metric) == pytest.approx(brute, abs=1e-12)


def test_the_unbiased_estimate_agrees_with_sampling_without_replacement():
    values = np.random.default_rng(0).uniform(0.1, 0.9, size=12)
    draws = 200_000
    rng = np.random.default_rng(1)
    for k in (2, 5, 9):
        picks = rng.permuted(np.tile(np.arange(12), (draws, 1)), axis=1)[:, :k]
        maxima = values[picks].max(axis=1)
        se = maxima.std(ddof=1) / math.sqrt(draws)
        assert abs(expected_best(values, k) - maxima.mean()) < 4 * se
        assert expected_best_dodge(values, k) < expected_best(values, k)  # biased low


def test_one_trial_expects_the_mean_all_trials_the_best_and_more_than_ran_nothing():
    assert expected_best([1.0, 2.0, 3.0], 1) == pytest.approx(2.0)
    assert expected_best([1.0, 2.0, 3.0], 3) == pytest.approx(3.0)
    assert math.isnan(expected_best([1.0, 2.0, 3.0], 4))
    assert math.isnan(expected_best([], 1)) and math.isnan(expected_best([1.0], 0))
    # Dodge's goes on past N, short of the best: 3 - (1 + 7) / 27 at k = 3
    assert expected_best_dodge([1.0, 2.0, 3.0], 3) == pytest.approx((1 + 2 * 7 + 3 * 19) / 27)
    assert expected_best_dodge([1.0, 2.0, 3.0], 200) == pytest.approx(3.0)


def test_dodges_two_draws_with_replacement_match_the_nine_pairs_counted_by_hand():
    # pairs of (1, 2, 3): max 1 once, max 2 three times, max 3 five times
    assert expected_best_dodge([3.0, 1.0, 2.0], 2) == pytest.approx((1 + 2 * 3 + 3 * 5) / 9)
    # (0.5, 0.5, 1.0): both draws miss the 1.0 in 4 of 9 pairs
    assert expected_best_dodge([0.5, 1.0, 0.5], 2) == pytest.approx((0.5 * 4 + 1.0 * 5) / 9)


def test_a_loss_expects_the_minimum():
    # pairs of (1, 2, 3): minima 1, 1, 2
    assert expected_best([1.0, 2.0, 3.0], 2, "val_loss") == pytest.approx(4 / 3)
    # min of two draws with replacement: 1 in five pairs, 2 in three, 3 in one
    assert expected_best_dodge([1.0, 2.0, 3.0], 2, "val_loss") == pytest.approx((5 + 2 * 3 + 3) / 9)


def test_best_so_far_follows_trial_order_in_the_objectives_direction():
    assert best_so_far([0.2, 0.1, 0.5, 0.3]) == [0.2, 0.2, 0.5, 0.5]
    assert best_so_far([0.2, 0.1, 0.5, 0.3], "val_loss") == [0.2, 0.1, 0.1, 0.1]


def test_budget_curves_run_to_the_budget_saying_nothing_past_the_trials_that_ran():
    trials = pd.DataFrame({"workload": "digits", "optimizer": "adam", "trial": [1, 0],
                           "value": [0.9, 0.5]})
    curves = budget_curves(trials, "val_acc1", budget=3)
    assert curves["k"].tolist() == [1, 2, 3]
    assert curves["best_so_far"].tolist()[:2] == [0.5, 0.9]  # trial 0 ran first
    assert math.isnan(curves["best_so_far"].iloc[2])
    assert curves["expected_best"].tolist()[:2] == pytest.approx([0.7, 0.9])
    assert math.isnan(curves["expected_best"].iloc[2])  # 3 trials of 2: no extrapolation
    assert curves["expected_best_dodge"].tolist() == pytest.approx(
        [0.7, 0.5 * 0.25 + 0.9 * 0.75, 0.5 * 0.125 + 0.9 * 0.875])


def test_the_band_of_one_trial_is_the_t_interval_of_the_mean():
    # k = 1: the estimate is the mean, and the jackknife's error of a mean is s / sqrt(n)
    values = [1.0, 2.0, 3.0, 4.0]
    half = stats.t.ppf(0.975, 3) * math.sqrt(5 / 3) / 2
    assert expected_best_band(values, 1) == pytest.approx((2.5 - half, 2.5 + half))
    assert all(math.isnan(end) for end in expected_best_band(values, 2))  # k > N / 5: none


def test_the_jackknife_band_of_the_best_of_two_counted_by_hand():
    # [1, 2, 4]: pairs' maxima 2, 4, 4 -> 10/3; without one trial: 4, 4, 2 (mean 10/3), so the
    # error is sqrt(2/3 x ((2/3)^2 + (2/3)^2 + (4/3)^2)) = sqrt(48/27)
    half = stats.t.ppf(0.975, 2) * math.sqrt(48 / 27)
    assert jackknife_band([1.0, 2.0, 4.0], 2) == pytest.approx((10 / 3 - half, 10 / 3 + half))
    # a loss: minima 1, 1, 2 -> 4/3; without one trial: 2, 1, 1, so the error is
    # sqrt(2/3 x ((2/3)^2 + (1/3)^2 + (1/3)^2)) = 2/3
    half = stats.t.ppf(0.975, 2) * 2 / 3
    assert jackknife_band([1.0, 2.0, 4.0], 2, "val_loss") == pytest.approx(
        (4 / 3 - half, 4 / 3 + half))


def test_the_band_is_drawn_up_to_a_fifth_of_the_trials():
    assert [band_limit(n) for n in (0, 1, 2, 9, 10, 20, 41)] == [0, 0, 1, 1, 2, 4, 8]


def test_the_band_holds_the_true_expected_best_of_random_search_on_the_simulated_workload():
    # independent trials from Adam's space on the simulated workload; the truth from 20,000
    # draws; the band's measured coverage where it is drawn (k <= 4 of 20) near its nominal 95%
    from benchmarks.budget_bands import SimulatedAdam, tang_weights
    draw, rng = SimulatedAdam(), np.random.default_rng(3)
    pool = np.sort(draw(rng, 20_000))
    truth = [float(tang_weights(len(pool), k) @ pool) for k in (1, 2, 3, 4)]
    studies = 150
    held = np.zeros(4)
    for _ in range(studies):
        values = draw(rng, 20)
        for k in (1, 2, 3, 4):
            low, high = expected_best_band(values, k)
            held[k - 1] += low <= truth[k - 1] <= high
    # 150 studies: a coverage of 0.95 is seen above 0.88 with probability > 0.999
    assert (held / studies >= 0.88).all(), held / studies
    # and the estimate is on the right side: the mean band centre is near the truth, not below
    centres = [expected_best(draw(rng, 20), 4) for _ in range(100)]
    assert abs(np.mean(centres) - truth[3]) < 3 * np.std(centres) / 10


def test_budget_curves_carry_the_band_where_it_is_drawn():
    values = [0.1, 0.4, 0.35, 0.8, 0.5, 0.45, 0.6, 0.2, 0.3, 0.7]
    trials = pd.DataFrame({"workload": "w", "optimizer": "o", "trial": range(10), "value": values})
    curves = budget_curves(trials, "val_acc1")
    drawn = curves[curves["band_low"].notna()]
    assert drawn["k"].tolist() == [1, 2]  # 10 trials: k <= 2
    for row in drawn.itertuples():
        assert (row.band_low, row.band_high) == pytest.approx(expected_best_band(values, row.k))
        assert row.band_low < row.expected_best < row.band_high
