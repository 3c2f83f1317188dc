"""The report: report.md and a self-contained report.html (figures embedded), plus CSV tables.

Sections follow the order of the study: the optimizer comparison, then each optimizer's attribute
sweeps (adam, adagrad, rmsprop, others), then lr sweeps; Optuna studies sit in their sweep's
section.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from optsweep import contract
from optsweep.analysis.figures import write_figures
from optsweep.analysis.load import RunSet, any_simulated
from optsweep.analysis.optuna_study import write_study_figures
from optsweep.analysis.overview import display_overview, overview_table, write_overview
from optsweep.analysis.stats import Verdict, compare_to_best, describe_difference
from optsweep.analysis.sweeps import order_sweeps
from optsweep.analysis.tables import (
    best_settings,
    display_table,
    markdown_table,
    mean_std,
    setting_table,
)
from optsweep.analysis.targets import display_targets, time_to_target
from optsweep.contract import Status

MAX_NAME = 80  # characters; a folder name joining many sweeps is cut to stay readable


def joined_name(names) -> str:
    """Names joined with +, shortened to the first three and a count past MAX_NAME characters."""
    names = list(dict.fromkeys(names))
    name = "+".join(names)
    if len(name) > MAX_NAME:
        name = f"{'+'.join(names[:3])}+{len(names) - 3}-more"
    return name


def default_out_dir(runset: RunSet, root="analysis") -> Path:
    """analysis/<sweep>, or analysis/<sweep1+sweep2...> for several sweeps."""
    return Path(root) / joined_name(s.replace("/", "_") for s in runset.sweeps)


def write_report(runset: RunSet, out_dir=None, *, metric: str = contract.DEFAULT_REPORTED,
                 select: str | None = None, studies=(), figures: dict | None = None,
                 skipped=(), lead=()) -> Path:
    """Write figures, CSV tables, report.md and report.html into out_dir; return report.html.

    The best setting is chosen on ``select`` (e.g. val_acc1; default ``metric``) and reported and
    compared on ``metric``. ``lead``: sections (title, blocks) that come first (a benchmark's
    answer, ``benchmark_report``)."""
    select = select or metric
    out = Path(out_dir) if out_dir is not None else default_out_dir(runset)
    out.mkdir(parents=True, exist_ok=True)
    if figures is None:
        figures = write_figures(runset, out / "figures")
        write_study_figures(studies or (), out / "figures", figures)
    table = setting_table(runset, metric, select)
    best = best_settings(table, select)
    tests = compare_to_best(runset, metric, table=table, select=select)
    overview = overview_table(runset, table, metric, select)
    targets = time_to_target(runset, select)
    _write_csvs(out, runset, table, best, tests, skipped)
    targets.to_csv(out / "time_to_target.csv", index=False, na_rep="never")
    overview.to_csv(out / "overview.csv", index=False)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    picture = write_overview(overview, metric, select, out / "figures" / "overview.png")
    first = [("img", picture)] if picture else []
    first.append(("table", display_overview(overview, metric, select)))
    sections = _sections(runset, (metric, select), table, best, tests, studies, figures, skipped)
    _add_targets(sections, targets)
    sections[0][1][1:1] = first  # after the overview's paragraph, before the best-settings table
    sections[0:0] = list(lead)
    if any_simulated(runset.runs):  # said first, before any number
        sections[0:0] = [("Simulated runs", [("p", contract.SIMULATED_NOTE)])]
    (out / "report.md").write_text(_markdown(sections, out), encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_html(sections), encoding="utf-8")
    return html_path


def _write_csvs(out, runset, table, best, tests, skipped) -> None:
    runset.runs.to_csv(out / "runs.csv", index=False)
    table.to_csv(out / "settings.csv", index=False)
    best.to_csv(out / "best.csv", index=False)
    tests.to_csv(out / "significance.csv", index=False)
    pd.DataFrame(runset.skipped + list(skipped), columns=["path", "reason"]).to_csv(
        out / "skipped.csv", index=False)
    note = f"{contract.SIMULATED_NOTE}\n\n" if any_simulated(runset.runs) else ""
    (out / "settings.md").write_text(note + markdown_table(display_table(table)), encoding="utf-8")


# --- content, shared by both formats: a list of (title, [blocks]); a block is (kind, payload) -----


def _sections(runset, metrics, table, best, tests, studies, figures, skipped) -> list:
    metric, select = metrics
    sections = [("Overview", [("p", _overview(runset, metric, select)),
                              ("table", display_table(best, metric))])]
    study_by_sweep = {}
    for study in studies:
        study_by_sweep.setdefault(study.sweep, []).append(study)
    for sweep in order_sweeps(runset.runs, runset.swept):
        blocks = [("p", _describe_sweep(runset, sweep))]
        blocks += [("li", line) for line in _conclusions(sweep, metrics, best, tests, table)]
        blocks.append(("table", display_table(table[table["sweep"] == sweep], metric)))
        blocks += [("img", path) for path in figures.get(sweep, [])]
        blocks += [("p", _describe_study(s)) for s in study_by_sweep.pop(sweep, [])]
        sections.append((sweep, blocks))
    for sweep, lone in study_by_sweep.items():  # studies whose trial runs were not given
        blocks = [("p", _describe_study(s)) for s in lone]
        images = [("img", p) for p in figures.get(sweep, [])]
        sections.append((f"{sweep} (Optuna study)", blocks + images))
    all_skipped = runset.skipped + list(skipped)
    lines = [f"`{path}`: {reason}" for path, reason in all_skipped] or ["none"]
    sections.append(("Skipped run directories", [("li", line) for line in lines]))
    return sections


def _add_targets(sections: list, targets: pd.DataFrame) -> None:
    """Each sweep's time-to-target table, after its settings table."""
    for title, blocks in sections:
        mine = targets[targets["sweep"] == title] if len(targets) else targets
        if mine.empty:
            continue
        metric, best = mine["metric"].iloc[0], mine["best"].iloc[0]
        where = next(i for i, (kind, _) in enumerate(blocks) if kind == "table") + 1
        blocks[where:where] = [
            ("p", f"Time to target: the first epoch (and wall time, cumulative epoch_seconds, mean "
                  f"over seeds) at which the mean `{metric}` reached the target relative to the "
                  f"sweep's best mean {best:.4f}; never where it did not (time_to_target.csv)."),
            ("table", display_targets(mine))]


def _overview(runset: RunSet, metric: str, select: str) -> str:
    counts = runset.runs["status"].value_counts()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"{len(runset.runs)} runs in {len(runset.sweeps)} sweep(s) ({status}); "
            f"{len(runset.skipped)} run directories skipped. Settings are ranked by final-epoch "
            f"`{select}`, mean over seeds{_chosen_note(metric, select)}; each is reported on "
            f"`{metric}`; diverged runs count among the seeds at chance (a loss at "
            "ln(classes)), interrupted, "
            "pruned and failed runs are shown but not averaged. First each sweep's best setting "
            f"against the optimizer's default (and the optimizer comparison), Welch's test on "
            f"`{metric}`; then the best setting of each sweep (mean ± half-width of the 95% "
            "t-interval over seeds; in each sweep the best is tested against every other setting, "
            "Holm-corrected for the number of comparisons):")


def _describe_sweep(runset: RunSet, sweep: str) -> str:
    runs = runset.runs[runset.runs["sweep"] == sweep]
    params = runset.swept[sweep]
    names = ", ".join(f"`{p}`" for p in params) or "nothing (repeats only)"
    groups = ", ".join(sorted(f"{o} on {d}" for o, d in
                              runs[["optimizer", "dataset"]].drop_duplicates().astype(str).values))
    return f"Swept: {names}. Runs: {len(runs)} ({groups})."


def _chosen_note(metric: str, select: str) -> str:
    if select == metric:
        return ""
    return " (chosen on validation, never on the test set)"


def _conclusions(sweep, metrics, best, tests, table) -> list[str]:
    metric, select = metrics
    lines = []
    for b in best[best["sweep"] == sweep].itertuples(index=False):
        score = mean_std(getattr(b, f"{metric}_mean"), getattr(b, f"{metric}_std"), b.n)
        chosen = "" if select == metric else f" (by {select} {getattr(b, f'{select}_mean'):.4f})"
        lines.append(f"Best on {b.dataset}{chosen}: **{b.setting}**, {metric} {score}.")
        mine = tests[(tests["sweep"] == sweep) & (tests["dataset"] == b.dataset)]
        for t in mine.itertuples(index=False):
            row = t._asdict()
            lines.append(f"{t.setting}: {describe_difference(row, metric)} than {b.setting}, "
                         f"{t.verdict}.")
        k = int(mine["comparisons"].max()) if len(mine) else 0
        if k:
            lines.append(f"Welch's t-test on {metric}, alpha 0.05, Holm-corrected for {k} "
                         f"comparison{'s' if k > 1 else ''} (raw and adjusted p-values in "
                         "significance.csv).")
        noisy = mine[mine["outcome"] == Verdict.TIED]
        if len(mine) and len(noisy) == len(mine):
            lines.append(f"No setting differs from {b.setting} beyond seed noise (Welch, alpha 0.05"
                         f"{', Holm-corrected' if k > 1 else ''}).")
    others = [s.value for s in Status if s != Status.COMPLETED and s.value in table.columns]
    unfinished = table[table["sweep"] == sweep][["setting", *others]]
    for row in unfinished.itertuples(index=False):
        parts = [f"{n} {s}" for s, n in zip(others, row[1:]) if n]
        if parts:
            lines.append(f"{row[0]}: {', '.join(parts)} (marked in the figures).")
    return lines


def _describe_study(study) -> str:
    best = study.best()
    counts = study.trials["state"].value_counts().to_dict()
    text = f"Optuna study `{study.name}` ({study.direction}): {len(study.trials)} trials {counts}."
    if best is not None:
        params = {k.removeprefix("params_"): v for k, v in best.items() if k.startswith("params_")}
        text += f" Best trial {int(best['number'])}: objective {best['value']:.4f} with {params}."
    if study.notes:
        text += " " + "; ".join(f"{note[0].upper()}{note[1:]}" for note in study.notes) + "."
    return text


# --- formats --------------------------------------------------------------------------------------


def _markdown(sections, out: Path) -> str:
    parts = ["# optsweep analysis\n"]
    for title, blocks in sections:
        parts.append(f"\n## {title}\n")
        for kind, payload in blocks:
            if kind == "p":
                parts.append(f"\n{payload}\n")
            elif kind == "li":
                parts.append(f"- {payload}\n")
            elif kind == "table":
                parts.append("\n" + markdown_table(payload))
            elif kind == "img":
                rel = Path(payload).resolve().relative_to(out.resolve()) \
                    if Path(payload).resolve().is_relative_to(out.resolve()) else Path(payload)
                parts.append(f"\n![{Path(payload).stem}]({rel.as_posix()})\n")
    return "".join(parts)


CSS = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
       "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
       "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}img{max-width:100%}")


def _html(sections) -> str:
    body = ["<h1>optsweep analysis</h1>"]
    for title, blocks in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        items = []
        for kind, payload in blocks:
            if kind == "li":
                items.append(f"<li>{_inline(payload)}</li>")
                continue
            if items:
                body.append("<ul>" + "".join(items) + "</ul>")
                items = []
            if kind == "p":
                body.append(f"<p>{_inline(payload)}</p>")
            elif kind == "table":
                body.append(payload.to_html(index=False, escape=True, border=0, na_rep="–"))
            elif kind == "img":
                data = base64.b64encode(Path(payload).read_bytes()).decode("ascii")
                body.append(f'<p><img alt="{html.escape(Path(payload).stem)}" '
                            f'src="data:image/png;base64,{data}"></p>')
        if items:
            body.append("<ul>" + "".join(items) + "</ul>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>optsweep analysis</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` in HTML, everything else escaped."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)
