"""Analysis of optsweep runs: load run directories, draw figures, write tables and a report.

    from optsweep.analysis import load_runs, write_report
    runset = load_runs(["multirun/lr_search/adam"])
    write_report(runset, "analysis/lr_search_adam")

or from a shell: `python -m optsweep.analysis multirun/lr_search/adam`.
"""
import importlib

from optsweep.analysis.load import AnalysisInputError, RunSet, find_run_dirs, load_runs

# Plotting and statistics pull in matplotlib, seaborn and scipy (seconds to import): they load on
# first use, so that `load_runs` alone stays light.
_LAZY = {
    "training_curves": "figures", "final_metrics": "figures", "write_figures": "figures",
    "setting_table": "tables", "best_settings": "tables", "markdown_table": "tables",
    "compare_to_best": "stats", "find_studies": "optuna_study", "write_report": "report",
    "default_out_dir": "report",
}

__all__ = ["AnalysisInputError", "RunSet", "find_run_dirs", "load_runs", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"optsweep.analysis.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'optsweep.analysis' has no attribute {name!r}")
