"""The benchmark's configuration: every search space, workload and preset composes, and bad input
is one line before anything trains (no training in this file)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution

from optsweep.benchmark import __main__ as benchmark
from optsweep.benchmark import plan, settings
from optsweep.conf_tree import conf_dir
from optsweep.config import validate
from optsweep.errors import ConfigError
from optsweep.optim.adapters import estimates_step_size
from optsweep.sweep import search_space
from tests import processes
from tests.conftest import make_cfg

CONF = Path(conf_dir())
SPACES = sorted(p.stem for p in (CONF / "space").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
WORKLOADS = sorted(p.stem for p in (CONF / "workload").glob("*.yaml"))
PRESETS = sorted(p.stem for p in (CONF / "benchmark").glob("*.yaml"))


def space_params(space: str, optimizer: str):
    with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
        cfg = compose("config", overrides=["sweep=tune", f"optimizer={optimizer}",
                                           f"space={space}"], return_hydra_config=True)
    return cfg, dict(cfg.hydra.sweeper.params)


def optimizers_of(space: str) -> list[str]:
    """lr_only serves every optimizer; a named space serves the optimizer of its name, which may
    come from another branch of the project (then it is checked once that file exists)."""
    if space != "lr_only" and space not in OPTIMIZERS:
        pytest.skip(f"conf/optimizer/{space}.yaml does not exist here: nothing to check it against")
    return OPTIMIZERS if space == "lr_only" else [space]


@pytest.mark.parametrize("space", SPACES)
def test_every_searched_key_is_a_key_of_its_optimizers_config(space):
    for optimizer in optimizers_of(space):
        cfg, params = space_params(space, optimizer)
        assert params, f"conf/space/{space}.yaml searches nothing"
        for key in params:
            assert OmegaConf.select(cfg, key, default=None) is not None, (
                f"conf/space/{space}.yaml searches {key}, not a key of optimizer={optimizer}")
        if estimates_step_size(get_class(cfg.optimizer._target_)):
            continue  # Prodigy, D-Adaptation: lr stays 1.0, the optimizer estimates the step
        assert "optimizer.lr" in params  # every other space tunes the learning rate



@pytest.mark.parametrize("space", SPACES)
def test_every_space_holds_its_optimizers_defaults_so_trial_0_runs_them(space):
    for optimizer in optimizers_of(space):
        cfg, params = space_params(space, optimizer)
        assert cfg.hydra.sweeper.enqueue_defaults  # sweep=tune: trial 0 is the defaults
        held, left_out = search_space.defaults(search_space.parse(params, None, [])[0], cfg)
        assert left_out == {}, f"conf/space/{space}.yaml cannot hold optimizer={optimizer}'s " \
                               f"defaults: {left_out}"
        assert set(held) == set(params)


@pytest.mark.parametrize("optimizer, low, high", [
    ("adam", 1e-5, 1e-1), ("adamax", 2e-5, 0.2), ("schedulefree_adamw", 2.5e-5, 0.25),
    ("prodigy", 1e-2, 100.0), ("schedulefree_sgd", 1e-2, 100.0), ("lbfgs", 1e-2, 100.0)])
def test_lr_only_searches_two_decades_either_side_of_each_optimizers_own_lr(optimizer, low, high):
    # conf/optimizer/: adam 1e-3, adamax 2e-3, schedulefree_adamw 2.5e-3, the others 1.0
    _, params = space_params("lr_only", optimizer)
    space, _ = search_space.parse(params, None, [])
    assert space == {"optimizer.lr": FloatDistribution(low, high, log=True)}

@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_workload_composes_validates_and_names_its_target(workload):
    extra = ["data.root=/tmp/images"] if workload == "imagefolder" else []
    cfg = make_cfg([f"workload={workload}", *extra])
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    validate(cfg)
    assert cfg.workload.name == workload
    assert cfg.workload.target_metric.startswith("val_") and 0 < cfg.workload.target <= 1


def test_the_seed_studys_workload_is_the_seed_study():
    cfg = make_cfg(["workload=seed_study"])
    assert (cfg.data.name, cfg.model.name, cfg.model.weights, cfg.trainer.epochs) == (
        "cifar100", "resnet18", "IMAGENET1K_V1", 10)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_benchmark_preset_composes(preset):
    cfg, overrides = settings.load([f"preset={preset}"])
    assert cfg.budget >= 1 and cfg.seeds >= 1 and cfg.workloads and cfg.optimizers
    assert set(cfg.workloads) <= set(WORKLOADS) and set(cfg.optimizers) <= set(OPTIMIZERS)
    assert overrides == list(cfg.overrides)


def test_the_command_line_splits_into_benchmark_keys_and_run_overrides():
    cfg, overrides = settings.load(["preset=demo", "budget=7", "optimizers=[adam,sgd]",
                                    "trainer.epochs=1", "hydra/launcher=joblib"])
    assert cfg.budget == 7 and list(cfg.optimizers) == ["adam", "sgd"] and cfg.name == "demo"
    assert overrides[-2:] == ["trainer.epochs=1", "hydra/launcher=joblib"]
    assert plan.basic_sweep_overrides(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                       "hydra.sweeper.storage=x", "trainer.epochs=1"]) == [
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.epochs=1"]


def test_a_cell_is_tuned_in_its_optimizers_space_or_the_one_space_named():
    cfg, _ = settings.load(["optimizers=[adam,sgd]", "workloads=[digits]"])
    assert [c.space for c in plan.cells(cfg)] == ["adam", "sgd"]
    cfg, _ = settings.load(["optimizers=[adam,sgd]", "space=lr_only"])
    assert [c.space for c in plan.cells(cfg)] == ["lr_only", "lr_only"]


def test_the_tune_preset_trains_every_trial_unless_a_pruner_is_named():
    for pruner, target in (("nop", "NopPruner"), ("median", "MedianPruner")):
        cfg, _ = settings.load([f"pruner={pruner}"])
        cell = plan.cells(cfg)[0]
        with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
            composed = compose("config", overrides=plan.tune_command(cfg, cell, [])[4:],
                               return_hydra_config=True)
        assert composed.hydra.sweeper.pruner._target_.endswith(target)
        assert composed.hydra.sweeper.n_trials == cfg.budget


def test_a_study_takes_any_launcher_and_storage(tmp_path):
    cfg, overrides = settings.load(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                    "hydra.sweeper.n_jobs=2",
                                    f"hydra.sweeper.storage=journal:{tmp_path}/optuna.journal"])
    cell = plan.cells(cfg)[0]
    with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
        composed = compose("config", overrides=plan.tune_command(cfg, cell, overrides)[4:],
                           return_hydra_config=True)
    assert composed.hydra.launcher.n_jobs == 2 and composed.hydra.sweeper.n_jobs == 2
    assert composed.hydra.sweeper.storage.startswith("journal:")
    assert composed.hydra.sweeper.study_name == f"benchmark_digits_{cell.optimizer}"


def test_a_users_own_space_comes_from_their_search_path(tmp_path):
    from optsweep.benchmark.preflight import compose_cell, space_problem

    (tmp_path / "space").mkdir()
    (tmp_path / "space" / "mine.yaml").write_text(
        "# @package hydra.sweeper.params\noptimizer.lr: tag(log, interval(1e-4, 1e-2))\n"
        "optimizer.momentum: interval(0.8, 0.99)\n")
    cfg, overrides = settings.load(["optimizers=[sgd]", "space=mine",
                                    f"hydra.searchpath=[file://{tmp_path}]"])
    (cell,) = plan.cells(cfg)
    composed = compose_cell(cfg, cell, overrides)
    assert dict(composed.hydra.sweeper.params) == {
        "optimizer.lr": "tag(log, interval(1e-4, 1e-2))",
        "optimizer.momentum": "interval(0.8, 0.99)"}
    assert space_problem(composed, cell) is None
    adam = plan.Cell("digits", "adam", "mine")  # Adam has no momentum: named before training
    problem = space_problem(compose_cell(cfg, adam, overrides), adam)
    assert problem.startswith("space=mine: optimizer.momentum is not a key of optimizer=adam")


@pytest.mark.parametrize("argv, key", [(["budget=0"], "budget"), (["seeds=0"], "seeds"),
                                       (["seeds=1"], "seeds"),
                                       (["optimizers=[]"], "optimizers"),
                                       (["preset=nosuch"], "preset")])
def test_bad_benchmark_values_name_their_key(argv, key):
    with pytest.raises(ConfigError, match=f"^{key}="):
        settings.load(argv)


def error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("argv, said", [
    (["workloads=[nosuch]"], "workload=nosuch"),
    (["space=nosuch"], "conf/space/nosuch.yaml"),
    (["budgte=3"], "budgte"),
    (["optimizers=[adamm,sgd]"], "optimizers: adamm is no option of conf/optimizer/"),
    (["pruner=nosuch"], "pruner=nosuch: no such pruner; choose one of hyperband, median"),
])
def test_bad_input_is_one_line_and_nothing_trains(tmp_path, capsys, argv, said):
    optimizers = [] if any(a.startswith("optimizers=") for a in argv) else ["optimizers=[adam,sgd]"]
    code = benchmark.main([*argv, f"dir={tmp_path / 'b'}", *optimizers])
    lines = error_lines(capsys)
    assert code == 2 and said in lines[0]
    assert len(lines) <= 2 and not (tmp_path / "b" / "digits").exists()


@pytest.mark.parametrize("argv, said", [
    (["select=test_acc1"], ["select=test_acc1: a test metric", "val_loss, val_acc1, val_acc5"]),
    (["select=val_ac1"], ["select=val_ac1: not a metric", "val_loss, val_acc1, val_acc5"]),
    (["metric=test_ac1"], ["metric=test_ac1: not a metric", "test_acc1"]),
    (["data.val_fraction=0"], ["data.val_fraction=0 (workload=simulated)", "above 0"]),
    (["data.val_fraction=0", "trainer.objective=val_acc1"], ["data.val_fraction=0"]),
    (["trainer.objective=test_acc1"], ["trainer.objective=test_acc1: a test metric"]),
    (["workload.target_metric=test_acc1"], ["workload.target_metric=test_acc1 (workload=simulated)",
                                            "a test metric"]),
])
def test_choosing_on_the_test_set_or_an_unknown_metric_is_one_line_and_nothing_trains(
        tmp_path, argv, said):
    result = processes.module("optsweep.benchmark", "workloads=[simulated]",
                              "optimizers=[adam,sgd]", f"dir={tmp_path / 'b'}", *argv)
    (line,) = [line for line in result.stderr.splitlines() if "error: " in line]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert line.startswith("optsweep.benchmark: error: ") and all(s in line for s in said), line
    assert not (tmp_path / "b").exists()


def test_a_cause_every_run_shares_is_said_once_before_anything_trains(tmp_path, capsys,
                                                                     no_network):
    code = benchmark.main(["workloads=[seed_study]", "optimizers=[adam,adagrad,rmsprop]",
                           f"dir={tmp_path / 'b'}", f"data.root={tmp_path / 'data'}",
                           "data.download=false"])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 2, lines
    assert lines[0].startswith("optsweep.benchmark: error: workload=seed_study:")
    assert lines[1] == "optsweep.benchmark: nothing was trained"
    assert not (tmp_path / "b" / "benchmark.json").exists()


def test_a_folder_holding_another_benchmark_is_refused(tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "benchmark.json").write_text(json.dumps({"settings": {"budget": 99}}))
    code = benchmark.main([f"dir={tmp_path / 'b'}", "optimizers=[adam]"])
    assert code == 2 and "holds another benchmark" in error_lines(capsys)[0]


def test_a_folder_holding_a_sweeps_runs_is_refused_before_anything_trains(tmp_path, capsys):
    sweep = tmp_path / "multirun" / "lr_search"
    (sweep / "0" / ".hydra").mkdir(parents=True)  # a job directory, as Hydra leaves one
    (sweep / "0" / ".hydra" / "config.yaml").write_text("trainer: {}\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = benchmark.main([f"dir={sweep}", "optimizers=[adam]"])
    (line,) = error_lines(capsys)
    assert code == 2 and line.startswith(f"optsweep.benchmark: error: dir={sweep} holds other "
                                         f"runs ({sweep / '0'}) and no benchmark.json")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_study_the_sweeper_counts_as_done_with_a_failed_trial_is_done_for_the_plan(tmp_path):
    cfg, _ = settings.load([f"dir={tmp_path / 'b'}", "workloads=[digits]", "optimizers=[adam]",
                            "budget=3"])
    (cell,) = plan.cells(cfg)
    study = plan.study_dir(cfg, cell)

    def job(name: str, summary_file: str, status: str) -> None:
        (study / name / ".hydra").mkdir(parents=True)
        (study / name / ".hydra" / "config.yaml").write_text("trainer: {}\n")
        (study / name / summary_file).write_text(json.dumps({"status": status}))

    job("0", "summary.json", "completed")
    job("1", "summary.json", "pruned")
    # the sweeper counts a crash whose re-runs were spent (hydra.sweeper.crash_retries) once, as
    # failed: a rerun of the benchmark finds nothing to train, and neither must its plan
    job("2", "summary.json", "failed")
    assert plan.study_done(cfg, cell) and not plan.study_unsettled(cfg, cell)
    # while its re-run is queued the sweeper keeps the crashed attempt's record aside: unfinished
    (study / "2" / "summary.json").rename(study / "2" / "summary.crashed.json")
    assert not plan.study_done(cfg, cell) and plan.study_unsettled(cfg, cell) == ["2"]


def test_the_readmes_benchmark_commands_compose_every_cell():
    import re
    import shlex

    from optsweep.benchmark.preflight import compose_cell

    readme = (CONF.parent / "README.md").read_text()
    lines = [line.split("#", 1)[0].strip() for block in re.findall(r"```bash\n(.*?)```", readme,
                                                                   flags=re.S)
             for line in block.splitlines()]
    commands = [shlex.split(line)[3:] for line in lines
                if line.startswith("python -m optsweep.benchmark")]
    assert commands and ["preset=demo"] in commands
    for argv in commands:
        cfg, overrides = settings.load(argv)
        for cell in plan.cells(cfg):
            composed = compose_cell(cfg, cell, overrides)
            validate(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))


def test_a_new_target_is_a_new_analysis_of_the_same_runs(tmp_path):
    from optsweep import contract

    cfg, overrides = settings.load([f"dir={tmp_path / 'b'}"])
    first = benchmark.manifest(cfg, overrides, {"digits": {"target": 0.9}}, {"digits": 0})
    benchmark.claim_dir(cfg, first)
    lowered = benchmark.manifest(cfg, [*overrides, "workload.target=0.7"],
                                 {"digits": {"target": 0.7}}, {"digits": 0})
    benchmark.claim_dir(cfg, lowered)  # accepted: the runs do not change
    assert json.loads((tmp_path / "b" / "benchmark.json").read_text())["workloads"] == {
        "digits": {"target": 0.7}}
    with pytest.raises(Exception, match="holds another benchmark"):
        benchmark.claim_dir(cfg, benchmark.manifest(cfg, [*overrides, "trainer.epochs=3"],
                                                    {"digits": {"target": 0.7}}, {"digits": 0}))
    runs = [make_cfg(["workload=digits", f"workload.target={t}"]) for t in (0.9, 0.7)]
    assert len({contract.config_fingerprint(c) for c in runs}) == 1  # finished runs are kept
