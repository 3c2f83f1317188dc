"""``python -m optsweep.confirm``: rerun a finished sweep's chosen setting over new seeds.

    python -m optsweep.confirm multirun/adam_weight_decay --seeds 5
    python -m optsweep.confirm multirun/lr_search/adam --seeds 5 --out multirun/adam_confirm
    python -m optsweep.confirm multirun/lr_grid --dry-run          # print the command only

A sweep picks its best setting from the same seeds it then reports: the winner's score is biased
upwards (the winner's curse). The study's protocol therefore confirms the chosen setting on seeds
that played no part in choosing it. The setting is chosen as the analysis chooses
(``tables.best_settings`` on ``--select``, a validation metric: never the test set), among the runs
the sweeper scored (``contract.SCORED``: a setting that diverged on any seed is never chosen,
however high its last finished epoch was); its overrides are read back from
the chosen run's ``.hydra/overrides.yaml`` (for an Optuna study, with its trial's parameters from
``optuna.db``), a sweep preset (``sweep=NAME``) is replaced by the config values it set, and the
runs go into one named sweep directory (``<PATH>_confirm``), so that running the command again
resumes it: optsweep itself skips finished runs. Then the mean and 95% interval over the new seeds
are printed and the confirmation sweep's report is written (``<out>/report/``).
"""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from pathlib import Path

import yaml

from optsweep import contract
from optsweep.analysis.load import AnalysisInputError, RunSet, load_runs
from optsweep.analysis.sweeps import SEED
from optsweep.overrides import PREFIXES, override_key
from optsweep.rundir import RunDir, SweepDir, flatten

# never carried over: a search space (space=) belongs to the sweep that chose, not to the reruns
SETTING_FREE = ("trainer.seed", "hydra.", "+hydra.", "++hydra.", "sweep=", "space=")
PLAIN = re.compile(r"^[\w./:+-]+$")  # override values that need no quoting


class ConfirmError(Exception):
    """The path or the arguments cannot give a confirmation sweep (one line, exit status 2)."""


def selection(runset: RunSet, select: str) -> str:
    """``select``, once it is known to choose on validation: a validation metric that the runs
    measured, in runs whose sweep did not optimise a test metric (the sampler would have chosen
    its trials on the test set). Never falls back to another metric."""
    problem = contract.selection_problem(select)
    if problem:
        raise ConfirmError(f"--select {select}: {problem}")
    objectives = sorted({str(o) for o in runset.runs["objective_name"].dropna()})
    tested = [o for o in objectives if contract.selection_problem(o)]
    if tested:
        raise ConfirmError(f"its runs' objective is {', '.join(tested)} (trainer.objective, or "
                           "data.val_fraction=0: no validation split), so a sweeper chose on the "
                           "test set; rerun the sweep with data.val_fraction above 0 and "
                           "trainer.objective=auto or a val_* metric")
    scored, column = runset.runs[runset.runs["status"].isin(contract.SCORED)], f"final_{select}"
    if not scored.empty and (column not in scored.columns or scored[column].isna().all()):
        raise ConfirmError(f"--select {select}: no run measured it (no validation split?); "
                           "rerun the sweep with data.val_fraction above 0")
    return select


def chosen_run(runset: RunSet, metric: str, select: str) -> tuple[dict, list[int]]:
    """The chosen setting's first scored run (a runs row) and the seeds the sweep used."""
    from optsweep.analysis.tables import choosable, chosen_runs

    if choosable(runset.runs).empty:
        if runset.runs["status"].isin(contract.SCORED).any():
            raise ConfirmError("holds no setting without a diverged seed (a setting that "
                               "diverged is never chosen); rerun the sweep in a lower lr range")
        raise ConfirmError("holds no finished run the sweeper scored (completed or early-stopped;"
                           " a diverged, pruned or failed run is never chosen) to choose a "
                           "setting from")
    chosen = chosen_runs(runset, select, metric)  # the benchmark names its best by it too
    if len(chosen) != 1:
        found = ", ".join(f"{b.sweep} ({b.dataset})" for b in chosen.itertuples(index=False))
        raise ConfirmError(f"holds {len(chosen)} sweeps ({found}); give one sweep's directory")
    seeds = runset.runs[SEED] if SEED in runset.runs.columns else []
    used = sorted({int(s) for s in seeds if s == s})  # s == s: not NaN
    return chosen.iloc[0].to_dict(), used


def new_seeds(used: list[int], count: int) -> list[int]:
    """The ``count`` smallest non-negative seeds the sweep did not use."""
    seeds, candidate = [], 0
    while len(seeds) < count:
        if candidate not in used:
            seeds.append(candidate)
        candidate += 1
    return seeds


def setting_overrides(run_dir: Path) -> list[str]:
    """The chosen run's own overrides without its seed and Hydra's keys; a sweep preset replaced by
    the group choices it made, and an Optuna trial's parameters from its study."""
    overrides = RunDir(run_dir).overrides()
    kept = {override_key(o): o for o in overrides
            if not o.lstrip(PREFIXES).startswith(SETTING_FREE)}
    if any(o.startswith("sweep=") for o in overrides):
        for group, choice in RunDir(run_dir).hydra_choices().items():
            if (choice is not None and not group.startswith("hydra")
                    and group not in ("sweep", "space")):
                kept.setdefault(group, f"{group}={choice}")
    for name, value in trial_params(run_dir).items():
        kept[name] = f"{name}={_value(value)}"
    kept.update(preset_values(list(kept.values()), run_dir))
    return list(kept.values())


def trial_params(run_dir: Path) -> dict:
    """The parameters of the Optuna trial that ran in ``run_dir`` (job folder = trial number);
    {} outside an Optuna study."""
    from optsweep.analysis.optuna_study import read_studies

    study_file = SweepDir(run_dir.parent).optuna_db
    if not study_file.is_file() or not run_dir.name.isdigit():
        return {}
    for study in read_studies(study_file):
        for trial in study.study.trials:
            if trial.number == int(run_dir.name):
                return dict(trial.params)
    return {}


def preset_values(overrides: list[str], run_dir: Path) -> dict:
    """{key: override} for every config value of the chosen run that ``overrides`` alone would not
    give (a sweep preset's ``trainer.epochs: 5``), found by composing them with Hydra."""
    from hydra import compose, initialize_config_dir

    from optsweep.conf_tree import CONFIG_NAME, conf_dir
    from optsweep.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        composed = compose(CONFIG_NAME, overrides=overrides)
    from omegaconf import OmegaConf

    config = RunDir(run_dir).config() or {}
    want = flatten(config)
    have = flatten(OmegaConf.to_container(composed, resolve=False))
    return {key: f"{'' if key in have else '+'}{key}={_value(_leaf(config, key))}"
            for key, value in want.items()
            if not contract.result_free(key) and key != SEED and have.get(key, object()) != value}


def command(out: Path, overrides: list[str], seeds: list[int]) -> list[str]:
    return [sys.executable, "-m", "optsweep", "-m", *overrides,
            f"{SEED}={','.join(map(str, seeds))}", f"hydra.sweep.dir={_value(str(out))}"]


def summarise(out: Path, metric: str, seeds: list[int]) -> tuple[float, float, int]:
    """(mean, 95% half-width, n) of the final ``metric`` over the finished confirmation runs."""
    from optsweep.analysis.tables import ci95_half

    runs = load_runs([out]).runs
    runs = runs[runs["status"].isin(contract.AVERAGED) & runs[SEED].isin(seeds)]
    values = runs[f"final_{metric}"].dropna()
    std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return float(values.mean()) if len(values) else math.nan, ci95_half(std, len(values)), \
        len(values)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m optsweep.confirm",
                                     description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("path", metavar="PATH", help="a finished grid sweep or Optuna study")
    parser.add_argument("--seeds", type=int, default=5, help="new seeds to run (default 5)")
    # names are checked in main, so that a bad one is one line naming the known ones
    parser.add_argument("--select", default=contract.DEFAULT_SELECT, metavar="NAME",
                        help="validation metric that chooses the setting, as in the analysis "
                             f"({', '.join(contract.SELECTABLE)}; "
                             f"default {contract.DEFAULT_SELECT})")
    parser.add_argument("--metric", default=contract.DEFAULT_REPORTED, metavar="NAME",
                        help="metric reported over the new seeds "
                             f"(default {contract.DEFAULT_REPORTED})")
    parser.add_argument("--out", metavar="DIR",
                        help="the confirmation sweep (default PATH_confirm)")
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    parser.add_argument("overrides", nargs="*", help="more overrides for every run, e.g. "
                        "trainer.device=cuda")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    path = Path(args.path)
    out = Path(args.out) if args.out else path.with_name(path.name + "_confirm")
    try:
        if args.seeds < 1:
            raise ConfirmError(f"--seeds {args.seeds}: give 1 or more")
        if contract.metric_problem(args.metric):
            raise ConfirmError(f"--metric {args.metric}: {contract.metric_problem(args.metric)}")
        runset = load_runs([path])
        select = selection(runset, args.select)
        run, used = chosen_run(runset, args.metric, select)
        seeds = new_seeds(used, args.seeds)
        overrides = {override_key(o): o for o in setting_overrides(Path(run["run"]))}
        overrides.update({override_key(o): o for o in args.overrides})  # the user's word wins
        cmd = command(out, list(overrides.values()), seeds)
    except (AnalysisInputError, ConfirmError) as err:
        print(f"optsweep.confirm: error: {path}: {err}".replace(f"{path}: {path}:", f"{path}:"),
              file=sys.stderr)
        return 2
    print(f"chosen on {select}: {run['setting']} ({run['sweep']}, run {run['run']}); "
          f"new seeds {','.join(map(str, seeds))}", flush=True)
    print("+ " + " ".join(cmd[1:]), flush=True)
    if args.dry_run:
        return 0
    code = subprocess.run(cmd).returncode
    if code == 2:  # refused before any job ran (a different command into --out, a bad override)
        return code
    mean, half, n = summarise(out, args.metric, seeds)
    interval = "" if math.isnan(half) else f" ± {half:.4f} (95% CI)"
    print(f"{args.metric} over {n} new seed(s): {mean:.4f}{interval}, n={n}")
    from optsweep.analysis.report import write_report

    report = write_report(load_runs([out]), out / "report", metric=args.metric, select=select)
    print(f"report: {report}")
    return code


# --- small helpers ------------------------------------------------------------------------------




def _leaf(config: dict, key: str):
    """The value at the dotted ``key`` of a nested config, as the config holds it (a list stays a
    list, which ``flatten`` writes as text)."""
    for part in key.split("."):
        config = config[part]
    return config


def _value(value) -> str:
    """A value in Hydra's override grammar: as YAML writes it, quoted where the grammar needs it."""
    if isinstance(value, str):
        return value if PLAIN.match(value) else "'" + value.replace("'", "\\'") + "'"
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
    return text.removesuffix("\n...").strip()


if __name__ == "__main__":
    sys.exit(main())
