"""The fast path: same predictions as a plain loop, options that compose, caches a sweep reuses,
no memory growth across epochs, and a benchmark that still runs (its numbers: benchmarks/)."""

from __future__ import annotations

import functools
import math
import os

import pytest
import torch
import torch.nn.functional as F
import torchvision

from optsweep.data import Split, read_dataset
from optsweep.data.batches import Normalize, train_batches
from optsweep.model import _read_state_dict
from optsweep.runtime import weight_memory_format
from optsweep.train import build_run, evaluate, train, train_one_epoch
from tests.conftest import QUICK, make_cfg

CPU = torch.device("cpu")


def random_split(n: int, num_classes: int = 10, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                 torch.randint(0, num_classes, (n,), generator=g))


def tiny_run(extra: list[str] = ()):
    cfg = make_cfg([*QUICK, "data.batch_size=8", "data.eval_batch_size=8", *extra])
    torch.manual_seed(0)
    return build_run(cfg, CPU, num_classes=10)


def test_fast_path_predicts_what_a_plain_nchw_loop_predicts():
    run = tiny_run(["trainer.channels_last=true"])
    split = random_split(40)
    ours = evaluate(run, split, "test")

    # same weights in torchvision's own modules (no lowering, batch norm not folded), NCHW
    plain = torchvision.models.resnet18(num_classes=10).eval()
    plain.load_state_dict(run.model.state_dict())
    mean = torch.tensor(run.cfg.data.mean).view(1, 3, 1, 1)
    std = torch.tensor(run.cfg.data.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = plain((split.images.float() / 255 - mean) / std)
        fast = run.forward(run.normalize(split.images))
    assert run.normalize(split.images).is_contiguous(memory_format=torch.channels_last)
    # fp32 convolutions in another layout, as matrix multiplies and with batch norm folded in sum
    # in another order: logits agree to ~1e-6, not bitwise
    torch.testing.assert_close(fast, logits, rtol=1e-4, atol=1e-4)
    assert torch.equal(fast.argmax(1), logits.argmax(1))
    assert round(ours["test_acc1"] * 40) == int((logits.argmax(1) == split.labels).sum())
    expected_loss = F.cross_entropy(logits.double(), split.labels).item()
    assert math.isclose(ours["test_loss"], expected_loss, rel_tol=1e-5)


@pytest.mark.slow
def test_fast_path_off_trains_and_evaluates_alike():
    """trainer.fast_path=false runs torchvision's modules as they are: same losses to rounding."""
    results = {}
    for flag in ("true", "false"):
        run = tiny_run([f"trainer.fast_path={flag}"])  # same seed: same initial weights
        fit = train_one_epoch(run, random_split(16), epoch=1)
        test = evaluate(run, random_split(16, seed=1), "test")
        results[flag] = fit, test
    (fit, test), (fit_off, test_off) = results["true"], results["false"]
    # the first batch's loss is computed before any update: float rounding apart, equal
    assert math.isclose(fit["train_loss"], fit_off["train_loss"], rel_tol=1e-4)
    # after two Adam steps (each weight moves at most lr = 1e-3) the test loss is still this close
    assert math.isclose(test["test_loss"], test_off["test_loss"], rel_tol=1e-3)  # 5e-6 measured


def test_weights_stay_contiguous_on_cpu_and_go_channels_last_on_gpus():
    # a torch.device needs no GPU to exist: this checks the CUDA choice on a CPU-only machine
    assert weight_memory_format(CPU, True) == torch.contiguous_format
    assert weight_memory_format(torch.device("cuda"), True) == torch.channels_last
    assert weight_memory_format(torch.device("cuda"), False) == torch.contiguous_format


def test_fused_adam_is_picked_on_cpu():
    run = tiny_run()
    assert run.optimizer.param_groups[0]["fused"] is True


def _eager_compile(monkeypatch):
    """torch.compile as optsweep calls it, with the eager backend: the wrapper (OptimizedModule,
    train/eval switching, state_dict of the bare model) is exercised without inductor's 40 s
    C++ build on CPU."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", functools.partial(real, backend="eager"))


@pytest.mark.parametrize("extra", [
    ["trainer.precision=bf16"],
    ["trainer.precision=fp16"],
    ["trainer.precision=bf16", "trainer.channels_last=false"],
    pytest.param(["trainer.precision=bf16", "trainer.compile=true", "data.augment=true"],
                 marks=pytest.mark.slow),  # torch.compile: seconds to compile
    pytest.param(["trainer.compile=true", "data.image_size=40"], marks=pytest.mark.slow),
])
def test_options_compose_and_take_a_step(monkeypatch, extra):
    if "trainer.compile=true" in extra:
        _eager_compile(monkeypatch)
    run = tiny_run(extra)
    before = [p.detach().clone() for p in run.model.parameters()]
    metrics = train_one_epoch(run, random_split(8), epoch=1)
    assert math.isfinite(metrics["train_loss"])
    changed = any(not torch.equal(a, b) for a, b in zip(before, run.model.parameters()))
    if "trainer.precision=fp16" in extra:  # the scaler starts at 2**16: an overflow skips the step
        assert run.scaler.is_enabled() and (changed or run.scaler.get_scale() < 2.0**16)
    else:
        assert changed and not run.scaler.is_enabled()
    result = evaluate(run, random_split(8, seed=1), "test")
    assert math.isfinite(result["test_loss"]) and 0.0 <= result["test_acc1"] <= 1.0
    assert run.model.state_dict().keys() == tiny_run().model.state_dict().keys()  # no _orig_mod.


def test_augmented_batches_keep_each_label_with_its_image():
    n = 50  # image i is filled with the value i + 1, so padding (0) and identity are both visible
    split = Split(torch.arange(1, n + 1, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 32, 32)
                  .contiguous(), torch.arange(n))
    seen = []
    for images, labels in train_batches(split, 16, torch.Generator().manual_seed(0), augment=True):
        assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.uint8
        for image, label in zip(images, labels):
            values = set(image.unique().tolist())
            assert values <= {0, int(label) + 1} and int(label) + 1 in values
            # at most 4 rows and 4 columns of padding: at least 28 x 28 of the image survive
            assert int((image[0] != 0).sum()) >= 28 * 28
        seen += labels.tolist()
    assert sorted(seen) == list(range(n))


def test_augmentation_is_seeded():
    split = random_split(24)

    def epoch(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([x for x, _ in train_batches(split, 8, g, augment=True)])

    assert torch.equal(epoch(0), epoch(0)) and not torch.equal(epoch(0), epoch(1))


def test_an_epoch_of_batches_copies_to_the_device_once(monkeypatch):
    """On a GPU each copy from CPU memory waits for the queued work (a stall per step if done per
    batch); on CPU the copies can still be counted."""
    calls = []
    real = torch.Tensor.to

    def counting(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counting)
    batches = list(train_batches(random_split(64), 8, torch.Generator().manual_seed(0), True))
    assert len(batches) == 8 and len(calls) == 1


def test_normalize_resizes_in_the_requested_layout():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = Normalize([0.5] * 3, [0.25] * 3, 48, CPU, channels_last=False)(images)
    assert out.shape == (4, 3, 48, 48) and out.dtype == torch.float32 and out.is_contiguous()


def test_later_jobs_of_a_sweep_reuse_the_dataset_and_the_weights(tmp_path, cifar_root,
                                                                 cached_weights):
    read_dataset.cache_clear()
    _read_state_dict.cache_clear()
    for i, optimizer in enumerate(("adam", "sgd")):  # two jobs of one multirun process
        train(make_cfg([f"data.root={cifar_root}", f"optimizer={optimizer}", "trainer.epochs=1",
                        "data.train_limit=40", "data.test_limit=20", "data.batch_size=20",
                        "trainer.progress=false"]), tmp_path / str(i))
    assert read_dataset.cache_info().misses == 1 and read_dataset.cache_info().hits >= 1
    assert _read_state_dict.cache_info().misses == 1 and _read_state_dict.cache_info().hits >= 1


def resident_mib() -> float:
    """This process's resident memory (Linux /proc; psutil is not a dependency), after returning
    freed heap pages to the system: glibc keeps them otherwise, and that allocator slack (not a
    leak: memory still referenced cannot be trimmed) once moved a reading past the bound below."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux /proc")
def test_memory_does_not_grow_across_epochs(tmp_path):
    rss = []
    train(make_cfg([*QUICK, "trainer.epochs=6", "data.train_limit=32", "data.batch_size=16"]),
          tmp_path, on_epoch=lambda epoch, row: rss.append(resident_mib()))
    # epoch 1 allocates the optimizer state (2 x 45 MiB for Adam) and oneDNN's caches; after it,
    # RSS moves by a few MiB (allocator noise). Keeping one epoch's graph or batches alive would
    # add tens of MiB per epoch, past the 20 MiB bound within epochs 2..6.
    assert len(rss) == 6 and max(rss[1:]) - rss[1] < 20, rss


def test_benchmark_runs_in_its_tiny_form(capsys):
    from benchmarks import throughput

    ratios = throughput.main(["--tiny"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ratios: train_vs_seed=") and "eval_vs_seed=" in last
    assert set(ratios) == {"train_vs_seed", "eval_vs_seed", "train_vs_plain"}
    assert all(math.isfinite(v) and v > 0 for v in ratios.values())
