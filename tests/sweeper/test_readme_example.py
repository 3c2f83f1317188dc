"""The sweeper README's example, extracted from the README and run as written in a fresh folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.sweeper.conftest import TIMEOUT_S, trials

README = Path(__file__).resolve().parents[2] / "hydra_plugins" / "optsweep_sweeper" / "README.md"


@pytest.mark.slow
def test_the_sphere_example_runs_20_trials_near_the_optimum(tmp_path):
    text = README.read_text()
    (tmp_path / "sphere.py").write_text(re.search(r"```python\n(.*?)```", text, re.S).group(1))
    (tmp_path / "sphere.yaml").write_text(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    result = subprocess.run([sys.executable, "sphere.py", "-m", "hydra.sweep.dir=multirun/sphere"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    sweep_dir = tmp_path / "multirun" / "sphere"
    done = trials(sweep_dir, name="sphere")
    assert len(done) == 20
    complete = [t.value for t in done if t.value is not None and t.state.name == "COMPLETE"]
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == min(complete) <= 2.0  # the grid holds x=0, y=0 (value 0)
    assert sum(results["states"].values()) == 20
