"""top-k on a logits case worked out by hand."""

from __future__ import annotations

import math

import torch

from optsweep.metrics import Tally, topk_correct

# 4 examples, 6 classes. Ranks of the target (1 = best):
#   row 0: target 2 has the largest logit             -> rank 1
#   row 1: target 0 is 3rd (5.0, 4.0 beat its 3.0)      -> rank 3
#   row 2: target 5 is the smallest of 6               -> rank 6
#   row 3: target 1 is 5th (four logits beat 0.2)       -> rank 5
LOGITS = torch.tensor([
    [0.1, 0.2, 9.0, 0.3, 0.4, 0.5],
    [3.0, 5.0, 4.0, 1.0, 0.0, 2.0],
    [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
    [1.0, 0.2, 2.0, 3.0, 4.0, 0.1],
])
TARGETS = torch.tensor([2, 0, 5, 1])


def test_topk_counts_by_hand():
    assert topk_correct(LOGITS, TARGETS, ks=(1, 3, 5, 6)).tolist() == [1, 2, 3, 4]


def test_k_above_class_count_counts_everything():
    assert topk_correct(LOGITS[:, :3], torch.tensor([2, 0, 1, 1]), ks=(1, 5)).tolist() == [1, 4]


def test_tally_over_batches_equals_whole_split():
    tally = Tally()
    for rows in (slice(0, 1), slice(1, 4)):  # batch size must not matter
        logits, targets = LOGITS[rows], TARGETS[rows]
        tally.add(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"), logits,
                  targets)
    result = tally.result("test")
    assert result["test_acc1"] == 1 / 4 and result["test_acc5"] == 3 / 4
    expected = torch.nn.functional.cross_entropy(LOGITS, TARGETS).item()
    assert math.isclose(result["test_loss"], expected, rel_tol=1e-6)
