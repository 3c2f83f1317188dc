"""How every figure of the report looks: one colour per setting, swept values at 3 significant
digits, integer epoch ticks, legends outside the panels, nothing clipped.

The colour of each setting is decided once per sweep (`sweep_looks`) and handed to every figure
that draws the sweep, so that a setting keeps its colour from the curves to the final-value figure.
Colours come from seaborn's `colorblind` palette. An optimizer keeps one colour across the whole
report (adam is the same blue in the overview, the comparison and the lr figure); in a sweep that
crosses optimizers with a value (the lr grid) the value is a sequential hue (`SEQUENTIAL`, light
for the smallest to dark for the largest, the same in every optimizer's panel), since the curves
are faceted by optimizer there. Nothing here sets a global theme: every figure is a seaborn
`FacetGrid` (`facet_grid`) that takes the seaborn style in force when it is drawn, so that
``with sns.axes_style("whitegrid"): write_figures(...)`` restyles the report the seaborn way
(titles and labels keep their sizes: they are set to fit the panels).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from optsweep.analysis.sweeps import SEED, setting_order, short_names
from optsweep.contract import AVERAGED, Status

COLORBLIND = tuple(sns.color_palette("colorblind", 10))
# Fixed slots, so that an optimizer has the same colour in every report, whatever else it holds.
OPTIMIZER_SLOTS = ("adam", "adagrad", "rmsprop", "sgd", "adamw", "adadelta", "adamax", "nadam",
                   "radam", "rprop")
SEQUENTIAL = "crest"  # seaborn's light-to-dark palette: every shade reads on white
LINESTYLES = ("-", "--", ":", "-.")  # a second, third... round of the 10 colours changes the dash
DIGITS = 3  # significant digits of a swept value in labels (lr=2.02e-05, not 2.01945e-05)
# shown, never averaged (contract.AVERAGED)
UNFINISHED = tuple(s.value for s in Status if s not in AVERAGED)
LEGEND_ROWS_PER_IN = 5.0  # 8-point legend entries per inch of figure height
DPI = 80  # enough to read on screen; PNG encoding time grows with the pixel count


@dataclass(frozen=True)
class Look:
    """How one setting is drawn and named in every figure of its sweep."""

    label: str  # its swept values at 3 significant digits, and its seed count or status
    colour: tuple
    linestyle: str = "-"


def optimizer_colour(name: str) -> tuple:
    slot = OPTIMIZER_SLOTS.index(name) if name in OPTIMIZER_SLOTS else zlib.crc32(name.encode())
    return COLORBLIND[slot % len(COLORBLIND)]


def optimizer_rank(name) -> tuple:
    """Sort key: the study's optimizers in their slot order, any other alphabetically after."""
    name = str(name)
    if name in OPTIMIZER_SLOTS:
        return (OPTIMIZER_SLOTS.index(name), "")
    return (len(OPTIMIZER_SLOTS), name)


def short_value(value, digits: int = DIGITS) -> str:
    """A swept value as a label shows it: floats at `digits` significant digits."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def setting_names(runs: pd.DataFrame, params: list[str]) -> dict[str, str]:
    """{setting: 'lr=2.02e-05'}: the setting's swept values at 3 significant digits, with more
    digits only where two settings would otherwise read the same."""
    first = runs.drop_duplicates("setting").set_index("setting")
    names = short_names(params)
    for digits in range(DIGITS, 18):
        shown = {}
        for setting, row in first.iterrows():
            parts = [short_value(row[p], digits) if p == "optimizer"
                     else f"{names[p]}={short_value(row[p], digits)}" for p in params]
            shown[setting] = ", ".join(parts) if parts else str(setting)
        if len(set(shown.values())) == len(shown):
            return shown
    return {s: str(s) for s in first.index}


def count_note(statuses: pd.Series, seeds: int) -> str:
    """'(n=3)', or '(pruned)' / '(n=2; 1 pruned)' where runs stopped early: a setting with no run
    that counts never shows a count of 0."""
    stopped = [f"{int(statuses.eq(s).sum())} {s}" for s in UNFINISHED if statuses.eq(s).any()]
    if seeds == 0:
        only = [s for s in UNFINISHED if statuses.eq(s).any()]
        return f"({', '.join(only)})" if only else "(no final value)"
    return f"(n={seeds}; {', '.join(stopped)})" if stopped else f"(n={seeds})"


def sweep_looks(runs: pd.DataFrame, params: list[str]) -> dict[str, Look]:
    """{setting: Look} for one sweep's runs, in swept-value order: computed once per sweep."""
    order = setting_order(runs, params)
    names = setting_names(runs, params)
    counted = runs[runs["status"].isin(AVERAGED)]
    seed = counted[SEED] if SEED in counted.columns else counted["run"]
    seeds = seed.groupby(counted["setting"]).nunique()
    statuses = runs.groupby("setting")["status"]
    colours = _colours(runs, order, params)
    return {s: Look(label=f"{names[s]} {count_note(statuses.get_group(s), int(seeds.get(s, 0)))}",
                    colour=colours[s][0], linestyle=colours[s][1]) for s in order}


def crosses_optimizers(params: list[str]) -> bool:
    """A sweep of optimizers crossed with other keys (the lr grid): faceted by optimizer."""
    return "optimizer" in params and len(params) > 1


def _colours(runs: pd.DataFrame, order: list[str], params: list[str]) -> dict[str, tuple]:
    first = runs.drop_duplicates("setting").set_index("setting")
    if "optimizer" not in params:  # one optimizer: the colorblind cycle, a new dash every 10
        return {s: (COLORBLIND[i % 10], LINESTYLES[(i // 10) % len(LINESTYLES)])
                for i, s in enumerate(order)}
    if not crosses_optimizers(params):  # the comparison: each optimizer in its own colour
        return {s: (optimizer_colour(str(first.loc[s, "optimizer"])), "-") for s in order}
    others = [p for p in params if p != "optimizer"]
    values = {s: tuple(first.loc[s, others]) for s in order}
    ranked = list(dict.fromkeys(values[s] for s in setting_order(runs, others)))
    palette = sns.color_palette(SEQUENTIAL, len(ranked))
    return {s: (tuple(palette[ranked.index(values[s])]), "-") for s in order}


def integer_ticks(ax) -> None:
    """Whole epochs only on the x axis (no 1.5, 2.5)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


class FacetGrid(sns.FacetGrid):
    """seaborn's FacetGrid, laid out once by matplotlib's constrained layout when it is saved.

    seaborn runs ``tight_layout`` at construction and after every ``map``: each is a text layout
    of every panel, undone anyway by the constrained layout that places the outside legend and
    the wrapped title (measured: about a fifth of a figure's drawing time)."""

    def tight_layout(self, *args, **kwargs):
        return self


def facet_grid(data: pd.DataFrame, row: str | None = None, col: str | None = None,
               row_order=None, col_order=None, panel=(3.2, 2.4), sharex: bool = False,
               sharey: bool = False) -> FacetGrid:
    """A FacetGrid of `panel`-inch panels (rows x cols of the tidy frame's values, in the orders
    given), in constrained layout: titles, labels and an outside legend all stay on the canvas."""
    grid = FacetGrid(data, row=row, col=col, row_order=row_order, col_order=col_order,
                     height=panel[1], aspect=panel[0] / panel[1], sharex=sharex, sharey=sharey,
                     dropna=False)
    grid.figure.set_layout_engine("constrained")
    return grid


def outside_legend(fig, handles, title: str, width_in: float) -> None:
    """A legend right of the panels, in as many columns as the figure's height needs; the figure
    grows by the legend's width (`width_in` a column), so that the panels keep theirs."""
    if not handles:
        return
    rows = max(4, int(fig.get_figheight() * LEGEND_ROWS_PER_IN) - 2)
    columns = math.ceil(len(handles) / rows)
    fig.set_figwidth(fig.get_figwidth() + columns * (width_in + 0.45))
    fig.legend(handles=handles, title=title, loc="outside right upper", frameon=False,
               fontsize=8, title_fontsize=9, ncols=columns)


def save(figure, path) -> object:
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
