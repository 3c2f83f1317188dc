"""What a sweep varies, and the name of each setting (one combination of swept values).

The swept parameters are read from the data, not from a list of names: a config key is swept when
its value differs between runs of one sweep that share optimizer and dataset. Comparing within
(optimizer, dataset) keeps keys that merely differ between optimizers' defaults (Adam's beta1 does
not exist for SGD) from looking swept; the optimizer choice itself is swept when a sweep has more
than one.
"""
from __future__ import annotations

import functools
import math
import re
from typing import Iterable, Mapping

import pandas as pd

from optsweep import contract

# The repeat of a setting: runs that differ only in it are one setting's samples, never swept.
SEED = "trainer.seed"
LOG_LEAVES = frozenset({"lr", "weight_decay", "eps", "lr_decay"})
# Order of sections in the report: the optimizer comparison, then these optimizers' sweeps.
OPTIMIZER_ORDER = ("adam", "adagrad", "rmsprop")


def is_ignored(key: str) -> bool:
    """Never swept: the seed, and the keys that do not change a result
    (``contract.result_free``)."""
    return key == SEED or contract.result_free(key)


def find_swept(runs: pd.DataFrame, ignore=None,
               order: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """{sweep: [swept config columns]}; 'optimizer' leads where a sweep compares optimizers.

    Each sweep's keys come in ``order[sweep]``'s order where given (its runs' own config order:
    the order a load of that sweep alone finds them in, whatever else is loaded beside it), else
    in the columns' order."""
    ignored = set(ignore or ())
    config_cols = [c for c in runs.columns if "." in c and not is_ignored(c) and c not in ignored]
    swept = {}
    for sweep, block in runs.groupby("sweep", sort=False):
        varying = set()
        for _, group in block.groupby(["optimizer", "dataset"], dropna=False):
            if len(group) > 1:
                counts = group[config_cols].astype(str).nunique()
                varying.update(counts.index[counts > 1])
        keys = config_cols if order is None or sweep not in order else order[sweep]
        params = [c for c in keys if c in varying]
        if block["optimizer"].nunique(dropna=False) > 1:
            params.insert(0, "optimizer")
        swept[sweep] = params
    return swept


def short_names(params: list[str]) -> dict[str, str]:
    """'optimizer.lr' -> 'lr' unless two swept keys share the last part."""
    leaves = [p.rsplit(".", 1)[-1] for p in params]
    return {p: (leaf if leaves.count(leaf) == 1 else p) for p, leaf in zip(params, leaves)}


def format_value(value) -> str:
    """A swept value in a setting's name: precise enough to tell any two settings apart (the name
    is the setting's key); ``readable`` shortens names for display."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:g}"
    return str(value)


_NUMBER = re.compile(r"(?<==)-?\d+\.?\d*(?:e[-+]?\d+)?")


def readable(settings: pd.Series, digits: int = 3) -> pd.Series:
    """Setting names with their numbers at ``digits`` significant digits (``lr=0.000998856`` ->
    ``lr=0.000999``), more only where two settings would otherwise read the same."""
    for places in range(digits, 18):
        short = settings.map(functools.partial(_rounded, places=places))
        if short.nunique() == settings.nunique():
            return short
    return settings


def _rounded(name, places: int) -> str:
    """A setting's name with each of its numbers at `places` significant digits."""
    return _NUMBER.sub(lambda m: f"{float(m.group()):.{places}g}", str(name))


def add_settings(runs: pd.DataFrame, swept: dict[str, list[str]]) -> pd.DataFrame:
    """Add `setting`: the run's swept values as 'lr=0.001, weight_decay=0' (or the optimizer)."""
    runs = runs.copy()
    runs["setting"] = runs["optimizer"].astype(str)
    for sweep, params in swept.items():
        rows = runs["sweep"] == sweep
        if not params:
            continue
        names = short_names(params)
        parts = [
            runs.loc[rows, p].map(format_value) if p == "optimizer"
            else names[p] + "=" + runs.loc[rows, p].map(format_value)
            for p in params
        ]
        label = parts[0]
        for part in parts[1:]:
            label = label + ", " + part
        runs.loc[rows, "setting"] = label
    return runs


def setting_order(runs: pd.DataFrame, params: list[str]) -> list[str]:
    """Settings sorted by their swept values (numbers numerically), for legends and tables."""
    if not params:
        return sorted(runs["setting"].unique())
    keys = runs[params].copy()
    for p in params:
        numeric = pd.to_numeric(keys[p], errors="coerce")
        as_numbers = numeric.notna().all() and keys[p].dtype != bool
        keys[p] = numeric if as_numbers else keys[p].astype(str)
    ordered = runs.assign(**{f"_k{i}": keys[p] for i, p in enumerate(params)})
    ordered = ordered.sort_values([f"_k{i}" for i in range(len(params))], kind="stable")
    return list(dict.fromkeys(ordered["setting"]))


def is_numeric_param(values: pd.Series) -> bool:
    return values.dtype != bool and pd.api.types.is_numeric_dtype(values) and values.notna().any()


def wants_log_axis(param: str, values: pd.Series) -> bool:
    """Log x for lr-like keys, or any positive numeric key spanning two or more decades."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    positive = values[values > 0]
    if positive.empty or values.nunique() < 2:
        return False
    if param.rsplit(".", 1)[-1] in LOG_LEAVES:
        return True
    return (values > 0).all() and positive.max() / positive.min() >= 100


def sweep_kind(params: list[str]) -> int:
    """0: optimizer comparison, 1: attribute sweep, 2: lr sweep (the report's section order).

    An lr sweep may span several optimizers (the study's lr grid): it still comes last."""
    is_lr = [p.rsplit(".", 1)[-1] == "lr" for p in params]
    if any(is_lr) and all(lr or p == "optimizer" for p, lr in zip(params, is_lr)):
        return 2
    if "optimizer" in params:
        return 0
    return 1


def order_sweeps(runs: pd.DataFrame, swept: dict[str, list[str]]) -> list[str]:
    """Sweeps in the order of the study: comparison, adam/adagrad/rmsprop/other sweeps, lr
    sweeps."""
    def key(sweep):
        optimizer = str(runs.loc[runs["sweep"] == sweep, "optimizer"].iloc[0])
        known = optimizer in OPTIMIZER_ORDER
        rank = OPTIMIZER_ORDER.index(optimizer) if known else len(OPTIMIZER_ORDER)
        return (sweep_kind(swept[sweep]), rank, optimizer, sweep)
    return sorted(swept, key=key)


def seeds_per_setting(runs: pd.DataFrame) -> pd.Series:
    """Distinct seeds (repeats) per setting among the runs that count, by setting label."""
    counted = runs[runs["status"].isin(contract.AVERAGED)]
    seed = counted[SEED] if SEED in counted.columns else counted["run"]
    return seed.groupby(counted["setting"]).nunique()


def seed_range(runs: pd.DataFrame) -> str:
    counts = seeds_per_setting(runs)
    if counts.empty:
        return "n=0"
    low, high = int(counts.min()), int(counts.max())
    return f"n={low}" if low == high else f"n={low}-{high}"
