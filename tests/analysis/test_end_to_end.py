"""A real two-optimizer sweep through the training core, then the analysis of it."""
import importlib.util

import pytest

from tests import processes


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="needs torch and the optsweep training core")
def test_sweep_then_analysis(tmp_path):
    sweep_dir = tmp_path / "multirun" / "e2e"
    env = {"MPLBACKEND": "Agg"}
    trained = processes.optsweep("-m", "optimizer=adam,sgd", "data=digits", "model.weights=null",
                                 "trainer.epochs=1", "data.train_limit=200", "data.test_limit=100",
                                 f"hydra.sweep.dir={sweep_dir}", env=env, timeout=900)
    assert trained.returncode == 0, trained.stderr[-2000:]
    analysed = processes.module("optsweep.analysis", str(sweep_dir), "--out", str(tmp_path / "a"),
                                env=env)
    assert analysed.returncode == 0, analysed.stderr[-2000:]
    assert (tmp_path / "a" / "report.html").is_file()
    assert "adam" in analysed.stdout and "sgd" in analysed.stdout
