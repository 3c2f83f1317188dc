"""``hydra.sweeper.preload=[fragile_start]``: a slot worker's start-up that fails, as
``OPTSWEEP_TEST_FRAGILE_START`` says: ``raise``, the import fails in every worker; ``kill``, the
first worker of each slot is killed (SIGKILL) here, before its first trial, and its replacement
starts. Nothing happens outside a slot's worker (the sweeper only checks that the module exists)."""

import os
import signal
from pathlib import Path

HOW = os.environ.get("OPTSWEEP_TEST_FRAGILE_START", "")
SLOT = os.environ.get("OPTSWEEP_SLOT")

if SLOT is not None and HOW == "raise":
    raise ImportError("fragile_start cannot be imported in a worker")
if SLOT is not None and HOW == "kill" and not Path(f"killed_at_start_{SLOT}").exists():
    Path(f"killed_at_start_{SLOT}").write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)
