"""The benchmark's answer in words: who wins where, how sure, and what the profile says."""
import pandas as pd

from optsweep.analysis.benchmark_report import answer


def results(verdicts):
    return pd.DataFrame([{"workload": "digits", "optimizer": name, "mean": mean, "std": 0.01,
                          "n": 3, "verdict": verdict} for name, mean, verdict in verdicts])


def scores(rows):
    return pd.DataFrame(rows, columns=["optimizer", "workloads", "area_epochs", "area_seconds"])


def test_the_answer_names_the_winner_whom_it_beats_and_whom_it_cannot_tell_apart():
    lines = answer(results([("sgd", 0.9, "best"), ("adam", 0.8, "significant (Holm p=0.01)"),
                            ("rmsprop", 0.89, "within noise (Holm p=0.4)")]),
                   scores([("sgd", 1, 1.0, 1.0), ("adam", 1, 0.5, 0.4)]), "test_acc1",
                   "val_acc1")
    assert lines[0].startswith("On digits, **sgd** is best: test_acc1 0.9000 ± ")
    assert "It beats adam beyond seed noise" in lines[0]
    assert "within seed noise of rmsprop" in lines[0]
    assert lines[1].startswith("Across 1 workload(s)") and "sgd 1.00, adam 0.50" in lines[1]


def test_a_profile_nobody_reached_says_it_cannot_rank():
    lines = answer(results([("sgd", 0.5, "best")]), scores([("sgd", 1, 0.0, 0.0)]),
                   "test_acc1", "val_acc1")
    assert "cannot rank them" in lines[-1]
    assert len(lines) == 2 and lines[0].startswith("On digits, **sgd** is best")
