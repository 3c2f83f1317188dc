"""Analysis of optsweep runs: load run directories, draw figures, write tables and a report.

    from optsweep.analysis import load_runs, write_report
    runset = load_runs(["multirun/adam_lr"])
    write_report(runset, "analysis/adam_lr")

or from a shell: `python -m optsweep.analysis multirun/adam_lr`.
"""
from optsweep.analysis.load import AnalysisInputError, RunSet, find_run_dirs, load_runs

__all__ = ["AnalysisInputError", "RunSet", "find_run_dirs", "load_runs"]
