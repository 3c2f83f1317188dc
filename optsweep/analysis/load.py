"""Find run directories, read what each run left behind, return tidy tables.

A run directory is any directory holding a `.hydra/` folder, a `summary.json` or a `metrics.csv`
(the run-directory contract: `optsweep.contract`), read through `optsweep.rundir.RunDir`. Reading
is built for thousands of runs: YAML goes through libyaml (CSafeLoader) rather than OmegaConf, and
every run's `metrics.csv` body is parsed by one `pandas.read_csv` call instead of one per file.
"""
from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from optsweep import contract
from optsweep.analysis.sweeps import add_settings, find_swept
from optsweep.contract import HYDRA_DIR, MEASURED_COLUMNS, METRICS_FILE, SUMMARY_FILE, Status
from optsweep.rundir import RunDir, UnreadableFile, flatten, read_text

log = logging.getLogger(__name__)

STATUSES = tuple(status.value for status in Status)  # the status columns of the tables
# Columns every run row carries besides its flattened config (config keys always contain a dot).
RUN_COLUMNS = (
    "run", "sweep", "job", "optimizer", "dataset", "model", "status", "objective", "objective_name",
    "epochs_completed", "epochs_planned", "best_epoch", "wall_seconds", "overrides", "error",
    "classes",
)
# a simulated run's noise-free expectations (contract.TRUTH_FIELD) as columns: truth_test_acc1, ...
TRUTH_PREFIX = "truth_"


def any_simulated(runs: pd.DataFrame) -> bool:
    """Whether any run of ``runs`` is a simulated one (workload=simulated)."""
    column = runs.get(contract.SIMULATED_FIELD)
    return column is not None and bool(column.fillna(False).astype(bool).any())


class AnalysisInputError(Exception):
    """A path given to the analysis cannot be used (missing, or holds no run directory)."""


class BadRun(Exception):
    """One run directory cannot be read; the run is skipped and listed in the report."""


@dataclass
class RunSet:
    """Everything loaded from a set of run directories.

    runs: one row per run (identity, status, final_* and best_* metrics, flattened config).
    metrics: tidy, one row per run x epoch x metric, with the run's identity, seed and swept values.
    swept: for each sweep, the config columns that vary within it (seed excluded), in config order;
        "optimizer" comes first where the sweep compares optimizer choices.
    skipped: (run directory, reason) for every run directory that could not be read.
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    swept: dict[str, list[str]]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def sweeps(self) -> list[str]:
        return list(dict.fromkeys(self.runs["sweep"]))

    @property
    def config_columns(self) -> list[str]:
        return [c for c in self.runs.columns if "." in c]


def is_run_dir(path: Path) -> bool:
    return RunDir(path).is_run()


def find_run_dirs(paths) -> list[Path]:
    """Every run directory under `paths`, in sorted order; a path with none is an input error."""
    found: list[Path] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise AnalysisInputError(f"{raw}: no such file or directory")
        if not root.is_dir():
            raise AnalysisInputError(f"{raw}: not a directory (give a sweep or run directory)")
        here = _walk_run_dirs(root)
        if not here:
            raise AnalysisInputError(
                f"{raw}: holds no run directory (one with .hydra/, summary.json or metrics.csv)"
            )
        found.extend(here)
    return list(dict.fromkeys(found))


def _walk_run_dirs(root: Path) -> list[Path]:
    found = []
    for current, dirs, files in os.walk(root):
        dirs.sort(key=_natural_key)  # Hydra's job folders 0, 1, ..., 10 in numeric order
        if RunDir.marks_run(dirs, files):
            found.append(Path(current))
            dirs[:] = []  # a run directory's own subfolders (.hydra, checkpoints) hold no runs
    return found


def _natural_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def load_runs(paths, *, ignore: tuple[str, ...] | None = None) -> RunSet:
    """Load every run directory under `paths` (directories, searched recursively).

    Unreadable runs are skipped with one logging.warning each and listed in `RunSet.skipped`.
    Raises AnalysisInputError if a path does not exist or no readable run is found under it.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    run_dirs = find_run_dirs(paths)
    records, skipped = [], []
    for run_dir in run_dirs:
        try:
            records.append(read_run(run_dir))
        except BadRun as err:
            log.warning("skipping run %s: %s", run_dir, err)
            skipped.append((str(run_dir), str(err)))
    if not records:
        raise AnalysisInputError(
            f"{', '.join(map(str, paths))}: none of its {len(run_dirs)} run directories could be"
            " read (see the warnings above)"
        )
    epochs, bad = _parse_metrics(records)
    for i in sorted(bad, reverse=True):
        run_dir, reason = records[i]["run"], bad[i]
        log.warning("skipping run %s: %s", run_dir, reason)
        skipped.append((run_dir, reason))
        del records[i]
    if not records:
        raise AnalysisInputError(f"{', '.join(map(str, paths))}: no readable run directory")
    runs = _runs_table(records, epochs, paths)
    swept = find_swept(runs, ignore=ignore, order=_config_order(records, runs["sweep"]))
    runs = add_settings(runs, swept)
    return RunSet(runs=runs, metrics=_tidy(runs, epochs, swept), swept=swept, skipped=skipped)


def _config_order(records: list[dict], sweeps: pd.Series) -> dict[str, list[str]]:
    """Each sweep's config keys in its own runs' order (the first run's, then any key a later run
    adds), as the columns of a load of that sweep alone come: the runs' table orders its columns
    by the first run loaded, which may be another sweep's, and a sweep's setting names and order
    (hence the best among equals) must not change with what is loaded beside it."""
    order: dict[str, dict[str, None]] = {}
    for record, sweep in zip(records, sweeps):
        order.setdefault(sweep, {}).update(dict.fromkeys(record["config"]))
    return {sweep: list(keys) for sweep, keys in order.items()}


# --- one run ------------------------------------------------------------------------------------


def read_run(run_dir: Path) -> dict:
    """Read one run directory into a plain dict; raise BadRun naming the file that is unusable."""
    record = RunDir(run_dir)
    if not record.config_file.is_file():
        raise BadRun(f"no {HYDRA_DIR}/{contract.CONFIG_FILE}, so its setting is unknown")
    try:
        config = contract.with_betas_that_ran(record.read_config())  # the analysis shows what ran
        summary = record.read_summary()
        overrides = record.read_overrides()
        body = _read_metrics_text(record.metrics_file) if record.metrics_file.is_file() else None
    except UnreadableFile as err:
        raise BadRun(str(err)) from err
    if summary is None and body is None:
        raise BadRun(f"no {METRICS_FILE} and no {SUMMARY_FILE}: the run recorded nothing")
    # the group choices, as the run recorded them; runs written before summaries held them (or
    # still running) fall back to what the config says
    choices = (summary or {}).get("choices") or {}
    return {
        "run": str(run_dir),
        "dir": run_dir,
        "config": flatten(config),
        "optimizer": choices.get("optimizer") or _target_name(config),
        "dataset": choices.get("data") or (config.get("data") or {}).get("name"),
        "model": choices.get("model") or (config.get("model") or {}).get("name"),
        "overrides": overrides,
        "summary": summary or {},
        "objective_name": (summary or {}).get("objective_name") or _objective_name(config),
        "metrics_text": body,
    }


def _read_metrics_text(path: Path) -> tuple[str, str, int]:
    """(header, body, rows) of metrics.csv, checking every row has as many fields as the header."""
    text = read_text(path)
    header, _, body = text.partition("\n")
    header = header.strip()
    width = header.count(",")
    if "epoch" not in header.split(","):
        raise BadRun(f"metrics.csv: header {header[:60]!r} has no 'epoch' column")
    lines = [line for line in body.splitlines() if line.strip()]
    for number, line in enumerate(lines, start=2):
        if line.count(",") != width:
            raise BadRun(f"metrics.csv is truncated or malformed at data row {number - 1}")
    return header, "".join(line + "\n" for line in lines), len(lines)


def _objective_name(config: dict) -> str | None:
    try:
        return contract.objective_name(config)
    except (KeyError, TypeError):
        return None


def _target_name(config: dict) -> str | None:
    target = (config.get("optimizer") or {}).get("_target_")
    return target.rsplit(".", 1)[-1].lower() if target else None


# --- many runs ------------------------------------------------------------------------------------


def _parse_metrics(records: list[dict]) -> tuple[pd.DataFrame, dict[int, str]]:
    """All runs' metrics.csv rows as one wide frame with a `_run` index column.

    Runs sharing a header are parsed by a single read_csv; a group that fails is reparsed run by run
    to name the culprit. Returns (frame, {record index: reason} for unparsable runs).
    """
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        if rec["metrics_text"] is not None:
            groups.setdefault(rec["metrics_text"][0], []).append(i)
    frames, bad = [], {}
    for header, members in groups.items():
        try:
            frames.append(_parse_group(header, members, records))
        except (ValueError, pd.errors.ParserError):
            for i in members:
                try:
                    frames.append(_parse_group(header, [i], records))
                except (ValueError, pd.errors.ParserError) as err:
                    bad[i] = f"metrics.csv has a value that is not a number ({str(err)[:80]})"
    columns = ["_run", contract.EPOCH_COLUMN, *MEASURED_COLUMNS]
    wide = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    wide = wide[~wide["_run"].isin(list(bad))]
    # renumber run indices to match the records that remain after dropping the bad ones
    keep = np.array([i not in bad for i in range(len(records))])
    new_index = np.cumsum(keep) - 1
    wide = wide.assign(_run=new_index[wide["_run"].to_numpy(dtype=int)])
    return wide.reindex(columns=list(dict.fromkeys([*columns, *wide.columns]))), bad


def _parse_group(header: str, members: list[int], records: list[dict]) -> pd.DataFrame:
    bodies = [records[i]["metrics_text"][1] for i in members]
    rows = [records[i]["metrics_text"][2] for i in members]
    frame = pd.read_csv(io.StringIO(header + "\n" + "".join(bodies)), dtype=float)
    frame.insert(0, "_run", np.repeat(members, rows))
    return frame


def _runs_table(records: list[dict], wide: pd.DataFrame, roots) -> pd.DataFrame:
    rows = []
    for rec in records:
        summary = rec["summary"]
        row = {
            "run": rec["run"],
            "job": rec["dir"].name,
            "optimizer": rec["optimizer"],
            "dataset": rec["dataset"],
            "model": rec["model"],
            "status": contract.status_of(summary).value,
            "objective": summary.get("objective"),
            "objective_name": rec["objective_name"],
            "epochs_completed": summary.get("epochs_completed"),
            "epochs_planned": summary.get("epochs_planned"),
            "best_epoch": (summary.get("best") or {}).get("epoch"),
            "wall_seconds": summary.get("wall_seconds"),
            "overrides": " ".join(rec["overrides"]),
            "error": summary.get("error"),
            # runs recorded before summaries held it: the simulated workload's config still does
            "classes": summary.get(contract.CLASSES_FIELD) or rec["config"].get("simulate.classes"),
        }
        if summary.get(contract.SIMULATED_FIELD):  # workload=simulated: the setting's truth
            row[contract.SIMULATED_FIELD] = True
            for name, value in (summary.get(contract.TRUTH_FIELD) or {}).items():
                row[f"{TRUTH_PREFIX}{name}"] = value
        for name, value in (summary.get("final") or {}).items():
            row[f"final_{name}"] = value
        for name, value in (summary.get("best") or {}).items():
            if name != "epoch":
                row[f"best_{name}"] = value
        rows.append(row | rec["config"])
    runs = pd.DataFrame(rows)
    runs.insert(1, "sweep", _sweep_names([rec["dir"] for rec in records], roots))
    return _diverged_at_chance(_fill_from_metrics(runs, wide))


def sweep_label(sweep_dir: Path, roots) -> str:
    """A sweep's name: its folder's path below the analysed folder that holds it
    (``lr_search/adam`` for ``multirun/lr_search/adam`` when ``multirun/`` is analysed), else
    the folder's name (when the sweep folder itself, or one of its runs, was given)."""
    folder = Path(sweep_dir).resolve()
    for root in roots:
        root = Path(root).resolve()
        if root in folder.parents:
            return folder.relative_to(root).as_posix()
    return folder.name


def _sweep_names(run_dirs: list[Path], roots) -> list[str]:
    """Each run's sweep label; prefixed by the grandparent's name where two folders share one."""
    labels = {d.parent.resolve(): sweep_label(d.parent, roots) for d in run_dirs}
    folders_by_label: dict[str, set] = {}
    for folder, label in labels.items():
        folders_by_label.setdefault(label, set()).add(folder)
    names = []
    for d in run_dirs:
        label = labels[d.parent.resolve()]
        unique = len(folders_by_label[label]) == 1
        names.append(label if unique else f"{d.parent.parent.name}/{label}")
    return names


def _fill_from_metrics(runs: pd.DataFrame, wide: pd.DataFrame) -> pd.DataFrame:
    """final_*, epochs_completed and best_epoch from metrics.csv, which wins over summary.json.

    metrics.csv is written every epoch, the summary only at the end: for interrupted runs the
    metrics are the only record, and where both exist they agree.
    """
    metric_cols = [c for c in wide.columns if c not in ("_run", "epoch")]
    if len(wide):
        ordered = wide.sort_values(["_run", "epoch"])
        last = ordered.groupby("_run").tail(1).set_index("_run")
        has = runs.index.isin(last.index)
        for col in metric_cols:
            _prefer(runs, f"final_{col}", has, last.loc[runs.index[has], col])
        runs.loc[has, "epochs_completed"] = last.loc[runs.index[has], "epoch"].to_numpy()
        runs.loc[has, "final_epoch"] = runs.loc[has, "epochs_completed"]
        _fill_best(runs, ordered, has, metric_cols)
    for col in MEASURED_COLUMNS:  # a run with neither metrics nor a final row still gets the column
        if f"final_{col}" not in runs.columns:
            runs[f"final_{col}"] = np.nan
    numeric = ["objective", "epochs_completed", "epochs_planned", "best_epoch", "wall_seconds"]
    runs[numeric] = runs[numeric].apply(pd.to_numeric, errors="coerce")
    return runs


def _fill_best(runs: pd.DataFrame, ordered: pd.DataFrame, has, metric_cols: list[str]) -> None:
    """best_epoch and best_* by the run contract's rule (``contract.best_row``), from the epochs."""
    names = runs["objective_name"].where(runs["objective_name"].notna(), None)
    picked: dict[int, dict] = {}
    for run, epochs in ordered.groupby("_run", sort=False):
        name = names.iloc[int(run)]
        if not isinstance(name, str) or name not in contract.OBJECTIVES:
            continue  # no summary yet: the objective (hence the direction) is not known
        if contract.best_epoch_metric(name) not in epochs.columns:
            continue
        row = contract.best_row(epochs.to_dict("records"), name)
        if row is not None:
            picked[int(run)] = row
    pick = has & runs.index.isin(list(picked))
    if not pick.any():
        return
    best = pd.DataFrame.from_dict(picked, orient="index")
    runs.loc[pick, "best_epoch"] = best.loc[runs.index[pick], "epoch"].to_numpy()
    for metric in metric_cols:
        if metric in best.columns:
            _prefer(runs, f"best_{metric}", pick, best.loc[runs.index[pick], metric])


def _diverged_at_chance(runs: pd.DataFrame) -> pd.DataFrame:
    """Every diverged run's final accuracies at chance and final losses at ln(classes)
    (``contract.chance_value``: why), in place of its last finite epoch (or of nothing, after a
    divergence in epoch 1), so that it counts among its setting's seeds like any other."""
    runs["classes"] = pd.to_numeric(runs["classes"], errors="coerce")
    diverged = runs["status"] == Status.DIVERGED.value
    for metric in MEASURED_COLUMNS:
        column = f"final_{metric}"
        if contract.chance_value(metric, 2) is None or column not in runs.columns:
            continue  # not an accuracy or a loss (lr, seconds): what the run recorded stands
        runs[column] = runs[column].astype(float)
        runs.loc[diverged, column] = [
            np.nan if (value := contract.chance_value(metric, c)) is None else value
            for c in runs.loc[diverged, "classes"]]
    return runs


def _prefer(runs: pd.DataFrame, column: str, rows, values: pd.Series) -> None:
    """Set runs[column] on `rows` from `values` where those are known; keep summary.json's
    elsewhere."""
    values = pd.Series(values.to_numpy(dtype=float), index=runs.index[rows])
    if column in runs.columns:
        values = values.fillna(pd.to_numeric(runs.loc[rows, column], errors="coerce"))
    runs.loc[rows, column] = values


def _tidy(runs: pd.DataFrame, wide: pd.DataFrame, swept: dict[str, list[str]]) -> pd.DataFrame:
    """One row per run x epoch x metric, carrying the run columns plots and tables group by."""
    metric_cols = [c for c in wide.columns if c not in ("_run", "epoch")]
    long = wide.melt(id_vars=["_run", "epoch"], value_vars=metric_cols, var_name="metric")
    long = long.dropna(subset=["value"])
    params = [p for cols in swept.values() for p in cols if p in runs.columns]
    carry = list(dict.fromkeys(["run", "sweep", "optimizer", "dataset", "model", "status",
                                "trainer.seed", "setting", *params]))
    carry = [c for c in carry if c in runs.columns]
    index = long["_run"].to_numpy(dtype=int)
    out = pd.DataFrame({c: runs[c].to_numpy()[index] for c in carry})
    out["epoch"] = long["epoch"].to_numpy(dtype=int)
    out["metric"] = long["metric"].to_numpy(dtype=object)
    prefix = out["metric"].str.split("_", n=1).str[0]
    is_split = prefix.isin(["train", "val", "test"])
    out["split"] = prefix.where(is_split, "")
    out["measure"] = out["metric"].where(~is_split, out["metric"].str.split("_", n=1).str[-1])
    out["value"] = long["value"].to_numpy(dtype=float)
    return out
