"""Where optsweep's config tree is: ``conf/`` beside the package in a checkout or an editable
install, or ``optsweep/conf`` inside the package when installed from a wheel (pyproject maps it
there). Torch- and Hydra-free, so that the analysis can read the tree's YAML files too."""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "config"  # the primary config, conf/config.yaml: Hydra's config_name


def conf_dir() -> str:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"optsweep's config tree was not found beside {here}; "
                            "reinstall optsweep")
