"""The power statement's statistics against hand-worked cases and a brute-force Monte Carlo."""
from __future__ import annotations

import math

import numpy as np
import pytest

from optsweep.analysis.stats import (
    ALPHA,
    detectable_difference,
    pooled_sd,
    seeds_needed,
    t_test_power,
    welch,
)


def test_pooled_sd_sums_squares_and_degrees_of_freedom_over_groups_of_two_or_more():
    # [1, 2, 3]: squares 1 + 0 + 1 = 2, 2 df; [4, 6]: 1 + 1 = 2, 1 df; [7] alone counts for nothing
    sd, df = pooled_sd([[1.0, 2.0, 3.0], [4.0, 6.0], [7.0]])
    assert df == 3
    assert sd == pytest.approx(math.sqrt(4 / 3))


def test_pooled_sd_without_any_group_of_two_is_nan_with_zero_df():
    sd, df = pooled_sd([[1.0], []])
    assert math.isnan(sd) and df == 0


def test_power_of_one_sd_with_ten_seeds_is_cohens_tabulated_value():
    # d = 1, n = 10 per group, alpha 0.05 two-sided, df 18: noncentrality 1 / sqrt(2/10) = 2.236
    # against t_0.975,18 = 2.101; the noncentral t gives 0.562 (Cohen 1988, table 2.3.5: 0.56;
    # the normal approximation alone, Phi(2.236 - 2.101) = 0.554, is lower)
    assert t_test_power(1.0, 1.0, 10, ALPHA) == pytest.approx(0.5620, abs=5e-4)


def test_seeds_needed_for_one_sd_at_80_percent_is_17_per_group():
    # Cohen's table 2.4.1: d = 1.0, power 0.80, alpha 0.05 two-sided -> n = 17
    assert seeds_needed(1.0, 1.0, None, ALPHA) == 17
    assert seeds_needed(2.0, 2.0, None, ALPHA) == 17  # only the ratio to the spread matters


def test_detectable_difference_brackets_the_seeds_needed():
    assert detectable_difference(1.0, None, 17, ALPHA) <= 1.0 < detectable_difference(
        1.0, None, 16, ALPHA)
    found = detectable_difference(0.01, None, 5, ALPHA)
    assert t_test_power(found, 0.01, 5, ALPHA) == pytest.approx(0.8, abs=1e-9)


def test_a_smaller_alpha_or_more_degrees_of_freedom_move_the_detectable_difference_as_they_must():
    base = detectable_difference(1.0, None, 3, ALPHA)
    assert detectable_difference(1.0, None, 3, ALPHA / 3) > base  # Holm's first step of 3
    assert detectable_difference(1.0, 12, 3, ALPHA) < base  # a pooled-variance test's 12 df


def test_seeds_needed_is_none_when_no_count_up_to_the_limit_suffices():
    assert seeds_needed(0.01, 1.0, None, ALPHA, max_seeds=50) is None


def test_predicted_power_matches_a_monte_carlo_of_welchs_test():
    # 2,000 simulated pairs of 5 seeds each, the true difference the one predicted to be found 80%
    # of the time: the share Welch's test finds lies within 0.04 of 0.8 (the Monte Carlo's own sd
    # is 0.009; Welch's df at equal spreads is a little under 2 (n - 1), so its power is a little
    # lower than the equal-variance prediction)
    n, sd = 5, 1.0
    difference = detectable_difference(sd, None, n, ALPHA)
    rng = np.random.default_rng(27)
    found = [welch(rng.normal(difference, sd, n), rng.normal(0.0, sd, n)) < ALPHA
             for _ in range(2000)]
    assert np.mean(found) == pytest.approx(0.8, abs=0.04)
