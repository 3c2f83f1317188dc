"""Each learning-rate schedule against values computed by hand, and a resumed run that matches."""

from __future__ import annotations

import json
import math

import pytest
import torch

from optsweep.contract import TIME_COLUMNS
from optsweep.schedule import Schedule
from optsweep.train import train
from tests.conftest import QUICK, make_cfg
from tests.test_train import read_rows

C1, C3 = (1 + math.cos(math.pi / 4)) / 2, (1 + math.cos(3 * math.pi / 4)) / 2  # 0.8536, 0.1464


def lr_sequence(overrides: list[str], epochs: int, steps_per_epoch: int, objective="val_acc1",
                values=()) -> list[float]:
    """The lr of every step of ``epochs`` x ``steps_per_epoch`` steps (optimizer.lr = 1), each
    epoch reporting ``values[epoch]`` as its validation objective."""
    cfg = make_cfg([*overrides, "optimizer=sgd", "optimizer.lr=1.0"])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.optimizer.lr)
    schedule = Schedule(cfg.scheduler, optimizer, epochs, steps_per_epoch, objective)
    seen = []
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch({"val_" + objective.split("_", 1)[1]: values[epoch] if values else 0})
    return seen


@pytest.mark.parametrize("overrides, epochs, expected", [
    (["scheduler=none"], 2, [1, 1, 1, 1]),
    (["scheduler=step", "scheduler.step_size=2"], 4, [1, 1, 1, 1, .1, .1, .1, .1]),
    # per batch, step_size counts epochs all the same
    (["scheduler=step", "scheduler.step_size=1", "scheduler.step_per=batch"], 3,
     [1, 1, .1, .1, .01, .01]),
    (["scheduler=multistep", "scheduler.milestones=[1,3]", "scheduler.gamma=0.5"], 4,
     [1, 1, .5, .5, .5, .5, .25, .25]),
    # gamma is per epoch: per batch each of the 2 steps multiplies by its square root
    (["scheduler=exponential", "scheduler.gamma=0.25", "scheduler.step_per=batch"], 2,
     [1, .5, .25, .125]),
    (["scheduler=exponential", "scheduler.gamma=0.25"], 2, [1, 1, .25, .25]),
    # cosine over T_max = 2 epochs = 4 steps: (1 + cos(pi k / 4)) / 2
    (["scheduler=cosine", "trainer.epochs=2"], 2, [1, C1, .5, C3]),
    (["scheduler=cosine", "scheduler.T_max=2", "scheduler.step_per=epoch"], 2, [1, 1, .5, .5]),
    # 1 epoch (2 steps) from 0.1 up, then cosine over the 4 steps left of T_max = 3 epochs
    (["scheduler=warmup_cosine", "scheduler.T_max=3", "scheduler.start_factor=0.1"], 3,
     [.1, .55, 1, C1, .5, C3]),
    (["scheduler=warmup_cosine", "scheduler.T_max=2", "scheduler.warmup_epochs=0"], 2,
     [1, C1, .5, C3]),
    # optimizer.lr = 1 is the peak: up from 1/25 to 1 over half the steps, then down to 1/25/1e4
    (["scheduler=onecycle", "scheduler.pct_start=0.5", "trainer.epochs=2"], 2,
     [.04, 1, .5 + 2e-6, 4e-6]),
])
def test_lr_of_every_step_matches_the_hand_computed_schedule(overrides, epochs, expected):
    assert lr_sequence(overrides, epochs, 2) == pytest.approx(expected, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("objective, values", [
    ("val_acc1", [.5, .4, .4, .6, .6]),  # an accuracy must rise
    ("val_loss", [.5, .6, .6, .4, .4]),  # a loss must fall
    ("test_acc1", [.5, .4, .4, .6, .6]),  # watched on validation, never on test
])
def test_plateau_halves_the_lr_after_patience_epochs_in_the_objectives_direction(objective, values):
    seen = lr_sequence(["scheduler=plateau", "scheduler.patience=1", "scheduler.factor=0.5"],
                       5, 1, objective, values)
    assert seen == [1, 1, 1, .5, .5]  # epochs 2 and 3 did not improve on epoch 1


def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS}
            for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("schedule", [["scheduler=warmup_cosine"],
                                      ["scheduler=plateau", "scheduler.patience=0"]])
def test_a_run_resumed_mid_schedule_matches_an_uninterrupted_one(tmp_path, schedule):
    overrides = [*QUICK, "trainer.epochs=3", *schedule]
    train(make_cfg(overrides), tmp_path / "reference")
    expected = _without_time(read_rows(tmp_path / "reference"))
    assert len({row["lr"] for row in expected}) > 1  # the schedule did change the lr

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(make_cfg(overrides), tmp_path / "resumed", on_epoch=stop_after_two)
    train(make_cfg(overrides), tmp_path / "resumed")
    assert _without_time(read_rows(tmp_path / "resumed")) == expected
    assert json.loads((tmp_path / "resumed" / "summary.json").read_text())["status"] == "completed"
