"""Winner stability over resampled confirmation seeds: cases counted by hand, the pairing of
seeds across optimizers, the direction for a loss, and simulated cases whose truth is known."""
import numpy as np
import pandas as pd
import pytest

from optsweep.analysis.stability import seed_table, stability_lines, win_shares, winner_stability


def frame(values: dict, metric: str = "test_acc1", workload: str = "w") -> pd.DataFrame:
    rows = [{"workload": workload, "optimizer": o, "status": "completed", "trainer.seed": s,
             f"final_{metric}": v} for o, seeds in values.items() for s, v in enumerate(seeds)]
    return pd.DataFrame(rows)


def test_two_seeds_counted_by_hand():
    # A (1, 0) against B (0.5, 0.5): the four equally likely resamples of 2 seeds give A the means
    # 1, 0.5, 0.5, 0 against B's 0.5: A wins one, ties two (half each), loses one -> 1/2 each
    table = pd.DataFrame({"A": [1.0, 0.0], "B": [0.5, 0.5]})
    shares = win_shares(table, resamples=40_000)
    assert shares["A"] == pytest.approx(0.5, abs=0.01)
    assert shares.sum() == pytest.approx(1.0)
    # A (1, 0.6) against B (0.5, 0.5): A's lowest resample mean 0.6 still wins
    assert win_shares(pd.DataFrame({"A": [1.0, 0.6], "B": [0.5, 0.5]}))["A"] == 1.0


def test_seeds_are_resampled_together_for_every_optimizer():
    # a shared seed effect: A beats B at every seed, though B's good seed beats A's bad one;
    # resampling each optimizer's runs apart would let B win sometimes, paired it never does
    table = pd.DataFrame({"A": [0.9, 0.7], "B": [0.8, 0.6]})
    assert win_shares(table)["A"] == 1.0


def test_a_loss_is_won_by_the_lowest():
    table = pd.DataFrame({"A": [1.2, 1.1], "B": [2.0, 2.2]})
    assert win_shares(table, lower=True)["A"] == 1.0
    assert win_shares(table, lower=False)["B"] == 1.0


def test_an_optimizer_missing_a_seed_is_judged_on_the_seeds_it_has():
    table = seed_table(frame({"A": [0.8, 0.9], "B": [0.7, np.nan]}).dropna(), "test_acc1")
    assert table["B"].isna().sum() == 1
    assert win_shares(table)["A"] == 1.0


def test_equal_optimizers_share_the_wins_and_a_better_one_takes_them():
    # simulated: 4 optimizers with the same distribution over 10 seeds share 1/4 each on average
    # (by symmetry); one better by 2 run sds wins nearly always
    rng = np.random.default_rng(0)
    equal, better = [], []
    for _ in range(60):
        runs = rng.normal(0.8, 0.01, size=(10, 4))
        equal.append(win_shares(pd.DataFrame(runs, columns=list("ABCD")), resamples=500)["A"])
        runs[:, 0] += 0.02
        better.append(win_shares(pd.DataFrame(runs, columns=list("ABCD")), resamples=500)["A"])
    assert np.mean(equal) == pytest.approx(0.25, abs=0.05)
    assert np.mean(better) > 0.9
    assert all(b >= e for b, e in zip(better, equal))  # the direction: better never wins less


def test_winner_stability_per_workload_and_its_sentence():
    runs = pd.concat([frame({"adam": [0.80, 0.82, 0.81], "sgd": [0.70, 0.71, 0.72]}, workload="a"),
                      frame({"adam": [0.60, 0.61], "sgd": [0.70, 0.71]}, workload="b")])
    runs.loc[runs.index[0], "status"] = "failed"  # not counted: adam has 2 seeds on a
    table = winner_stability(runs, "test_acc1")
    # on a, adam is left out of the resamples that hold only seed 0, (1/3)^3 of them: sgd wins those
    assert table.set_index(["workload", "optimizer"])["share"].to_dict() == pytest.approx({
        ("a", "adam"): 26 / 27, ("a", "sgd"): 1 / 27, ("b", "adam"): 0.0, ("b", "sgd"): 1.0},
        abs=0.015)
    assert table.set_index(["workload", "optimizer"]).loc[("a", "adam"), "seeds"] == 2
    lines = stability_lines(table, "test_acc1")
    assert lines[0].startswith("On a, with its 3 confirmation seeds drawn again")
    assert "adam 9" in lines[0] and "sgd " in lines[0] and "coarse" in lines[0]
    assert lines[1].startswith("On b,") and "sgd 100%" in lines[1] and "adam" not in lines[1]
