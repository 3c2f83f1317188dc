"""Every bad or edge input gets a clear answer: one line that names the key or path and says what to
change, exit status 2, no traceback; and no edge input ends in a wrong result or a crash."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
import torch

from optsweep import contract, resources
from optsweep.data import read_dataset
from optsweep.errors import ConfigError, DataError
from optsweep.train import train
from tests import fakes
from tests.conftest import QUICK, make_cfg
from tests.processes import module, optsweep


def assert_one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    """Exit status 2, no traceback, and an error line that holds every one of ``names``."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [text for text in result.stderr.splitlines() if "error: " in text]
    for name in names:
        assert name in line, line
    return line


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / contract.SUMMARY_FILE).read_text())


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory) -> Path:
    """A run directory holding a completed QUICK run (trained once for the module)."""
    cwd = tmp_path_factory.mktemp("completed")
    result = optsweep(*QUICK, "hydra.run.dir=done", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


# --- wrong results with exit status 0 -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("select, why", [("nonesuch", "not a metric"),
                                         ("test_acc1", "a test metric")])
def test_analysis_rejects_a_select_that_would_choose_on_the_test_set(completed_run, select, why):
    result = module("optsweep.analysis", "done", "--select", select, "--out", "report",
                    cwd=completed_run)
    line = assert_one_line_error(result, f"--select {select}: {why}", "val_acc1")
    assert "choose one of" in line
    assert not (completed_run / "report").exists()


@pytest.mark.slow
def test_a_train_limit_that_leaves_no_training_image_is_a_config_error_not_diverged(tmp_path):
    result = optsweep(*QUICK, "data.train_limit=1", "hydra.run.dir=run", cwd=tmp_path)
    assert_one_line_error(result, "data.train_limit=1", "leaves 0 for training",
                          "raise data.train_limit")
    assert summary(tmp_path / "run")["status"] == contract.Status.FAILED


def test_an_empty_class_folder_is_refused_not_an_extra_output(tmp_path):
    fakes.write_imagefolder(tmp_path, per_class=2, size=8)
    empty = tmp_path / "train" / "zebra"
    empty.mkdir()
    with pytest.raises(DataError, match="zebra holds no images.*remove the folder"):
        read_dataset.__wrapped__("imagefolder", str(tmp_path), False, 8)


def test_a_train_class_without_test_folder_is_refused(tmp_path):
    fakes.write_imagefolder(tmp_path, per_class=2, size=8)
    (missing,) = sorted(p for p in (tmp_path / "test").iterdir())[:1]
    for image in missing.iterdir():
        image.unlink()
    missing.rmdir()
    expected = f"test has no folder for the classes \\['{missing.name}'\\]"
    with pytest.raises(DataError, match=expected):
        read_dataset.__wrapped__("imagefolder", str(tmp_path), False, 8)


@pytest.mark.slow
def test_a_single_run_into_another_configs_finished_run_is_refused(completed_run):
    before = {name: (completed_run / "done" / name).read_bytes()
              for name in (contract.METRICS_FILE, contract.SUMMARY_FILE, ".hydra/config.yaml")}
    result = optsweep(*QUICK, "optimizer.lr=0.01", "hydra.run.dir=done", cwd=completed_run)
    assert_one_line_error(result, "hydra.run.dir=done", "another config", "new directory")
    after = {name: (completed_run / "done" / name).read_bytes() for name in before}
    assert after == before


@pytest.mark.slow
def test_the_same_config_into_its_finished_run_is_skipped(completed_run):
    result = optsweep(*QUICK, "trainer.num_threads=1", "hydra.run.dir=done", cwd=completed_run)
    assert result.returncode == 0, result.stderr
    assert "already completed with this config" in result.stdout


# --- tracebacks for legal values ------------------------------------------------------------------

def test_a_last_batch_of_one_image_is_left_out_and_counted_out(tmp_path, caplog):
    # QUICK keeps 54 training images: batches of 53 leave a last batch of one
    cfg = make_cfg([*QUICK, "data.batch_size=53"])
    with caplog.at_level(logging.WARNING):
        outcome = train(cfg, tmp_path)
    assert outcome.status == contract.Status.COMPLETED
    assert sum("trains on 53 of 54" in r.message for r in caplog.records) == 1
    row = summary(tmp_path)["final"]
    assert row["train_images_per_s"] == pytest.approx(53 / row["epoch_seconds"])


@pytest.mark.parametrize("args, names", [
    (["data.batch_size=1"], ["data.batch_size=1", ">= 2", "batch norm"]),
    pytest.param(["data.train_limit=2"], ["data.train_limit=2", "leaves 1 for training",
                                          "batch norm"], marks=pytest.mark.slow),
    pytest.param(["data.train_limit=null", "data.val_fraction=0.999"],
                 ["data.val_fraction=0.999", "leaves 1 for training", "lower data.val_fraction"],
                 marks=pytest.mark.slow),
])
@pytest.mark.slow
def test_a_training_set_or_batch_of_one_image_is_a_config_error(tmp_path, args, names):
    result = optsweep(*QUICK, *args, "hydra.run.dir=run", cwd=tmp_path)
    assert_one_line_error(result, *names)
    assert summary(tmp_path / "run")["status"] == contract.Status.FAILED


def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 2 * 1024 ** 3)
    read = []
    monkeypatch.setattr("optsweep.train.load_splits", lambda *a: read.append(a))
    with pytest.raises(ConfigError, match=r"data.image_size=1000 .* 2.0 GB .*lower "
                                          r"data.image_size or data.batch_size"):
        train(make_cfg([*QUICK, "data.image_size=1000"]), tmp_path)
    assert not read and summary(tmp_path)["status"] == contract.Status.FAILED


def test_memory_needed_counts_dataset_batch_and_activations():
    needed = resources.training_memory(images=10, decoded_size=32, batch_size=2, image_size=64)
    assert needed == 10 * 3 * 32 * 32 + 2 * 3 * 64 * 64 * 4 + 2 * 64 * 64 * 440
    cfg = make_cfg(QUICK).data  # digits at 32 px, batches of 16
    needed = resources.training_memory(1797, 32, 16, 32)
    resources.check_memory(cfg, 1797, 32, available=needed)
    with pytest.raises(ConfigError, match="data.image_size=32"):
        resources.check_memory(cfg, 1797, 32, available=needed - 1)


@pytest.mark.slow
def test_an_unwritable_run_directory_is_named(tmp_path):
    (tmp_path / "file").write_text("a regular file, not a folder")  # fails for root too
    result = optsweep(*QUICK, "hydra.run.dir=file/run", cwd=tmp_path)
    assert_one_line_error(result, "hydra.run.dir=file/run", "Not a directory")


@pytest.mark.slow
def test_an_unwritable_sweep_directory_is_named(tmp_path):
    (tmp_path / "file").write_text("a regular file, not a folder")
    result = optsweep("-m", *QUICK, "hydra.sweep.dir=file/sweep", cwd=tmp_path)
    assert_one_line_error(result, "hydra.sweep.dir=file/sweep", "Not a directory")


@pytest.mark.slow
def test_an_analysis_out_that_cannot_be_created_is_named(completed_run):
    (completed_run / "file").write_text("a regular file, not a folder")
    result = module("optsweep.analysis", "done", "--out", "file/report", cwd=completed_run)
    assert_one_line_error(result, "--out file/report", "--out DIR")


@pytest.mark.slow
def test_an_unknown_optimizer_argument_is_named_with_the_valid_ones(tmp_path):
    result = optsweep(*QUICK, "+optimizer.foo=1", "hydra.run.dir=run", cwd=tmp_path)
    line = assert_one_line_error(result, "optimizer.foo=1", "torch.optim.Adam", "lr, maximize")
    assert "remove optimizer.foo" in line  # it may come from the file, not from a +
    assert summary(tmp_path / "run")["status"] == contract.Status.FAILED


@pytest.mark.slow
def test_a_trailing_comma_names_the_override_and_its_key(tmp_path):
    result = optsweep("-m", *QUICK, "optimizer.lr=1e-3,", cwd=tmp_path)
    assert_one_line_error(result, "'optimizer.lr=1e-3,'", "no comma at the end")


# --- a hang ------------------------------------------------------------------------------------

def test_more_threads_than_cores_are_capped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert resources.capped_threads(1000, cores=2) == 2
    assert "trainer.num_threads=1000" in caplog.text and "using 2" in caplog.text
    assert resources.capped_threads(1, cores=2) == 1


def test_a_run_asking_for_1000_threads_trains_on_the_available_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_cores", lambda: 1)
    threads = torch.get_num_threads()
    try:
        outcome = train(make_cfg([*QUICK, "trainer.num_threads=1000"]), tmp_path)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert outcome.status == contract.Status.COMPLETED


def test_every_dataset_says_its_decoded_size_before_reading(tmp_path):
    from omegaconf import OmegaConf

    from optsweep.data import REGISTRY, decoded_size

    (tmp_path / "train" / "cat").mkdir(parents=True)
    for name in REGISTRY:
        images, side = decoded_size(OmegaConf.create({"name": name, "root": str(tmp_path),
                                                      "image_size": 64}))
        assert images >= 0 and side in (32, 64)
