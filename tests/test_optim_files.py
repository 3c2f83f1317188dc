"""Each optimizer file writes out every argument of its class, at the library's default unless it
says why (the study's lr, an author's recommendation), so a reader sees what runs."""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra.utils
import pytest

from optsweep.conf_tree import conf_dir
from optsweep.optim.adapters import named_arguments
from tests.conftest import make_cfg

OPTIMIZERS = sorted(p.stem for p in (Path(conf_dir()) / "optimizer").glob("*.yaml"))
STUDY = ("adam", "adamw", "adagrad", "rmsprop", "adadelta", "sgd")  # the study's lr, 1e-3
# Values other than the class's default, each explained in the file's header comment.
DEVIATIONS = {"adagrad": {"lr"}, "rmsprop": {"lr"}, "adadelta": {"lr"}, "sgd": {"lr"}}
# Arguments a YAML cannot hold (a function), left at the class's default: said in the file.
UNWRITABLE = {"adopt": {"clip_lambda"}}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_argument_is_written_out_at_the_librarys_default(name):
    cfg = make_cfg([f"optimizer={name}"]).optimizer
    cls = hydra.utils.get_class(cfg._target_)
    for arg, param in named_arguments(cls).items():
        if arg in UNWRITABLE.get(name, ()):
            continue
        keys = ("beta1", "beta2") if arg == "betas" else (arg,)
        assert all(k in cfg for k in keys), f"{name}: {arg} not written out"
        if arg in DEVIATIONS.get(name, ()) or param.default is inspect.Parameter.empty:
            continue
        written = (cfg.beta1, cfg.beta2) if arg == "betas" else cfg[arg]
        if arg == "foreach" and written is None:
            continue  # null: optsweep picks fused, then the class's own default
        default = param.default
        written = tuple(written) if hasattr(written, "__len__") and not isinstance(
            written, str) else written
        assert written == (tuple(default) if isinstance(default, (list, tuple)) else default), \
            f"{name}.{arg}: {written} is not {cls.__name__}'s default {default}"


def test_the_study_runs_its_six_optimizers_at_lr_1e_3():
    assert [make_cfg([f"optimizer={name}"]).optimizer.lr for name in STUDY] == [1e-3] * 6


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_with_weight_decay_can_exempt_biases_and_norms(name):
    cfg = make_cfg([f"optimizer={name}"]).optimizer
    if "weight_decay" in named_arguments(hydra.utils.get_class(cfg._target_)):
        assert cfg.no_decay_norm_bias is False  # torch's behaviour unless asked


SPACES = sorted(p.stem for p in (Path(conf_dir()) / "space").glob("*.yaml") if p.stem in OPTIMIZERS)


@pytest.mark.parametrize("name", SPACES)
def test_each_search_space_parses_and_tunes_keys_of_its_optimizer(name):
    from omegaconf import OmegaConf

    from optsweep.sweep.search_space import parse

    params = OmegaConf.to_container(OmegaConf.load(Path(conf_dir()) / "space" / f"{name}.yaml"))
    space, fixed = parse(params, None, [])
    assert space and not fixed
    cfg = make_cfg([f"optimizer={name}"]).optimizer
    assert all(key.split(".", 1)[1] in cfg for key in space), name
