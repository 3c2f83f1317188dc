"""checkpoint.pt is read safely: a planted pickle runs nothing, a corrupt file is one line."""

from __future__ import annotations

import os

import pytest

from optsweep import contract
from optsweep.rundir import RunDir
from tests.conftest import QUICK
from tests.processes import optsweep


@pytest.mark.slow
def test_a_planted_checkpoint_runs_no_code_and_a_corrupt_one_is_one_line(tmp_path):
    import pickle

    import torch

    from optsweep.checkpoint import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"

    class Payload:  # what a pickle-based attack plants: code that runs when the file is loaded
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    planted = tmp_path / "planted"
    planted.mkdir()
    with open(planted / contract.CHECKPOINT_FILE, "wb") as f:
        torch.save({"rows": [], "payload": Payload()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint"):
        load_checkpoint(planted, torch.device("cpu"))
    assert not marker.exists()  # weights_only=True refused to run it

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / contract.CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 truncated")
    result = optsweep(*QUICK, f"hydra.run.dir={corrupt}", env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("optsweep: error:")]
    assert str(corrupt / contract.CHECKPOINT_FILE) in line and "trainer.resume=false" in line
    written = RunDir(corrupt).summary()
    assert written["status"] == "failed" and "cannot be read as a checkpoint" in written["error"]
