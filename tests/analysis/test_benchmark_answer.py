"""The benchmark's answer in words: who wins where, how sure, and what the profile says."""
import pandas as pd

from optsweep.analysis.benchmark_report import answer
from optsweep.analysis.stats import Verdict


def results(verdicts):
    return pd.DataFrame([{"workload": "digits", "optimizer": name, "mean": mean, "std": 0.01,
                          "n": 3, "outcome": str(outcome), "verdict": f"{outcome} (Holm p=0.01)"}
                         for name, mean, outcome in verdicts])


def scores(rows):
    return pd.DataFrame(rows, columns=["optimizer", "workloads", "area_epochs", "area_seconds"])


def test_the_answer_names_the_winner_whom_it_beats_and_whom_it_cannot_tell_apart():
    lines = answer(results([("sgd", 0.9, Verdict.BEST), ("adam", 0.8, Verdict.WORSE),
                            ("rmsprop", 0.89, Verdict.TIED)]),
                   scores([("sgd", 1, 1.0, 1.0), ("adam", 1, 0.5, 0.4)]), "test_acc1",
                   "val_acc1")
    assert lines[0].startswith("On digits, **sgd** is best: test_acc1 0.9000 ± ")
    assert "It beats adam beyond seed noise" in lines[0]
    assert "within seed noise of rmsprop" in lines[0]
    assert lines[1].startswith("Across 1 workload(s)") and "sgd 1.00, adam 0.50" in lines[1]


def test_a_profile_nobody_reached_says_it_cannot_rank():
    lines = answer(results([("sgd", 0.5, Verdict.BEST)]), scores([("sgd", 1, 0.0, 0.0)]),
                   "test_acc1", "val_acc1")
    assert "cannot rank them" in lines[-1]
    assert len(lines) == 2 and lines[0].startswith("On digits, **sgd** is best")


def test_an_optimizer_better_on_test_than_the_validation_chosen_best_is_said_so_plainly():
    lines = answer(results([("sgd", 0.7, Verdict.BEST), ("adam", 0.8, Verdict.BETTER)]),
                   scores([]), "test_acc1", "val_acc1")
    assert "But adam is better on test_acc1 beyond seed noise" in lines[0]
    assert "the best on val_acc1 is not the best on test_acc1" in lines[0]
    assert "beats" not in lines[0]
