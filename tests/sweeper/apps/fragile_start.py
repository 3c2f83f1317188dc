"""``hydra.sweeper.preload=[fragile_start]``: a slot worker's start-up that fails, as
``OPTSWEEP_TEST_FRAGILE_START`` says: ``raise``, the import fails in every worker; ``kill``, the
first two workers that import it (each slot's first, of two slots) are killed (SIGKILL) here,
before their first trial, each leaving a ``killed_at_start_N`` file, and their replacements start.
Only a worker imports it: the sweeper only checks that the module can be found."""

import os
import signal

HOW = os.environ.get("OPTSWEEP_TEST_FRAGILE_START", "")

if HOW == "raise":
    raise ImportError("fragile_start cannot be imported in a worker")
if HOW == "kill":
    for n in range(2):
        try:  # O_EXCL: of workers starting at once, each claims its own number
            os.close(os.open(f"killed_at_start_{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        os.kill(os.getpid(), signal.SIGKILL)
