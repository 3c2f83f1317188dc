"""Is an optimizer's package installed? Asked without importing it (nor torch): a sweep's
launching process asks before any job (``optsweep.sweep.preflight``), and the jobs' own check
(``optsweep.optim.check``) asks first too."""

from __future__ import annotations

from optsweep.imports import importable

EXTRA = "pip install 'optsweep[optimizers]'"
# Import names of the packages the `optimizers` extra installs (pyproject.toml).
EXTRA_PACKAGES = ("pytorch_optimizer", "schedulefree", "prodigyopt", "dadaptation")


def missing_package(target: str) -> str | None:
    """The one line for a ``_target_`` whose package is not installed, or None."""
    package = str(target).split(".", 1)[0]
    if importable(package):
        return None
    if package in EXTRA_PACKAGES:
        return (f"optimizer._target_={target}: the package {package} is not installed; "
                f"it comes with optsweep's optimizers extra: {EXTRA}")
    return f"optimizer._target_={target}: the package {package} is not installed"
