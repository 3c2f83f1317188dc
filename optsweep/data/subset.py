"""Seeded, class-stratified subsets: ``data.train_limit`` and ``data.test_limit`` draw every class
in proportion to its share of the split, never the first N examples (on a folder read class by
class the first N are a few classes: 13 points of accuracy of bias, measured).

Quotas by largest remainder (``n * count / total``, rounded down, the leftover examples to the
classes with the largest fractions, ties to the lower class index); within a class the examples are
a seeded random draw. Same labels, ``n`` and seed: the same subset. A change to this rule renames
``optsweep.contract.SUBSET_RULE``, so that runs capped by the old rule are not taken for new ones.
"""

from __future__ import annotations

import torch


def class_quotas(counts: torch.Tensor, n: int) -> torch.Tensor:
    """How many of ``n`` each class gets, in proportion to ``counts`` (largest remainders)."""
    exact = counts.double() * n / counts.sum()
    quotas = exact.floor().long()
    leftover = n - int(quotas.sum())
    remainders = exact - quotas
    # stable sort: equal remainders go to the lower class index first
    order = torch.sort(-remainders, stable=True).indices
    quotas[order[:leftover]] += 1
    return quotas


def stratified_sample(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``min(n, len(labels))`` examples, each class in proportion, in random order."""
    n = min(n, len(labels))
    classes, counts = torch.unique(labels, return_counts=True)
    picked = []
    for label, quota in zip(classes.tolist(), class_quotas(counts, n).tolist()):
        members = torch.nonzero(labels == label).flatten()
        picked.append(members[torch.randperm(len(members), generator=generator)[:quota]])
    chosen = torch.cat(picked)
    return chosen[torch.randperm(len(chosen), generator=generator)]
