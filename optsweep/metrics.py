"""Classification metrics summed over every example of a split, whatever the batch size.

Sums stay on the device until a split ends (no host sync per batch); accuracies are fractions in
[0, 1] of *every* example: top-k over a whole split, not the mean of per-batch fractions (nor one
batch's value, as the original study reported).
"""

from __future__ import annotations

import torch

TOPK = (1, 5)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks=TOPK) -> torch.Tensor:
    """How many rows have their target among the k largest logits, for each k (int64 tensor).

    A k above the class count counts every row (the target is always among all classes).
    """
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # N x kmax, best first
    hits = top.eq(targets.view(-1, 1)).cumsum(dim=1).clamp(max=1)  # hit within the first j+1
    return torch.stack([hits[:, min(k, kmax) - 1].sum() for k in ks])


class Tally:
    """Running sums of one pass over a split."""

    def __init__(self) -> None:
        self.examples = 0
        self.loss_sum: torch.Tensor | None = None
        self.correct: torch.Tensor | None = None

    def add(self, loss_sum: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        loss_sum = loss_sum.detach().float()
        correct = topk_correct(logits.detach(), targets)
        self.examples += len(targets)
        self.loss_sum = loss_sum if self.loss_sum is None else self.loss_sum + loss_sum
        self.correct = correct if self.correct is None else self.correct + correct

    def loss_below(self, bound: float) -> bool:
        """False when the mean loss so far is above ``bound``, NaN or infinite (one host sync)."""
        if self.loss_sum is None:
            return True
        return bool(self.loss_sum / self.examples <= bound)  # NaN compares False

    def result(self, prefix: str) -> dict:
        n = max(self.examples, 1)
        loss = float(self.loss_sum) if self.loss_sum is not None else float("nan")
        correct = self.correct.tolist() if self.correct is not None else [0] * len(TOPK)
        out = {f"{prefix}_loss": loss / n}
        out.update({f"{prefix}_acc{k}": c / n for k, c in zip(TOPK, correct)})
        return out
