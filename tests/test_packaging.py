"""`pip install .` (not editable) ships the config tree inside the package, where conf_dir() finds it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_conf_and_installed_copy_finds_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("optsweep-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert {f"optsweep/conf/{name}" for name in shipped} <= names
    modules = {p.relative_to(ROOT).as_posix() for package in ("optsweep", "hydra_plugins")
               for p in (ROOT / package).rglob("*.py")}
    assert modules <= names, f"not in the wheel: {sorted(modules - names)}"
    # hydra_plugins is a namespace shared with every other Hydra plugin: never ship its __init__
    assert "hydra_plugins/__init__.py" not in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    probe = (f"import sys; sys.path.insert(0, {str(site)!r}); import optsweep.conf_tree as c; "
             "print(c.conf_dir())")
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert found == str(site / "optsweep" / "conf")


def test_hydra_finds_the_sweeper_from_any_directory(tmp_path):
    """Hydra scans the hydra_plugins namespace: the installed package must extend it, whatever the
    working directory (an editable install once mapped it to nothing)."""
    probe = ("from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
             "print([p.__module__ for p in Plugins.instance().discover(Sweeper)])")
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout
    assert "hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper" in found
