"""Schedule-Free is evaluated, saved and resumed at its evaluation weights, batch norm included."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
import torchvision

from optsweep.contract import TIME_COLUMNS
from optsweep.data import load_splits
from optsweep.optim.build import build_adapter
from optsweep.train import train
from tests.conftest import QUICK, make_cfg


def read_rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS}
                for row in csv.DictReader(f)]


def one_step(name: str, *overrides: str):
    """A linear model after one Schedule-Free step, with the gradient it was taken on."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    start = [p.detach().clone() for p in net.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()))
    adapter = build_adapter(make_cfg([f"optimizer={name}", *overrides]).optimizer,
                            net.named_parameters(), torch.device("cpu"))
    adapter.train_mode()
    adapter.optimizer.zero_grad()
    F.cross_entropy(net(x), y).backward()
    adapter.step(lambda: None, torch.amp.GradScaler("cpu", enabled=False))
    adapter.eval_mode(net, [])
    return net, start, grads


def test_adamw_schedulefree_eval_weights_after_one_step_are_the_hand_computed_ones():
    # step 1: the average x is z itself (weight 1), z = x0 - lr g / (sqrt(v / (1 - beta2)) + eps)
    # with v = (1 - beta2) g^2: x1 = x0 - lr g / (|g| + eps)
    net, start, grads = one_step("schedulefree_adamw", "optimizer.lr=0.1")
    for p, x0, g in zip(net.parameters(), start, grads):
        torch.testing.assert_close(p, x0 - 0.1 * g / (g.abs() + 1e-8))


def test_sgd_schedulefree_eval_weights_after_one_step_are_the_hand_computed_ones():
    net, start, grads = one_step("schedulefree_sgd", "optimizer.lr=0.1")
    for p, x0, g in zip(net.parameters(), start, grads):
        torch.testing.assert_close(p, x0 - 0.1 * g)


def trained_bn_model(*overrides: str):
    """A linear layer with batch norm after a few Schedule-Free steps, in train mode."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    adapter = build_adapter(make_cfg(["optimizer=schedulefree_adamw", *overrides]).optimizer,
                            model.named_parameters(), torch.device("cpu"))
    adapter.train_mode()
    for _ in range(3):
        adapter.optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        adapter.optimizer.step()
    return model, adapter, x


def test_train_mode_parameters_are_not_the_weights_that_are_evaluated():
    model, adapter, x = trained_bn_model()
    at_y = [p.detach().clone() for p in model.parameters()]
    adapter.eval_mode(model, [])
    assert not all(torch.equal(a, p) for a, p in zip(at_y, model.parameters()))


def test_batch_norm_statistics_are_re_estimated_at_the_evaluation_weights():
    model, adapter, x = trained_bn_model("optimizer.calibration_batches=100")
    adapter.eval_mode(model, [x] * 200)  # 100 of them: the old statistics weigh 0.9**100 < 1e-4
    assert not model.training
    with torch.no_grad():
        features = model[0](x)  # at the evaluation weights now
    torch.testing.assert_close(model[1].running_mean, features.mean(0), rtol=0.01, atol=1e-3)
    torch.testing.assert_close(model[1].running_var, features.var(0), rtol=0.01, atol=1e-3)


def evaluate_by_hand(state: dict, split, mean, std) -> tuple[float, float]:
    """Loss and accuracy of plain torchvision's ResNet18 holding ``state``, nothing of optsweep."""
    model = torchvision.models.resnet18(num_classes=10)
    model.load_state_dict(state)
    model.eval()
    x = (split.images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)
    return (F.cross_entropy(logits.double(), split.labels).item(),
            (logits.argmax(1) == split.labels).float().mean().item())


@pytest.mark.slow
def test_reported_evaluation_equals_torchvision_evaluating_best_pt(tmp_path):
    cfg = make_cfg([*QUICK, "optimizer=schedulefree_adamw", "trainer.epochs=2",
                    "trainer.keep_best=true", "data.train_limit=80"])
    train(cfg, tmp_path)
    rows = read_rows(tmp_path)
    best = max(rows, key=lambda r: (float(r["val_acc1"]), -int(r["epoch"])))
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    val = load_splits(cfg.data, cfg.trainer.seed).val
    loss, acc1 = evaluate_by_hand(state, val, list(cfg.data.mean), list(cfg.data.std))
    assert acc1 == pytest.approx(float(best["val_acc1"]), abs=1e-9)
    assert loss == pytest.approx(float(best["val_loss"]), rel=1e-5)


@pytest.mark.slow
def test_interrupted_and_resumed_it_reports_what_an_uninterrupted_run_does(tmp_path):
    overrides = [*QUICK, "optimizer=schedulefree_adamw", "trainer.epochs=2",
                 "optimizer.warmup_steps=4"]
    train(make_cfg(overrides), tmp_path / "reference")

    def stop_after_one(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt  # after epoch 1's checkpoint, as Ctrl-C would

    with pytest.raises(KeyboardInterrupt):
        train(make_cfg(overrides), tmp_path / "resumed", on_epoch=stop_after_one)
    train(make_cfg(overrides), tmp_path / "resumed")
    assert read_rows(tmp_path / "resumed") == read_rows(tmp_path / "reference")
    assert len(read_rows(tmp_path / "reference")) == 2
