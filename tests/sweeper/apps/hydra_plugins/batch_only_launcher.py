"""A launcher the sweeper knows no runner for (``hydra.launcher._target_=`` this class): the
sweeper must fall back to batches through its ``launch``. Hydra loads launchers from this
namespace only; tests/sweeper/apps is on the apps' PYTHONPATH."""

from hydra._internal.core_plugins.basic_launcher import BasicLauncher


class BatchOnlyLauncher(BasicLauncher):
    pass
