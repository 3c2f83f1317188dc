"""The benchmark's answer, the first section of its report, and the CSV files behind it.

Per workload: each optimizer's confirmed result (mean and 95% interval over the new seeds) beside
the same optimizer at its defaults (the seed study's protocol), with Holm-corrected verdicts
against the best (the optimizer whose study found the best validation value: the confirmation
runs the verdicts test did not choose it); then the tuning-budget curves (``budget``), the
performance profile across workloads (``profile``), the lr sensitivity of every trial, and one
paragraph that says which optimizer wins where and how sure that is. The report's other sections
(every study and confirmation sweep on its own) follow, as ``report.write_report`` writes them.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from optsweep.analysis.benchmark import (
    Benchmark,
    comparison,
    defaults_trials,
    load_benchmark,
    objective_of,
    run_times,
    study_accounts,
    study_choices,
    times_to_target,
    trials_table,
)
from optsweep.analysis.benchmark_figures import (
    budget_figure,
    lr_figure,
    profile_figure,
    stability_figure,
)
from optsweep.analysis.budget import CAVEAT, budget_curves
from optsweep.analysis.load import TRUTH_PREFIX
from optsweep.analysis.profile import MIN_SEEDS, performance_profile, score_intervals
from optsweep.analysis.stability import stability_lines, winner_stability
from optsweep.analysis.stats import (
    ALPHA,
    Verdict,
    compare_to_best,
    detectable_difference,
    pooled_sd,
    seeds_needed,
    setting_samples,
)
from optsweep.analysis.sweeps import format_value, short_names
from optsweep.analysis.tables import lower_is_better, mean_std, setting_table
from optsweep.contract import DEFAULT_REPORTED, DEFAULT_SELECT

TITLE = "Benchmark: which optimizer, fairly compared"


def results_table(bench: Benchmark, metric: str, select: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per workload x optimizer: confirmed and defaults means, intervals, n, the value
    its study chose on (``study_value``), the verdict against the best and the chosen setting;
    the Holm-corrected comparisons). The best is the optimizer whose study found the best
    ``select`` (``benchmark.study_choices``), tested against every other on the confirmation
    runs' ``metric``."""
    tuned = comparison(bench, "confirmed")
    if tuned.runs.empty:
        return pd.DataFrame(), pd.DataFrame()
    table = setting_table(tuned, metric, select)
    choices = study_choices(bench, select).set_index(["workload", "optimizer"])
    named = {w: o for (w, o), best in choices["best"].items() if best}
    tests = compare_to_best(tuned, metric, table=table, select=select, best=named)
    rows = []
    for r in table.itertuples(index=False):
        mine = tests[(tests["sweep"] == r.sweep) & (tests["setting"] == r.setting)]
        outcome, said = ((Verdict.BEST, Verdict.BEST) if named.get(r.sweep) == r.setting else
                         (mine["outcome"].iloc[0], mine["verdict"].iloc[0]) if len(mine) else
                         (Verdict.UNTESTED, f"{Verdict.UNTESTED} (no best named)"))
        rows.append({"workload": r.sweep, "optimizer": r.setting, "n": r.n,
                     "diverged": r.diverged,
                     "mean": getattr(r, f"{metric}_mean"), "ci95": getattr(r, f"{metric}_ci95"),
                     "std": getattr(r, f"{metric}_std"), f"{select}_mean": getattr(
                         r, f"{select}_mean"),
                     "study_value": choices["study_value"].get((r.sweep, r.setting), math.nan),
                     "outcome": str(outcome), "verdict": str(said),
                     "p_adjusted": mine["p_adjusted"].iloc[0] if len(mine) else float("nan"),
                     "setting": chosen_setting(bench, r.sweep, r.setting)})
    results = pd.DataFrame(rows)
    truth = f"{TRUTH_PREFIX}{metric}"
    if truth in tuned.runs.columns:  # simulated: each confirmed setting's noise-free expectation
        expected = tuned.runs.groupby(["sweep", "setting"])[truth].mean()
        results["truth"] = [expected.get((w, o), math.nan)
                            for w, o in zip(results["workload"], results["optimizer"])]
    defaults = comparison(bench, "defaults")
    if not defaults.runs.empty:
        base = setting_table(defaults, metric, select).drop(columns="optimizer")
        base = base.rename(columns={"sweep": "workload", "setting": "optimizer",
                                    f"{metric}_mean": "defaults_mean",
                                    f"{metric}_ci95": "defaults_ci95",
                                    f"{metric}_std": "defaults_std", f"{metric}_n": "defaults_n",
                                    "diverged": "defaults_diverged"})
        results = results.merge(base[["workload", "optimizer", "defaults_mean", "defaults_ci95",
                                      "defaults_std", "defaults_n", "defaults_diverged"]],
                                on=["workload", "optimizer"], how="left")
    return results, tests


def chosen_setting(bench: Benchmark, workload: str, optimizer: str) -> str:
    """The confirmed setting's values of the keys its study searched ('lr=0.00123, beta1=0.85')."""
    trials = bench.of("trial")
    trials = trials[(trials["workload"] == workload) & (trials["optimizer"] == optimizer)]
    confirmed = bench.of("confirmed")
    confirmed = confirmed[(confirmed["workload"] == workload)
                          & (confirmed["optimizer"] == optimizer)]
    if trials.empty or confirmed.empty:
        return ""
    keys = [c for c in trials.columns if c.startswith("optimizer.")
            and trials[c].astype(str).nunique() > 1]
    names = short_names(keys)
    first = confirmed.iloc[0]
    return ", ".join(f"{names[k]}={_short(first[k])}" for k in keys)


def _short(value) -> str:
    """3 significant digits, more where they would round a decay rate (0.9999) to 1."""
    if not isinstance(value, float):
        return format_value(value)
    short = f"{value:.3g}"
    return f"{value:.6g}" if float(short) == 1.0 != value else short


def display_results(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The results as people read them: tuned and defaults side by side, each with how many of
    its seeds diverged (counted in n at chance: ``contract.chance_value``)."""
    shown = pd.DataFrame({"workload": results["workload"], "optimizer": results["optimizer"]})
    shown[f"tuned, confirmed: {metric}"] = [mean_std(m, s, int(n)) for m, s, n in zip(
        results["mean"], results["std"], results["n"])]
    shown["diverged"] = _diverged_of(results["diverged"], results["n"])
    shown["against the best"] = results["verdict"]
    if "study_value" in results.columns:
        shown["study's best (names the best)"] = [f"{v:.4f}" if v == v else "none"
                                                  for v in results["study_value"]]
    if "defaults_mean" in results.columns:
        shown[f"at defaults: {metric}"] = [
            mean_std(m, s, int(n) if n == n else 0) for m, s, n in zip(
                results["defaults_mean"], results["defaults_std"], results["defaults_n"])]
        shown["defaults diverged"] = _diverged_of(results["defaults_diverged"],
                                                  results["defaults_n"])
    shown["chosen setting"] = results["setting"]
    if "truth" in results.columns:
        shown[f"truth: expected {metric}"] = [f"{v:.4f}" for v in results["truth"]]
    return shown


def _diverged_of(diverged: pd.Series, n: pd.Series) -> list[str]:
    """'1 of 3': the seeds that diverged among those counted; '–' where none was run."""
    return ["–" if not c == c else f"{int(d)} of {int(c)}" for d, c in zip(diverged, n)]


def truth_lines(results: pd.DataFrame, metric: str) -> list[str]:
    """Simulated workloads: which confirmed setting truly is the best, beside the answer."""
    if "truth" not in results.columns:
        return []
    lines = []
    for workload, rows in results.groupby("workload", sort=False):
        ranked = rows.sort_values("truth", ascending=lower_is_better(metric))
        named = rows.loc[rows["outcome"] == Verdict.BEST, "optimizer"].tolist()
        order = ", ".join(f"{r.optimizer} {r.truth:.4f}" for r in ranked.itertuples())
        lines.append(f"Truth (simulated, noise-free) on {workload}: the confirmed settings' "
                     f"expected {metric} rank {order}; the answer names "
                     f"{named[0] if named else 'none'} best.")
    return lines


WANTED = 0.01  # the difference the power statement prices in seeds: one point of accuracy


def power_lines(bench: Benchmark, results: pd.DataFrame, metric: str,
                alpha: float = ALPHA, wanted: float = WANTED) -> list[str]:
    """Per workload: the seed spread of the confirmation runs pooled over optimizers (K x (n - 1)
    degrees of freedom), the smallest difference the benchmark's seeds detect at 80% power with
    Holm's first-step alpha (alpha / comparisons, Welch's df 2 (n - 1): benchmarks/calibration.py
    measured this against simulated benchmarks) and the seeds ``wanted`` would need."""
    tuned = comparison(bench, "confirmed").runs
    if tuned.empty or f"final_{metric}" not in tuned.columns:
        return []
    samples = setting_samples(tuned, metric)
    lines = []
    for workload, rows in results.groupby("workload", sort=False):
        sd, df = pooled_sd(v for (sweep, _, _), v in samples.items() if sweep == workload)
        comparisons = max(len(rows) - 1, 1)
        n = int(rows["n"].min())
        if not df or not sd > 0 or n < 2:
            continue
        corrected = alpha / comparisons
        detectable = detectable_difference(sd, None, n, corrected)
        needed = seeds_needed(wanted, sd, None, corrected)
        lines.append(
            f"Power on {workload}: the confirmation runs' {metric} spread over seeds is "
            f"{sd:.4f} (pooled over {rows['optimizer'].nunique()} optimizers, {df} degrees of "
            f"freedom); with {n} seeds each and alpha {alpha:g}/{comparisons} (Holm's first "
            f"step), a true difference of {detectable:.4f} is found 80% of the time; "
            f"{wanted:g} would need {needed if needed else 'more than 1000'} seeds each.")
    return lines


def sampler_line(accounts: pd.DataFrame) -> str:
    """What searched: the sampler, and how much of each study was random draws (TPE samples at
    random until its n_startup_trials ended: at small budgets a 'TPE' study is random search)."""
    samplers = ", ".join(dict.fromkeys(accounts["sampler"]))
    drawn = accounts["random draws"].dropna()
    share = (f"{int(drawn.sum())} of their {int(accounts.loc[drawn.index, 'trials'].sum())} trials "
             "were random draws (TPE's start-up: it samples at random until n_startup_trials have "
             "ended; a queued defaults trial counts towards them but is no draw)" if len(drawn)
             else "random draws not known for this sampler")
    return (f"The studies (study_accounts.csv): sampler {samplers}; {share}. Each study's trials "
            "by how they ended: Optuna was told a diverged trial's worst value, and the curves "
            "count it at chance; a failed or pruned one gives no value.")


def display_profile(table: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    shown = table[["workload", "optimizer"]].copy()
    shown["target"] = [f"{m} {t:g}" for m, t in zip(table["metric"], table["target"])]
    shown["median epochs"] = [finite_or_never(v) for v in table["epochs"]]
    shown["median seconds"] = [finite_or_never(v, "s") for v in table["seconds"]]
    if "steps" in table.columns:
        shown["median steps"] = [count_or_never(v) for v in table["steps"]]
        shown["median passes"] = [count_or_never(v) for v in table["passes"]]
        shown["median seconds with evaluation"] = [finite_or_never(v, "s")
                                                   for v in table["seconds_with_eval"]]
    shown["ratio (epochs)"] = [finite_or_never(v, never="inf") for v in table["ratio_epochs"]]
    scores_by = scores.set_index("optimizer")
    for measure in ("epochs", "seconds"):
        shown[f"score ({measure})"] = [score_text(scores_by.loc[o], measure)
                                       for o in table["optimizer"]]
    return shown


def score_text(score: pd.Series, measure: str) -> str:
    """'0.833 (0.667-1.000)': the score and its interval over resampled seeds, where given."""
    text = f"{score[f'area_{measure}']:.3f}"
    low, high = score.get(f"area_{measure}_low", math.nan), score.get(f"area_{measure}_high",
                                                                       math.nan)
    return text if pd.isna(low) else f"{text} ({low:.3f}-{high:.3f})"


def finite_or_never(value: float, unit: str = "", never: str = "never") -> str:
    """'3 s', '2.5', or ``never`` for an infinite time (or ratio); 'not recorded' for nan."""
    if math.isnan(value):
        return "not recorded"
    return never if not math.isfinite(value) else f"{value:.3g} {unit}".strip()


def count_or_never(value: float) -> str:
    """'1,407' steps or passes (a median of two may end in .5), 'never', or 'not recorded'."""
    if not math.isfinite(value):
        return finite_or_never(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def answer(results: pd.DataFrame, scores: pd.DataFrame, metric: str, select: str) -> list[str]:
    """Which optimizer wins where, and how sure: one line per workload, one across them."""
    lines = []
    for workload, rows in results.groupby("workload", sort=False):
        best = rows[rows["outcome"] == Verdict.BEST]
        if best.empty:
            continue
        b = best.iloc[0]
        named = {v: rows.loc[rows["outcome"] == v, "optimizer"].tolist() for v in Verdict}
        text = (f"On {workload}, **{b.optimizer}** is best: {metric} "
                f"{mean_std(b['mean'], b['std'], int(b['n']))} over new seeds (named on its "
                f"study's best {select}, a seed these runs do not use).")
        if better := named[Verdict.BETTER]:
            text += (f" But {', '.join(better)} {'is' if len(better) == 1 else 'are'} better on "
                     f"{metric} beyond seed noise (Welch, Holm-corrected): the best on {select} "
                     f"is not the best on {metric}.")
        if worse := named[Verdict.WORSE]:
            text += f" It beats {', '.join(worse)} beyond seed noise (Welch, Holm-corrected)."
        if tied := named[Verdict.TIED]:
            text += (f" It is within seed noise of {', '.join(tied)}: on this evidence they are "
                     "not distinguishable.")
        if untested := named[Verdict.UNTESTED]:
            text += f" Against {', '.join(untested)}: not tested (needs 2 or more seeds each)."
        lines.append(text)
    if len(scores) and not (scores[["area_epochs", "area_seconds"]] > 0).any().any():
        lines.append("No optimizer's median confirmation run reached a workload's validation "
                     "target: the performance profile cannot rank them (lower the targets, "
                     "workload.target=..., or train longer).")
    elif len(scores):
        ranked = ", ".join(f"{r.optimizer} {r.area_epochs:.2f}" for r in scores.itertuples())
        lines.append(f"Across {int(scores['workloads'].max())} workload(s), the performance "
                     f"profile of the epochs to each workload's validation target scores {ranked} "
                     "(1: fastest on every workload; 0: never within 4x of the fastest).")
    return lines


def benchmark_section(bench: Benchmark, out: Path, metric: str, select: str) -> tuple:
    """(title, blocks) of the benchmark's answer; writes its CSV files and figures into out."""
    results, tests = results_table(bench, metric, select)
    objective = objective_of(bench)
    trials = trials_table(bench)
    curves = budget_curves(trials, objective, int(bench.manifest["settings"]["budget"]))
    per_run = run_times(bench)
    table, scores = performance_profile(times_to_target(bench, per_run))
    scores = scores.merge(score_intervals(per_run), on="optimizer", how="left")
    defaults = defaults_trials(bench)  # each study's optimization_results.yaml, read once
    accounts = study_accounts(bench, defaults)
    stability = winner_stability(bench.of("confirmed"), metric)
    accounts.to_csv(out / "study_accounts.csv", index=False)
    stability.to_csv(out / "winner_stability.csv", index=False)
    results.to_csv(out / "benchmark_results.csv", index=False)
    tests.to_csv(out / "benchmark_significance.csv", index=False)
    curves.to_csv(out / "budget_curves.csv", index=False)
    table.to_csv(out / "performance_profile.csv", index=False)
    scores.to_csv(out / "performance_scores.csv", index=False)
    trials.to_csv(out / "lr_sensitivity.csv", index=False)
    figures = out / "figures"
    settings = bench.manifest["settings"]
    blocks = [("p", f"{len(bench.optimizers)} optimizers x {len(bench.workloads)} workload(s); "
                    f"each tuned by an Optuna study of {settings['budget']} trials (space "
                    f"`{settings['space']}`, the same sampler and seed for all, pruner "
                    f"`{settings['pruner']}`), its best trial's setting rerun over "
                    f"{settings['seeds']} new seeds. Chosen on `{select}` (the best optimizer "
                    "on its study's best trial, so that the verdicts test runs the choice did "
                    "not see), reported on "
                    f"`{metric}`{' (lower is better)' if lower_is_better(metric) else ''}.")]
    blocks += [("li", line) for line in answer(results, scores, metric, select)]
    blocks += [("li", line) for line in stability_lines(stability, metric)]
    blocks += [("li", line) for line in power_lines(bench, results, metric)]
    blocks += [("li", line) for line in truth_lines(results, metric)]
    blocks += [("li", line) for line in defaults_lines(defaults, objective)]
    if len(results):
        blocks.append(("table", display_results(results, metric)))
    if len(accounts):
        blocks += [("p", sampler_line(accounts)), ("table", accounts)]
    if len(table):
        blocks += [("p", "Performance profile (Dolan and More 2002, as AlgoPerf): per workload "
                         "the median over the confirmation runs of the time to the target on "
                         "validation, its ratio to the fastest optimizer, and the area under the "
                         "fraction of workloads within ratio tau, tau = 1..4, normalised to "
                         "[0, 1] (performance_profile.csv, performance_scores.csv). In brackets, "
                         "where an optimizer has at least "
                         f"{MIN_SEEDS} seeds on every workload: the middle 95% of its score over "
                         "resampled seeds (a percentile bootstrap)."),
                   ("table", display_profile(table, scores))]
    pictures = [profile_figure(table, figures / "performance_profile.png"),
                budget_figure(curves, figures / "budget_curves.png"),
                lr_figure(trials, objective, figures / "lr_sensitivity.png"),
                stability_figure(stability, figures / "winner_stability.png")]
    blocks.append(("p", f"{CAVEAT} (budget_curves.csv). Every trial's `{objective}` against its "
                        "lr: lr_sensitivity.csv."))
    blocks += [("img", p) for p in pictures if p is not None]
    return TITLE, blocks


def write_benchmark_report(root, out, *, metric: str = DEFAULT_REPORTED,
                           select: str = DEFAULT_SELECT) -> Path:
    """The report of the benchmark at ``root``: its answer first, then every sweep's section."""
    from optsweep.analysis.optuna_study import find_studies
    from optsweep.analysis.report import write_report
    from optsweep.analysis.tables import selection_metric

    bench = load_benchmark(root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    select = selection_metric(bench.runset, select, metric)
    lead = benchmark_section(bench, out, metric, select)
    studies, bad = find_studies([root])
    return write_report(bench.runset, out, metric=metric, select=select, studies=studies,
                        skipped=bad, lead=[lead])


def defaults_lines(studies: pd.DataFrame, objective: str) -> list[str]:
    """Whether each study ran its optimizer's defaults (as trial 0; ``studies``:
    ``benchmark.defaults_trials``): one line when all did in full, else one line per default a
    space could not hold and per study that ran none."""
    lines = []
    for row in studies.itertuples():
        where = f"{row.optimizer} ({row.workload})"
        ran = row.trial is not None and not pd.isna(row.trial)
        lines += [f"{where}: {key} {why}, so trial {int(row.trial)} ran the other defaults with "
                  f"{key} drawn." if ran else f"{where}: {key} {why}."
                  for key, why in row.left_out.items()]
        if not ran:
            lines.append(f"{where}: no trial of its study ran the optimizer's defaults (its space "
                         "holds none of them, or the study was begun without "
                         "hydra.sweeper.enqueue_defaults): its tuned setting may be below them.")
    if len(studies) and not lines:
        which = "trial 0" if set(studies["trial"]) == {0} else "one trial"
        lines.append(f"Every study's {which} ran its optimizer's defaults, so each study's best "
                     f"trial is at least the defaults on `{objective}` at the study's seed.")
    return lines
