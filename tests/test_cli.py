"""`python -m optsweep` as a user runs it: exit codes, one-line errors, files on disk."""

from __future__ import annotations

import json

import pytest

from tests.processes import optsweep


@pytest.mark.slow
def test_the_readme_rmsprop_command_writes_both_files(tmp_path):
    result = optsweep("optimizer=rmsprop", "optimizer.alpha=0.9", "data=digits",
                      "model.weights=null", "trainer.epochs=1", "data.train_limit=200",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = [p for p in (tmp_path / "multirun" / "runs").iterdir()]
    assert (run_dir / "metrics.csv").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert "alpha: 0.9" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert "epoch 1/1" in (run_dir / "optsweep.log").read_text()


@pytest.mark.parametrize("args, message", [
    (["optimizer=adamx"], "Could not find 'optimizer/adamx'"),  # Hydra's composition
    pytest.param(["data=mnist"], "Could not find 'data/mnist'", marks=pytest.mark.slow),
    pytest.param(["optimizer.lrr=0.1"], "Could not override 'optimizer.lrr'",
                 marks=pytest.mark.slow),
    pytest.param(["optimizer.lr=abc"], "optimizer.lr", marks=pytest.mark.slow),
    (["optimizer.lr=-1"], "optsweep: error: optimizer.lr=-1 is invalid"),  # optsweep's check
    pytest.param(["optimizer.beta1=1.5"], "optsweep: error: optimizer.beta1=1.5 is invalid",
                 marks=pytest.mark.slow),
    pytest.param(["trainer.epochs=0"], "optsweep: error: trainer.epochs=0 is invalid",
                 marks=pytest.mark.slow),
    pytest.param(["data.root=NOWHERE", "data.download=false"],
                 "cifar100 not found under data.root=NOWHERE", marks=pytest.mark.slow),
])
def test_bad_input_is_one_clear_error_and_a_nonzero_exit(tmp_path, args, message):
    result = optsweep("model.weights=null", *args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("multirun/runs/*/metrics.csv"))


@pytest.mark.slow
def test_weights_not_cached_offline(tmp_path):
    result = optsweep("data=digits", cwd=tmp_path, env={"TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 2
    assert "model.weights=null" in result.stderr and str(tmp_path / "torch") in result.stderr


def test_a_trailing_comma_is_one_line_naming_the_key_before_hydra_parses_it(capsys):
    from optsweep.__main__ import check_overrides

    check_overrides(["-m", "optimizer.lr=1e-3,1e-2", "data=digits"])  # a sweep passes
    with pytest.raises(SystemExit) as stopped:
        check_overrides(["-m", "optimizer.lr=1e-3,1e-2,"])
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("optsweep: error: cannot parse the override 'optimizer.lr=1e-3,1e-2,'")
    assert "nothing follows its last comma" in line
