"""What the process pool needs from multiprocessing beyond its public API, in one place.

Checked against CPython 3.11 (``Lib/multiprocessing/spawn.py``, ``popen_spawn_posix.py``). A
spawned process re-runs the parent's ``__main__`` before its target: ``get_preparation_data``
records ``init_main_from_path`` (``python app.py``) or ``init_main_from_name`` (``python -m
pkg.app``), and the child runs that file or module as ``__mp_main__``. An app without the
``if __name__ == "__main__":`` guard then starts its own Hydra run inside each worker and dies
there. Hydra's joblib launcher (loky) does not re-run ``__main__``, and a slot's worker needs
nothing from it: the task arrives cloudpickled, by value where it was defined in ``__main__``.
``popen_spawn_posix.Popen._launch`` looks the function up on the ``spawn`` module at each start,
so one wrapper, installed once, leaves ``__main__`` out for the processes whose name says so.
"""

from __future__ import annotations

import threading
from multiprocessing import spawn
from typing import Any, Callable, Dict

MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_installed: Dict[str, Callable[[str], Dict[str, Any]]] = {}
_lock = threading.Lock()


def spawn_without_main(name_prefix: str) -> None:
    """Processes named ``name_prefix...`` start without re-running the parent's ``__main__``."""
    with _lock:
        if name_prefix in _installed:
            return
        original = spawn.get_preparation_data
        _installed[name_prefix] = original

        def get_preparation_data(name: str) -> Dict[str, Any]:
            data = original(name)
            if str(name).startswith(name_prefix):
                for key in MAIN_KEYS:
                    data.pop(key, None)
            return data

        spawn.get_preparation_data = get_preparation_data
