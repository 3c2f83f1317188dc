"""benchmarks/calibration.py at small counts: its table's shape, torch-free, and known cases that
must come out right (the null rate where selection cannot bias the test, power at 3 run sds)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.calibration import NULL, null_cell, power_cell
from optsweep.analysis.stats import ALPHA

ROOT = Path(__file__).resolve().parents[1]


def test_quick_calibration_prints_every_table_without_torch(tmp_path):
    stub = tmp_path / "stub" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('torch is made unimportable here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub.parent), str(ROOT)])}
    done = subprocess.run([sys.executable, "benchmarks/calibration.py", "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.splitlines()[0].startswith("Simulated runs")
    assert "the same best and the same verdict strings in every one" in out
    null = out.split("\nNull")[1].split("\nPower")[0].splitlines()[2:]
    cells = len(NULL["K"]) * len(NULL["seeds"]) * len(NULL["rho"])
    assert len([line for line in null if line.strip()]) == cells
    for heading in ("P(the truly best optimizer is named best), named on each study's best trial",
                    "named on the confirmation runs' val_acc1 mean", "Winner's curse",
                    "Wall time"):
        assert heading in out


def test_null_rate_without_shared_variance_is_within_the_interval_of_alpha():
    # rho = 0: the validation numbers that name the best say nothing about the test numbers, so
    # the Holm-corrected family of K - 1 tests keeps its false-positive rate at most alpha
    for k in (2, 4):
        cell = null_cell((k, 5, 0.0, 2000, 27, "study"))
        assert cell["95% CI low"] <= ALPHA, cell
        assert abs(cell["rho achieved"]) < 0.1, cell


def test_the_best_named_on_the_tested_runs_inflates_the_null_rate_and_on_the_studies_it_does_not():
    # rho = 0.9: the confirmation runs' val and test share 90% of each run's variance, so a best
    # named on their val mean is lucky on their test mean too; named on the studies (a seed of
    # their own) it is not. The same draws for both rules (same seed): only the rule differs.
    before = null_cell((8, 10, 0.9, 2000, 27, "confirmation"))
    after = null_cell((8, 10, 0.9, 2000, 27, "study"))
    assert before["95% CI low"] > ALPHA, before
    assert after["95% CI low"] <= ALPHA, after
    assert after["any beyond noise"] < before["95% CI low"], (before, after)


def test_three_run_sds_over_ten_seeds_are_found_almost_always():
    cell = power_cell((2, 10, 3, 500, 27, "confirmation"))
    assert cell["named best"] > 0.99 and cell["found (all pairs)"] > 0.95, cell
    assert abs(cell["found (all pairs)"] - cell["predicted, Welch df 2(n-1)"]) < 0.05, cell


def test_named_on_its_study_the_best_is_found_at_the_predicted_power_once_named():
    # one study run names the best less often than ten confirmation seeds; once named, the test
    # on the confirmation runs (independent of the naming) has the power a t-test predicts
    cell = power_cell((2, 10, 3, 500, 27, "study"))
    assert 0.9 < cell["named best"] < 1.0, cell
    expected = cell["named best"] * cell["predicted, Welch df 2(n-1)"]
    assert abs(cell["found (all pairs)"] - expected) < 0.05, cell
