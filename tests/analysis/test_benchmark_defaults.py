"""The benchmark report's word on each study's defaults trial, read from what the sweeper wrote
(optimization_results.yaml: defaults)."""
import pandas as pd
import yaml

from optsweep.analysis.benchmark import Benchmark, defaults_trials
from optsweep.analysis.benchmark_report import defaults_lines
from optsweep.contract import OPTIMIZATION_RESULTS_FILE
from optsweep.rundir import BenchmarkDir


def defaults_of(root, studies: dict) -> pd.DataFrame:
    """``defaults_trials`` of a benchmark on digits whose studies' optimization_results.yaml hold
    ``studies`` ({optimizer: its defaults entry, or None for a file without one})."""
    for optimizer, first in studies.items():
        folder = BenchmarkDir(root).study_dir("digits", optimizer)
        folder.mkdir(parents=True)
        results = {"name": "optuna", **({"defaults": first} if first is not None else {})}
        (folder / OPTIMIZATION_RESULTS_FILE).write_text(yaml.safe_dump(results))
    manifest = {"workloads": {"digits": {}}, "settings": {"optimizers": [*studies, "nadam"]}}
    # nadam's study has not ended
    return defaults_trials(Benchmark(root, manifest, runs=None, runset=None))


def test_studies_that_all_ran_their_defaults_as_trial_0_are_one_line(tmp_path):
    first = {"trial": 0, "params": {"optimizer.lr": 0.001}, "left_out": {}}
    lines = defaults_lines(defaults_of(tmp_path, {"adam": first, "sgd": first}), "val_acc1")
    assert lines == ["Every study's trial 0 ran its optimizer's defaults, so each study's best "
                     "trial is at least the defaults on `val_acc1` at the study's seed."]


def test_a_default_left_out_and_a_study_without_defaults_are_each_said(tmp_path):
    why = "default 0.0 is outside its log range [1e-06, 0.01]"
    studies = defaults_of(tmp_path, {
        "adam": {"trial": 0, "params": {"optimizer.lr": 0.001},
                 "left_out": {"optimizer.weight_decay": why}},
        "sgd": None})
    adam, sgd = defaults_lines(studies, "val_acc1")
    assert adam == f"adam (digits): optimizer.weight_decay {why}, so trial 0 ran the other " \
                   "defaults with optimizer.weight_decay drawn."
    assert sgd.startswith("sgd (digits): no trial of its study ran the optimizer's defaults")
