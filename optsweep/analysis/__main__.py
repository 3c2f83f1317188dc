"""python -m optsweep.analysis PATH [PATH ...] [--out DIR] [--metric NAME] [--select NAME]"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import matplotlib

from optsweep.analysis.load import AnalysisInputError, load_runs
from optsweep.contract import DEFAULT_REPORTED, DEFAULT_SELECT, MEASURED_COLUMNS, selection_problem
from optsweep.errors import unwritable


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m optsweep.analysis",
        description="Analyse optsweep runs: figures, per-setting tables, significance tests, and a "
                    "report (report.html, report.md) for every sweep found under the given paths.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="sweep directories (multirun/<name>) or run directories, searched "
                             "recursively")
    parser.add_argument("--out", metavar="DIR",
                        help="where to write the report (default: analysis/<folder name>, "
                             "e.g. analysis/multirun for multirun/; several folders: their "
                             "names joined with +)")
    parser.add_argument("--metric", default=DEFAULT_REPORTED, metavar="NAME",
                        help="final-epoch metric reported and compared for each setting "
                             f"(default: {DEFAULT_REPORTED}; --select ranks them; one of "
                             f"{', '.join(MEASURED_COLUMNS)})")
    parser.add_argument("--select", default=DEFAULT_SELECT, metavar="NAME",
                        help="final-epoch metric that picks the best setting "
                             f"(default: {DEFAULT_SELECT}, "
                             "so that no setting is chosen on the test set; runs without a "
                             "validation split fall back to --metric)")
    return parser.parse_args(argv)


def folder_out_dir(paths, root: str = "analysis") -> Path:
    """analysis/<name of the folder analysed>; for several folders their names joined with +
    (``report.joined_name``)."""
    from optsweep.analysis.report import joined_name

    return Path(root) / joined_name(Path(p).resolve().name or "root" for p in paths)


def main(argv=None) -> int:
    args = parse_args(argv)
    matplotlib.use("Agg")  # files only; never open a window
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    from optsweep.analysis.benchmark_report import write_benchmark_report
    from optsweep.analysis.optuna_study import find_studies
    from optsweep.analysis.report import write_report
    from optsweep.analysis.tables import (
        best_settings,
        display_table,
        selection_metric,
        setting_table,
    )
    from optsweep.rundir import BenchmarkDir

    try:
        problem = selection_problem(args.select)  # first: a misspelt name must not fall back
        if problem:
            raise AnalysisInputError(f"--select {args.select}: {problem}")
        runset = load_runs(args.paths)
        if f"final_{args.metric}" not in runset.runs.columns:
            raise AnalysisInputError(f"--metric {args.metric}: not a metric of these runs; "
                                     f"choose one of {', '.join(MEASURED_COLUMNS)}")
        select = selection_metric(runset, args.select, args.metric)
        studies, bad_studies = find_studies(args.paths)
        out = Path(args.out) if args.out else folder_out_dir(args.paths)
        problem = unwritable(out)
        if problem:
            raise AnalysisInputError(f"--out {out}: cannot be created or written ({problem}); "
                                     "name a writable directory with --out DIR")
        if len(args.paths) == 1 and BenchmarkDir(args.paths[0]).is_benchmark():  # answer first
            report = write_benchmark_report(args.paths[0], out, metric=args.metric,
                                            select=select)
        else:
            report = write_report(runset, out, metric=args.metric, select=select,
                                  studies=studies, skipped=bad_studies)
    except AnalysisInputError as err:
        print(f"optsweep.analysis: error: {err}", file=sys.stderr)
        return 2
    table = setting_table(runset, args.metric, select)
    print(display_table(table, args.metric).to_string(index=False))
    print(f"\nbest per sweep (chosen on {select}):")
    print(display_table(best_settings(table, select), args.metric).to_string(index=False))
    print(f"{len(runset.runs)} runs, {len(runset.skipped)} skipped")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
