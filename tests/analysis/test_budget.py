"""Expected best of k trials (Dodge et al. 2019) and best-so-far, against cases counted by hand."""
import math

import pandas as pd
import pytest

from optsweep.analysis.budget import best_so_far, budget_curves, expected_best


def test_one_draw_expects_the_mean_and_many_draws_the_best():
    assert expected_best([1.0, 2.0, 3.0], 1) == pytest.approx(2.0)
    assert expected_best([1.0, 2.0, 3.0], 200) == pytest.approx(3.0)


def test_two_draws_with_replacement_match_the_nine_pairs_counted_by_hand():
    # pairs of (1, 2, 3): max 1 once, max 2 three times, max 3 five times
    assert expected_best([3.0, 1.0, 2.0], 2) == pytest.approx((1 + 2 * 3 + 3 * 5) / 9)


def test_tied_values_count_as_separate_trials():
    # (0.5, 0.5, 1.0): both draws miss the 1.0 in 4 of 9 pairs
    assert expected_best([0.5, 1.0, 0.5], 2) == pytest.approx((0.5 * 4 + 1.0 * 5) / 9)


def test_a_loss_expects_the_minimum():
    # min of two draws from (1, 2, 3): 1 in five pairs, 2 in three, 3 in one
    assert expected_best([1.0, 2.0, 3.0], 2, "val_loss") == pytest.approx((5 + 2 * 3 + 3) / 9)


def test_a_single_trial_is_its_own_expectation_and_no_trial_none():
    assert expected_best([0.7], 5) == pytest.approx(0.7)
    assert math.isnan(expected_best([], 3))


def test_best_so_far_follows_trial_order_in_the_objectives_direction():
    assert best_so_far([0.2, 0.1, 0.5, 0.3]) == [0.2, 0.2, 0.5, 0.5]
    assert best_so_far([0.2, 0.1, 0.5, 0.3], "val_loss") == [0.2, 0.1, 0.1, 0.1]


def test_budget_curves_run_to_the_budget_with_best_so_far_only_where_trials_ran():
    trials = pd.DataFrame({"workload": "digits", "optimizer": "adam", "trial": [1, 0],
                           "value": [0.9, 0.5]})
    curves = budget_curves(trials, "val_acc1", budget=3)
    assert curves["k"].tolist() == [1, 2, 3]
    assert curves["best_so_far"].tolist()[:2] == [0.5, 0.9]  # trial 0 ran first
    assert math.isnan(curves["best_so_far"].iloc[2])
    assert curves["expected_best"].iloc[0] == pytest.approx(0.7)
    assert curves["expected_best"].iloc[1] == pytest.approx(0.5 * 0.25 + 0.9 * 0.75)
